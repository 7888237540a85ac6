//! The change feed over a real SQLite store: a notified follower catches up and publishes
//! entry, bundle and federation-relationship changes separately; a lagged follower reloads.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use spire_id::{Selector, SpiffeId, TrustDomain};
use spire_server_cache::{ChangeFeed, FeedState};
use spire_server_datastore::{
    BundleEndpointProfile, DataStore, FederationRelationship, RegistrationEntry,
};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_time::{Clock as _, ManualClock};
use tokio::sync::watch;

/// Only to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

fn entry(path: &str) -> RegistrationEntry {
    RegistrationEntry {
        id: String::new(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/x/1").unwrap(),
        selectors: [Selector::parse("unix:uid:1").unwrap()]
            .into_iter()
            .collect(),
        x509_svid_ttl: 0,
        jwt_svid_ttl: 0,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at: 0,
        dns_names: Vec::new(),
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: 0,
    }
}

async fn next_state(
    states: &mut watch::Receiver<FeedState>,
    done: impl FnMut(&FeedState) -> bool,
) -> FeedState {
    *tokio::time::timeout(PATIENCE, states.wait_for(done))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn notified_follower_publishes_entry_and_bundle_changes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_fixed_instant();
    let store = SqlStore::open_with_clock(
        &SqlConfig::sqlite(dir.path().join("ds.sqlite3")),
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let ds: Arc<dyn DataStore> = Arc::new(store.clone());
    let feed = Arc::new(ChangeFeed::new(ds.clone()));
    let mut states = feed.subscribe();
    let (_stop_tx, stop) = watch::channel(false);
    // A long interval: only notify() can make the follower catch up within the test.
    tokio::spawn(feed.clone().run(Duration::from_secs(3600), stop));
    let loaded = next_state(&mut states, |s| s.loads == 1).await;

    ds.create_registration_entries(vec![entry("/a")])
        .await
        .unwrap();
    let revision = ds.latest_revision().await.unwrap();
    feed.notify();
    let state = next_state(&mut states, |s| s.revision >= revision).await;
    assert_eq!(state.entries_revision, revision);
    assert_eq!(state.bundles_revision, loaded.bundles_revision);
    assert_eq!(feed.cache().await.unwrap().entry_count(), 1);

    let td = TrustDomain::new("other.org").unwrap();
    ds.create_bundle(spire_svid::Bundle::new(td)).await.unwrap();
    let revision = ds.latest_revision().await.unwrap();
    feed.notify();
    let state = next_state(&mut states, |s| s.revision >= revision).await;
    assert_eq!(state.bundles_revision, revision);
    assert!(state.entries_revision < revision);
    assert_eq!(feed.bundle_revision("other.org"), revision);
    assert_eq!(feed.bundle_revision("example.org"), 0);
    assert_eq!(state.relationships_revision, loaded.relationships_revision);

    // A federation relationship: only its own revision moves.
    ds.create_federation_relationship(FederationRelationship {
        trust_domain: TrustDomain::new("other.org").unwrap(),
        bundle_endpoint_url: "https://other.org:8443".into(),
        profile: BundleEndpointProfile::HttpsWeb,
        trust_domain_bundle: None,
    })
    .await
    .unwrap();
    let revision = ds.latest_revision().await.unwrap();
    feed.notify();
    let state = next_state(&mut states, |s| s.revision >= revision).await;
    assert_eq!(state.relationships_revision, revision);
    assert!(state.entries_revision < revision);
    assert!(state.bundles_revision < revision);

    // Events pruned before the follower saw them: it reloads, and says so.
    ds.create_registration_entries(vec![entry("/b")])
        .await
        .unwrap();
    store
        .prune_change_events(clock.unix_seconds() + 1)
        .await
        .unwrap();
    ds.create_registration_entries(vec![entry("/c")])
        .await
        .unwrap();
    let state = feed.refresh().await.unwrap();
    assert_eq!(state.loads, 2);
    assert_eq!(feed.cache().await.unwrap().entry_count(), 3);
    assert_eq!(
        feed.bundle_revision("other.org"),
        0,
        "starts over after a reload"
    );
}
