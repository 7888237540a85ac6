//! The refresher on paused tokio time (moved only by `advance`) with a manual clock, the
//! SQLite datastore and a real `https_spiffe` bundle endpoint as the remote.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use spire_id::TrustDomain;
use spire_server_datastore::{BundleEndpointProfile, DataStore, FederationRelationship};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_federation::{
    BundleClient, BundleEndpoint, ClientOptions, EndpointConfig, RefreshOutcome, RefreshStatus,
    Refresher, RefresherConfig, RefresherHandle, ServingIdentity,
};
use spire_svid::Bundle;
use spire_task::Shutdown;
use spire_time::ManualClock;
use tokio::sync::watch;

use support::{Ca, FrozenTime, authorities, bundle, id, td};

const REMOTE: &str = "remote.test";

struct World {
    ds: Arc<dyn DataStore>,
    ca: Ca,
    /// What the remote endpoint serves.
    remote: watch::Sender<Arc<Bundle>>,
    relationships: watch::Sender<Vec<FederationRelationship>>,
    relationship: FederationRelationship,
    handle: RefresherHandle,
    status: watch::Receiver<BTreeMap<TrustDomain, RefreshStatus>>,
    _stop: Shutdown,
    _dir: tempfile::TempDir,
    _frozen: FrozenTime,
}

/// A remote endpoint for `remote.test` serving its CA's bundle, a datastore holding
/// `bootstrap`, and a refresher managing the relationship.
async fn world(bootstrap: bool) -> World {
    let frozen = FrozenTime::new();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_fixed_instant());
    let store = SqlStore::open_with_clock(
        &SqlConfig::sqlite(dir.path().join("datastore.sqlite3")),
        clock.clone(),
    )
    .await
    .unwrap();
    let ds: Arc<dyn DataStore> = Arc::new(store);

    let ca = Ca::new(Some(REMOTE));
    let served = bundle(REMOTE, &[&ca]);
    if bootstrap {
        // As `bundle set` leaves it: no hint.
        ds.set_bundle(served.clone()).await.unwrap();
    }
    let (remote, remote_rx) = watch::channel(Arc::new(served));
    let (_, svid) = watch::channel(Arc::new(ca.svid("spiffe://remote.test/spire/server")));
    let config = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    let endpoint = BundleEndpoint::bind(config, ServingIdentity::Svid(svid), remote_rx)
        .await
        .unwrap();
    let url = format!("https://127.0.0.1:{}", endpoint.local_addr().port());
    let stop = Shutdown::new();
    tokio::spawn(endpoint.serve(stop.clone()));

    let relationship = FederationRelationship {
        trust_domain: td(REMOTE),
        bundle_endpoint_url: url,
        profile: BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: id("spiffe://remote.test/spire/server"),
        },
        trust_domain_bundle: None,
    };
    let (relationships, relationships_rx) = watch::channel(vec![relationship.clone()]);
    let config = RefresherConfig {
        trust_domain: td("local.test"),
        datastore: ds.clone(),
        clock: clock.clone(),
        client: BundleClient::new(clock, ClientOptions::default()),
    };
    let (refresher, handle) = Refresher::new(config, relationships_rx);
    tokio::spawn(refresher.run(stop.clone()));
    World {
        ds,
        ca,
        remote,
        relationships,
        relationship,
        status: handle.status(),
        handle,
        _stop: stop,
        _dir: dir,
        _frozen: frozen,
    }
}

impl World {
    /// The remote's status once it has been polled `n` times.
    async fn polled(&mut self, n: u64) -> RefreshStatus {
        let remote = td(REMOTE);
        self.status
            .wait_for(|status| status.get(&remote).is_some_and(|s| s.polls >= n))
            .await
            .unwrap()[&remote]
            .clone()
    }

    async fn stored(&self) -> Bundle {
        self.ds.fetch_bundle(&td(REMOTE)).await.unwrap().unwrap()
    }

    fn serve(&self, bundle: Bundle) {
        self.remote.send_replace(Arc::new(bundle));
    }
}

fn with_sequence(mut bundle: Bundle, sequence: u64) -> Bundle {
    bundle.sequence_number = sequence;
    bundle
}

#[tokio::test(start_paused = true)]
async fn a_changed_remote_bundle_is_stored_on_schedule() {
    let mut w = world(true).await;
    let first = w.polled(1).await;
    assert_eq!(first.consecutive_failures, 0);
    assert_eq!(first.last_error, None);
    // The endpoint's hint is 300 s: four polls per hint.
    assert_eq!(first.next_poll_in, Duration::from_secs(75));
    // The bootstrap bundle had no hint, so the fetched one differed and was stored.
    let stored = w.stored().await;
    assert_eq!(stored.refresh_hint, 300);
    assert_eq!(authorities(&stored), vec![w.ca.der.clone()]);

    let next_ca = Ca::new(Some(REMOTE));
    w.serve(with_sequence(bundle(REMOTE, &[&w.ca, &next_ca]), 2));
    tokio::time::advance(first.next_poll_in).await;
    let second = w.polled(2).await;
    assert_eq!(second.last_error, None);
    let rotated = w.stored().await;
    assert_eq!(
        authorities(&rotated),
        vec![w.ca.der.clone(), next_ca.der.clone()]
    );

    // Nothing changed remotely: nothing is written.
    tokio::time::advance(second.next_poll_in).await;
    let third = w.polled(3).await;
    assert_eq!(third.last_error, None);
    assert_eq!(w.stored().await, rotated);
}

#[tokio::test(start_paused = true)]
async fn a_failing_remote_keeps_the_last_good_bundle_and_backs_off() {
    let mut w = world(true).await;
    let mut status = w.polled(1).await;
    let good = w.stored().await;

    // The remote now serves a CA of another trust domain: every fetch is refused.
    let foreign = Ca::new(Some("elsewhere.test"));
    w.serve(bundle(REMOTE, &[&w.ca, &foreign]));
    let mut delays = Vec::new();
    for polls in 2..=6 {
        tokio::time::advance(status.next_poll_in).await;
        status = w.polled(polls).await;
        assert_eq!(u64::from(status.consecutive_failures), polls - 1);
        let error = status.last_error.clone().unwrap();
        assert!(error.contains("elsewhere.test"), "{error}");
        delays.push(status.next_poll_in.as_secs());
    }
    // 5 s, doubling, capped at the regular 75 s.
    assert_eq!(delays, [5, 10, 20, 40, 75]);
    assert_eq!(w.stored().await, good);

    // The remote recovers: stored at the next poll, schedule back to normal.
    let next_ca = Ca::new(Some(REMOTE));
    w.serve(bundle(REMOTE, &[&w.ca, &next_ca]));
    tokio::time::advance(status.next_poll_in).await;
    let status = w.polled(7).await;
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.next_poll_in, Duration::from_secs(75));
    assert_eq!(
        authorities(&w.stored().await),
        vec![w.ca.der.clone(), next_ca.der.clone()]
    );
}

#[tokio::test(start_paused = true)]
async fn a_sequence_going_backwards_is_stored_anyway() {
    let mut w = world(true).await;
    w.serve(with_sequence(bundle(REMOTE, &[&w.ca]), 10));
    // The first poll may have seen either document; refresh once more to be sure of 10.
    w.polled(1).await;
    w.handle.refresh_now(&td(REMOTE)).await.unwrap();

    // The remote was reset: its sequence restarts, its content changed.
    let next_ca = Ca::new(Some(REMOTE));
    w.serve(with_sequence(bundle(REMOTE, &[&w.ca, &next_ca]), 3));
    let outcome = w.handle.refresh_now(&td(REMOTE)).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Stored);
    assert_eq!(
        authorities(&w.stored().await),
        vec![w.ca.der.clone(), next_ca.der.clone()]
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_now_fetches_at_once() {
    let mut w = world(true).await;
    let first = w.polled(1).await;
    let next_ca = Ca::new(Some(REMOTE));
    w.serve(bundle(REMOTE, &[&w.ca, &next_ca]));

    // No time passes.
    let outcome = w.handle.refresh_now(&td(REMOTE)).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Stored);
    assert_eq!(authorities(&w.stored().await).len(), 2);
    let outcome = w.handle.refresh_now(&td(REMOTE)).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Unchanged);
    let status = w.polled(3).await;
    assert_eq!(status.next_poll_in, first.next_poll_in);

    let outcome = w.handle.refresh_now(&td("unknown.test")).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::NotManaged);
}

#[tokio::test(start_paused = true)]
async fn removing_a_relationship_stops_polling_and_keeps_the_bundle() {
    let mut w = world(true).await;
    w.polled(1).await;
    let kept = w.stored().await;

    w.relationships.send_replace(Vec::new());
    w.status.wait_for(BTreeMap::is_empty).await.unwrap();
    let next_ca = Ca::new(Some(REMOTE));
    w.serve(bundle(REMOTE, &[&w.ca, &next_ca]));
    tokio::time::advance(Duration::from_secs(600)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(w.stored().await, kept);
    let outcome = w.handle.refresh_now(&td(REMOTE)).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::NotManaged);

    // Managed again (next to a relationship with our own trust domain, which is ignored):
    // polled at once.
    let mut own = w.relationship.clone();
    own.trust_domain = td("local.test");
    w.relationships
        .send_replace(vec![own, w.relationship.clone()]);
    let status = w.polled(1).await;
    assert_eq!(status.last_error, None);
    assert_eq!(authorities(&w.stored().await).len(), 2);
    assert_eq!(
        w.status.borrow().keys().cloned().collect::<Vec<_>>(),
        vec![td(REMOTE)]
    );
}

#[tokio::test(start_paused = true)]
async fn https_spiffe_waits_for_the_endpoint_bundle_to_be_bootstrapped() {
    let mut w = world(false).await;
    let status = w.polled(1).await;
    assert_eq!(status.consecutive_failures, 1);
    assert_eq!(
        status.last_error.as_deref(),
        Some("can't perform SPIFFE Authentication: local copy of bundle not found")
    );
    assert_eq!(status.next_poll_in, Duration::from_secs(5));
    assert!(w.ds.fetch_bundle(&td(REMOTE)).await.unwrap().is_none());

    // `bundle set` bootstraps it; the next poll succeeds.
    w.ds.set_bundle(bundle(REMOTE, &[&w.ca])).await.unwrap();
    tokio::time::advance(status.next_poll_in).await;
    let status = w.polled(2).await;
    assert_eq!(status.last_error, None);
    assert_eq!(w.stored().await.refresh_hint, 300);
}
