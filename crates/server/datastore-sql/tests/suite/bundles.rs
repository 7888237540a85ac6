//! Bundles: CRUD, sequence numbers, concurrent appends, delete modes, pruning.

use spire_server_datastore::{
    Aggregate, BundleDeleteMode, ChangeOp, DataStore as _, Error, ListEntries, MatchBehavior,
    Pagination, TrustDomainMatch,
};
use spire_svid::{Bundle, JwtAuthority, X509Authority};

use crate::harness::{Harness, create_ok, entry, td};

both_backends!(
    bundle_crud_and_paging,
    sequence_moves_only_on_change,
    concurrent_appends_all_land,
    delete_restrict_refuses_while_federated,
    delete_mode_delete_removes_entries,
    delete_mode_dissociate_updates_entries,
    prune_bundle_drops_expired_keeps_last,
);

fn x509(tag: u8) -> X509Authority {
    X509Authority {
        asn1: vec![0x30, tag],
        tainted: false,
    }
}

fn jwt(kid: &str, expires_at: i64) -> JwtAuthority {
    JwtAuthority {
        key_id: kid.to_owned(),
        public_key: vec![1, 2, 3],
        expires_at,
        tainted: false,
    }
}

fn bundle(name: &str, x509s: &[u8]) -> Bundle {
    let mut b = Bundle::new(td(name));
    b.x509_authorities = x509s.iter().map(|t| x509(*t)).collect();
    b
}

/// A self-signed certificate valid until `not_after_year`-01-01.
fn cert_until(not_after_year: i32) -> X509Authority {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    X509Authority {
        asn1: cert.der().to_vec(),
        tainted: false,
    }
}

fn unix(year: i32) -> i64 {
    rcgen::date_time_ymd(year, 1, 1).unix_timestamp()
}

async fn bundle_crud_and_paging(h: Harness) {
    let a = h.store.create_bundle(bundle("a.org", &[1])).await.unwrap();
    assert!(matches!(
        h.store.create_bundle(bundle("a.org", &[2])).await,
        Err(Error::AlreadyExists { message, .. }) if message == "bundle already exists"
    ));
    for name in ["c.org", "b.org"] {
        h.store.create_bundle(bundle(name, &[1])).await.unwrap();
    }
    assert_eq!(h.store.fetch_bundle(&td("a.org")).await.unwrap(), Some(a));
    assert_eq!(h.store.fetch_bundle(&td("zz.org")).await.unwrap(), None);
    assert_eq!(h.store.count_bundles().await.unwrap(), 3);

    let first = h
        .store
        .list_bundles(Some(Pagination {
            token: String::new(),
            page_size: 2,
        }))
        .await
        .unwrap();
    let names: Vec<_> = first
        .items
        .iter()
        .map(|b| b.trust_domain.name().to_owned())
        .collect();
    assert_eq!(names, ["a.org", "b.org"]);
    let second = h
        .store
        .list_bundles(Some(Pagination {
            token: first.next_token.unwrap(),
            page_size: 2,
        }))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].trust_domain, td("c.org"));
    assert_eq!(second.next_token, None);
    assert_eq!(h.store.list_bundles(None).await.unwrap().items.len(), 3);

    assert!(matches!(
        h.store.update_bundle(bundle("nope.org", &[1])).await,
        Err(Error::NotFound(m)) if m == "bundle not found"
    ));
    assert!(matches!(
        h.store.delete_bundle(&td("nope.org"), BundleDeleteMode::Restrict).await,
        Err(Error::NotFound(m)) if m == "bundle not found"
    ));
}

async fn sequence_moves_only_on_change(h: Harness) {
    let created = h.store.set_bundle(bundle("a.org", &[1])).await.unwrap();
    assert_eq!(created.sequence_number, 0);
    let same = h.store.set_bundle(bundle("a.org", &[1])).await.unwrap();
    assert_eq!(
        same.sequence_number, 0,
        "unchanged content keeps the sequence"
    );
    let changed = h.store.set_bundle(bundle("a.org", &[1, 2])).await.unwrap();
    assert_eq!(changed.sequence_number, 1);
    let updated = h.store.update_bundle(bundle("a.org", &[3])).await.unwrap();
    assert_eq!(updated.sequence_number, 2);
    let unchanged = h.store.append_bundle(bundle("a.org", &[3])).await.unwrap();
    assert_eq!(unchanged.sequence_number, 2);
    let mut more = bundle("a.org", &[4]);
    more.jwt_authorities = vec![jwt("k1", 0)];
    let appended = h.store.append_bundle(more).await.unwrap();
    assert_eq!(appended.sequence_number, 3);
    assert_eq!(appended.x509_authorities, vec![x509(3), x509(4)]);
    assert_eq!(appended.jwt_authorities.len(), 1);
    assert_eq!(
        h.store.fetch_bundle(&td("a.org")).await.unwrap(),
        Some(appended)
    );
    // Append creates a missing bundle.
    let fresh = h
        .store
        .append_bundle(bundle("new.org", &[9]))
        .await
        .unwrap();
    assert_eq!(
        h.store.fetch_bundle(&td("new.org")).await.unwrap(),
        Some(fresh)
    );
    // Bundle events: created, updated ×3 (set, update, append), created.
    let events = h.store.list_change_events(0, 100).await.unwrap();
    let ops: Vec<_> = events.iter().map(|e| (e.aggregate, e.op)).collect();
    use ChangeOp::*;
    assert_eq!(
        ops,
        [Created, Updated, Updated, Updated, Created].map(|op| (Aggregate::Bundle, op))
    );
}

async fn concurrent_appends_all_land(h: Harness) {
    h.store.create_bundle(bundle("a.org", &[0])).await.unwrap();
    let other = h.open_another().await;
    let mut tasks = Vec::new();
    for i in 1..=12u8 {
        let store = if i % 2 == 0 {
            h.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            store.append_bundle(bundle("a.org", &[i])).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = h.store.fetch_bundle(&td("a.org")).await.unwrap().unwrap();
    assert_eq!(stored.x509_authorities.len(), 13);
    assert_eq!(stored.sequence_number, 12);
    other.close().await;
}

async fn federated_entries(h: &Harness) -> Vec<spire_server_datastore::RegistrationEntry> {
    h.store
        .create_bundle(bundle("fed.org", &[1]))
        .await
        .unwrap();
    let mut a = entry("/a", &["unix:uid:1"]);
    a.federates_with = vec![td("fed.org"), td("other.org")];
    let mut b = entry("/b", &["unix:uid:2"]);
    b.federates_with = vec![td("fed.org")];
    let c = entry("/c", &["unix:uid:3"]);
    create_ok(&h.store, vec![a, b, c]).await
}

async fn delete_restrict_refuses_while_federated(h: Harness) {
    federated_entries(&h).await;
    for mode in [BundleDeleteMode::Restrict, BundleDeleteMode::default()] {
        match h.store.delete_bundle(&td("fed.org"), mode).await {
            Err(Error::FailedPrecondition(m)) => {
                assert_eq!(
                    m,
                    "cannot delete bundle; federated with 2 registration entries"
                );
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }
    assert!(
        h.store
            .fetch_bundle(&td("fed.org"))
            .await
            .unwrap()
            .is_some()
    );
    // With nothing federating, restrict deletes.
    h.store
        .create_bundle(bundle("lonely.org", &[1]))
        .await
        .unwrap();
    h.store
        .delete_bundle(&td("lonely.org"), BundleDeleteMode::Restrict)
        .await
        .unwrap();
    assert!(
        h.store
            .fetch_bundle(&td("lonely.org"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn delete_mode_delete_removes_entries(h: Harness) {
    let entries = federated_entries(&h).await;
    let before = h.store.latest_revision().await.unwrap();
    h.store
        .delete_bundle(&td("fed.org"), BundleDeleteMode::Delete)
        .await
        .unwrap();
    assert!(
        h.store
            .fetch_bundle(&td("fed.org"))
            .await
            .unwrap()
            .is_none()
    );
    let left = h
        .store
        .list_registration_entries(&ListEntries::default())
        .await
        .unwrap()
        .items;
    assert_eq!(left, vec![entries[2].clone()]);
    let events = h.store.list_change_events(before, 100).await.unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.aggregate, e.key.clone(), e.op))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                Aggregate::RegistrationEntry,
                entries[0].id.clone(),
                ChangeOp::Deleted
            ),
            (
                Aggregate::RegistrationEntry,
                entries[1].id.clone(),
                ChangeOp::Deleted
            ),
            (Aggregate::Bundle, "fed.org".to_owned(), ChangeOp::Deleted),
        ]
    );
}

async fn delete_mode_dissociate_updates_entries(h: Harness) {
    let entries = federated_entries(&h).await;
    let before = h.store.latest_revision().await.unwrap();
    h.store
        .delete_bundle(&td("fed.org"), BundleDeleteMode::Dissociate)
        .await
        .unwrap();
    let a = h
        .store
        .fetch_registration_entry(&entries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.federates_with, vec![td("other.org")]);
    assert_eq!(a.revision_number, 1);
    let b = h
        .store
        .fetch_registration_entry(&entries[1].id)
        .await
        .unwrap()
        .unwrap();
    assert!(b.federates_with.is_empty());
    assert_eq!(b.revision_number, 1);
    let c = h
        .store
        .fetch_registration_entry(&entries[2].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.revision_number, 0, "untouched");
    let req = ListEntries {
        by_federates_with: Some(TrustDomainMatch {
            trust_domains: vec![td("fed.org")],
            behavior: MatchBehavior::Any,
        }),
        ..Default::default()
    };
    assert_eq!(h.store.count_registration_entries(&req).await.unwrap(), 0);
    let events = h.store.list_change_events(before, 100).await.unwrap();
    let ops: Vec<_> = events.iter().map(|e| (e.aggregate, e.op)).collect();
    assert_eq!(
        ops,
        vec![
            (Aggregate::RegistrationEntry, ChangeOp::Updated),
            (Aggregate::RegistrationEntry, ChangeOp::Updated),
            (Aggregate::Bundle, ChangeOp::Deleted),
        ]
    );
}

async fn prune_bundle_drops_expired_keeps_last(h: Harness) {
    let (old, current) = (cert_until(2010), cert_until(2040));
    let mut b = Bundle::new(td("a.org"));
    b.x509_authorities = vec![old.clone(), current.clone()];
    b.jwt_authorities = vec![
        jwt("old", unix(2010)),
        jwt("new", unix(2040)),
        jwt("forever", 0),
    ];
    h.store.create_bundle(b).await.unwrap();

    assert!(
        h.store
            .prune_bundle(&td("a.org"), unix(2020))
            .await
            .unwrap()
    );
    let pruned = h.store.fetch_bundle(&td("a.org")).await.unwrap().unwrap();
    assert_eq!(pruned.x509_authorities, vec![current.clone()]);
    let kids: Vec<_> = pruned
        .jwt_authorities
        .iter()
        .map(|k| k.key_id.as_str())
        .collect();
    assert_eq!(kids, ["new", "forever"]);
    assert_eq!(pruned.sequence_number, 1);

    assert!(
        !h.store
            .prune_bundle(&td("a.org"), unix(2020))
            .await
            .unwrap(),
        "nothing left to prune"
    );
    // Everything expired: the last X.509 authority stays, expired JWT keys still go.
    assert!(
        h.store
            .prune_bundle(&td("a.org"), unix(2050))
            .await
            .unwrap()
    );
    let after = h.store.fetch_bundle(&td("a.org")).await.unwrap().unwrap();
    assert_eq!(after.x509_authorities, vec![current]);
    let kids: Vec<_> = after
        .jwt_authorities
        .iter()
        .map(|k| k.key_id.as_str())
        .collect();
    assert_eq!(kids, ["forever"]);
    assert!(
        !h.store
            .prune_bundle(&td("missing.org"), unix(2050))
            .await
            .unwrap()
    );
}
