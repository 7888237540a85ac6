//! Join tokens, CA journals, federation relationships, and opening by DSN.

use std::sync::Arc;

use spire_server_datastore::{
    Aggregate, BundleEndpointProfile, CaJournal, ChangeOp, DataStore as _, Error,
    FederationRelationship, JoinToken, Pagination,
};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_svid::{Bundle, X509Authority};

use crate::harness::{Harness, create_ok, entry, id, td};

both_backends!(
    join_tokens_and_prune,
    twenty_concurrent_takers_one_winner,
    ca_journal_insert_update_fetch_prune,
    federation_relationships_join_bundles,
    opens_with_spire_connection_strings,
);

async fn join_tokens_and_prune(h: Harness) {
    h.store
        .create_join_token(JoinToken {
            token: "a".to_owned(),
            expires_at: 10,
        })
        .await
        .unwrap();
    h.store
        .create_join_token(JoinToken {
            token: "b".to_owned(),
            expires_at: 30,
        })
        .await
        .unwrap();
    assert!(matches!(
        h.store.create_join_token(JoinToken { token: "a".to_owned(), expires_at: 99 }).await,
        Err(Error::AlreadyExists { message, .. }) if message == "join token already exists"
    ));
    let a = JoinToken {
        token: "a".to_owned(),
        expires_at: 10,
    };
    assert_eq!(
        h.store.fetch_join_token("a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        h.store.fetch_join_token("a").await.unwrap(),
        Some(a.clone()),
        "fetch does not consume"
    );
    assert_eq!(h.store.take_join_token("a").await.unwrap(), Some(a));
    assert_eq!(h.store.take_join_token("a").await.unwrap(), None);
    h.store
        .create_join_token(JoinToken {
            token: "c".to_owned(),
            expires_at: 20,
        })
        .await
        .unwrap();
    assert_eq!(h.store.prune_join_tokens(25).await.unwrap(), 1);
    assert!(h.store.fetch_join_token("c").await.unwrap().is_none());
    assert!(h.store.fetch_join_token("b").await.unwrap().is_some());
    assert_eq!(
        h.store.latest_revision().await.unwrap(),
        0,
        "tokens record no events"
    );
}

async fn twenty_concurrent_takers_one_winner(h: Harness) {
    let other = h.open_another().await;
    for round in 0..3 {
        let token = format!("token-{round}");
        h.store
            .create_join_token(JoinToken {
                token: token.clone(),
                expires_at: 99,
            })
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = if i % 2 == 0 {
                    h.store.clone()
                } else {
                    other.clone()
                };
                let (token, barrier) = (token.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.take_join_token(&token).await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap().is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    other.close().await;
}

async fn ca_journal_insert_update_fetch_prune(h: Harness) {
    let first = h
        .store
        .set_ca_journal(CaJournal {
            id: 0,
            active_x509_authority_id: "aa".to_owned(),
            data: vec![1],
            updated_at: 10,
        })
        .await
        .unwrap();
    assert!(first.id > 0);
    let second = h
        .store
        .set_ca_journal(CaJournal {
            id: 0,
            active_x509_authority_id: "bb".to_owned(),
            data: vec![2],
            updated_at: 20,
        })
        .await
        .unwrap();
    assert_ne!(first.id, second.id);
    let moved = h
        .store
        .set_ca_journal(CaJournal {
            id: first.id,
            active_x509_authority_id: "cc".to_owned(),
            data: vec![3, 3],
            updated_at: 30,
        })
        .await
        .unwrap();
    assert_eq!(moved.id, first.id);
    assert_eq!(h.store.fetch_ca_journal("aa").await.unwrap(), None);
    assert_eq!(h.store.fetch_ca_journal("cc").await.unwrap(), Some(moved));
    assert_eq!(h.store.fetch_ca_journal("bb").await.unwrap(), Some(second));
    assert!(matches!(
        h.store
            .set_ca_journal(CaJournal {
                id: 999_999,
                active_x509_authority_id: "x".to_owned(),
                data: vec![],
                updated_at: 1
            })
            .await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(h.store.prune_ca_journals(25).await.unwrap(), 1);
    assert_eq!(h.store.fetch_ca_journal("bb").await.unwrap(), None);
    assert!(h.store.fetch_ca_journal("cc").await.unwrap().is_some());
}

async fn federation_relationships_join_bundles(h: Harness) {
    let spiffe = FederationRelationship {
        trust_domain: td("b.org"),
        bundle_endpoint_url: "https://b.org:8443".to_owned(),
        profile: BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: id("spiffe://b.org/spire/server"),
        },
        trust_domain_bundle: None,
    };
    let created = h
        .store
        .create_federation_relationship(spiffe.clone())
        .await
        .unwrap();
    assert_eq!(created, spiffe);
    assert!(matches!(
        h.store.create_federation_relationship(spiffe.clone()).await,
        Err(Error::AlreadyExists { .. })
    ));
    // A bundle written later shows up on fetch.
    let mut bundle = Bundle::new(td("b.org"));
    bundle.x509_authorities = vec![X509Authority {
        asn1: vec![0x30],
        tainted: false,
    }];
    h.store.set_bundle(bundle.clone()).await.unwrap();
    let fetched = h
        .store
        .fetch_federation_relationship(&td("b.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.trust_domain_bundle, Some(bundle.clone()));

    // Creating with a bundle stores it.
    let mut web_bundle = Bundle::new(td("a.org"));
    web_bundle.refresh_hint = 5;
    let web = FederationRelationship {
        trust_domain: td("a.org"),
        bundle_endpoint_url: "https://a.org/bundle".to_owned(),
        profile: BundleEndpointProfile::HttpsWeb,
        trust_domain_bundle: Some(web_bundle.clone()),
    };
    h.store
        .create_federation_relationship(web.clone())
        .await
        .unwrap();
    assert_eq!(
        h.store.fetch_bundle(&td("a.org")).await.unwrap(),
        Some(web_bundle)
    );

    let page = h
        .store
        .list_federation_relationships(Some(Pagination {
            token: String::new(),
            page_size: 1,
        }))
        .await
        .unwrap();
    assert_eq!(page.items, vec![web.clone()]);
    let rest = h
        .store
        .list_federation_relationships(Some(Pagination {
            token: page.next_token.unwrap(),
            page_size: 1,
        }))
        .await
        .unwrap();
    assert_eq!(rest.items[0].trust_domain, td("b.org"));
    assert_eq!(rest.next_token, None);

    let mut changed = fetched.clone();
    changed.bundle_endpoint_url = "https://b.org:9443".to_owned();
    changed.profile = BundleEndpointProfile::HttpsWeb;
    changed.trust_domain_bundle = None;
    let updated = h
        .store
        .update_federation_relationship(changed)
        .await
        .unwrap();
    assert_eq!(updated.bundle_endpoint_url, "https://b.org:9443");
    assert_eq!(
        updated.trust_domain_bundle,
        Some(bundle),
        "the stored bundle is returned"
    );
    let mut missing = web.clone();
    missing.trust_domain = td("zz.org");
    missing.trust_domain_bundle = None;
    assert!(matches!(
        h.store.update_federation_relationship(missing).await,
        Err(Error::NotFound(m)) if m == "federation relationship not found"
    ));

    h.store
        .delete_federation_relationship(&td("b.org"))
        .await
        .unwrap();
    assert!(
        h.store
            .fetch_federation_relationship(&td("b.org"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.store.fetch_bundle(&td("b.org")).await.unwrap().is_some(),
        "the bundle stays"
    );
    assert!(matches!(
        h.store.delete_federation_relationship(&td("b.org")).await,
        Err(Error::NotFound(_))
    ));

    let events = h.store.list_change_events(0, 100).await.unwrap();
    let relationship_ops: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate == Aggregate::FederationRelationship)
        .map(|e| (e.key.as_str(), e.op))
        .collect();
    assert_eq!(
        relationship_ops,
        [
            ("b.org", ChangeOp::Created),
            ("a.org", ChangeOp::Created),
            ("b.org", ChangeOp::Updated),
            ("b.org", ChangeOp::Deleted)
        ]
    );
}

async fn opens_with_spire_connection_strings(h: Harness) {
    let config = match (h.postgres_dsn(), h.mysql_dsn()) {
        // PostgreSQL: a libpq key=value DSN for the same database.
        (Some(dsn), _) => SqlConfig::postgres(dsn),
        // MySQL: a Go MySQL driver DSN (`user@tcp(host:port)/db?parseTime=true`).
        (_, Some(dsn)) => SqlConfig::mysql(dsn),
        // SQLite: a `file:` URI with go-sqlite3 options, for the same file.
        (None, None) => SqlConfig {
            database_type: "sqlite3".to_owned(),
            connection_string: format!("file:{}?_busy_timeout=5000", h.config.connection_string),
        },
    };
    create_ok(&h.store, vec![entry("/dsn", &["unix:uid:1"])]).await;
    let store = SqlStore::open(&config).await.unwrap();
    assert_eq!(
        store
            .count_registration_entries(&Default::default())
            .await
            .unwrap(),
        1
    );
    store.close().await;
}
