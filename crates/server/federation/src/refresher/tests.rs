use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_time::ManualClock;

use super::*;
use crate::ClientOptions;

#[tokio::test]
async fn a_panicking_relationship_task_panics_the_refresher() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_fixed_instant());
    let store = SqlStore::open_with_clock(
        &SqlConfig::sqlite(dir.path().join("datastore.sqlite3")),
        clock.clone(),
    )
    .await
    .unwrap();
    let (_relationships, relationships_rx) = watch::channel(Vec::new());
    let config = RefresherConfig {
        trust_domain: TrustDomain::new("local.test").unwrap(),
        datastore: Arc::new(store),
        clock: clock.clone(),
        client: BundleClient::new(clock, ClientOptions::default()),
    };
    let (mut refresher, _handle) = Refresher::new(config, relationships_rx);
    // Stands in for an updater that hits a bug.
    refresher.updaters.spawn(async { panic!("updater bug") });

    let stop = Shutdown::new();
    let error = tokio::spawn(refresher.run(stop.clone())).await.unwrap_err();
    assert!(error.is_panic(), "{error:?}");
    let payload = error.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"updater bug"));
    assert!(
        !stop.is_stopped(),
        "the refresher's supervisor decides what stops"
    );
}
