use std::time::Duration;

use spire_id::SpiffeId;
use spire_server_datastore::BundleEndpointProfile;
use spire_server_datastore_sql::{SqlConfig, SqlStore};

use super::*;

fn relationship(td: &str, url: &str) -> FederationRelationship {
    let trust_domain = TrustDomain::new(td).unwrap();
    FederationRelationship {
        profile: BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: SpiffeId::parse(&format!("spiffe://{td}/spire/server")).unwrap(),
        },
        trust_domain_bundle: None,
        trust_domain,
        bundle_endpoint_url: url.to_owned(),
    }
}

fn urls(relationships: &[FederationRelationship]) -> Vec<&str> {
    relationships
        .iter()
        .map(|r| r.bundle_endpoint_url.as_str())
        .collect()
}

/// The next published set, by URL.
async fn next(published: &mut watch::Receiver<Vec<FederationRelationship>>) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(30), published.changed())
        .await
        .unwrap()
        .unwrap();
    urls(&published.borrow_and_update())
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn configured_relationships_override_dynamic_ones() {
    let configured = [relationship("b.test", "https://static-b")];
    let mut dynamic = vec![
        relationship("c.test", "https://dynamic-c"),
        relationship("b.test", "https://dynamic-b"),
        relationship("a.test", "https://dynamic-a"),
    ];
    dynamic[0].trust_domain_bundle = Some(Bundle::new(TrustDomain::new("c.test").unwrap()));
    let merged = merge(&configured, dynamic);
    assert_eq!(
        urls(&merged),
        ["https://dynamic-a", "https://static-b", "https://dynamic-c"]
    );
    assert!(merged.iter().all(|r| r.trust_domain_bundle.is_none()));
}

#[tokio::test]
async fn relationships_follow_the_api_and_the_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn DataStore> = Arc::new(
        SqlStore::open(&SqlConfig {
            database_type: "sqlite3".into(),
            connection_string: dir.path().join("ds.sqlite3").display().to_string(),
        })
        .await
        .unwrap(),
    );
    let feed = Arc::new(ChangeFeed::new(store.clone()));
    feed.refresh().await.unwrap();
    let (current, mut published) = watch::channel(Vec::new());
    let relationships = Arc::new(Relationships {
        configured: vec![relationship("b.test", "https://static-b")],
        datastore: store.clone(),
        current,
        reloading: Mutex::new(()),
        changed: Notify::new(),
    });
    relationships.reload().await.unwrap();
    assert_eq!(urls(&published.borrow_and_update()), ["https://static-b"]);
    let stop = Shutdown::new();
    let follower = tokio::spawn(relationships.clone().follow(feed.clone(), stop.clone()));
    // Written by another server on the same database: the feed's catch-up tells.
    store
        .create_federation_relationship(relationship("a.test", "https://dynamic-a"))
        .await
        .unwrap();
    feed.refresh().await.unwrap();
    assert_eq!(
        next(&mut published).await,
        ["https://dynamic-a", "https://static-b"]
    );

    // Written through this server's TrustDomain API: relationships_changed() tells.
    store
        .create_federation_relationship(relationship("c.test", "https://dynamic-c"))
        .await
        .unwrap();
    relationships.changed.notify_one();
    assert_eq!(
        next(&mut published).await,
        ["https://dynamic-a", "https://static-b", "https://dynamic-c"]
    );

    // A dynamic relationship for a statically configured trust domain changes nothing.
    store
        .create_federation_relationship(relationship("b.test", "https://dynamic-b"))
        .await
        .unwrap();
    relationships.reload().await.unwrap();
    assert!(!published.has_changed().unwrap());

    stop.trigger();
    follower.await.unwrap();
}
