//! The server's checkers against real parts: a SQLite datastore, a CA with an in-memory key
//! manager and the admin routes served on a Unix socket.

use std::sync::atomic::{AtomicU64, Ordering};

use spire_server_api::ApiContext;
use spire_server_ca::{CaConfig, Plugins};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_plugin::keymanager::MemoryKeyManager;
use spire_time::{ManualClock, SharedClock};
use tokio_stream::wrappers::UnixListenerStream;

use super::*;

struct Parts {
    dir: tempfile::TempDir,
    td: TrustDomain,
    store: Arc<SqlStore>,
    datastore: Arc<dyn DataStore>,
    ca_manager: Arc<CaManager>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Parts {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock: SharedClock = Arc::new(ManualClock::at_fixed_instant());
        let store = Arc::new(
            SqlStore::open_with_clock(
                &SqlConfig::sqlite(dir.path().join("ds.sqlite3")),
                clock.clone(),
            )
            .await
            .unwrap(),
        );
        let datastore: Arc<dyn DataStore> = store.clone();
        let td = TrustDomain::new("example.org").unwrap();
        let ca_manager = Arc::new(
            CaManager::new(
                CaConfig::new(td.clone()),
                clock.clone(),
                Plugins {
                    key_manager: Arc::new(MemoryKeyManager::new()),
                    upstream_authority: None,
                },
                datastore.clone(),
            )
            .await
            .unwrap(),
        );
        let (stop, _) = tokio::sync::watch::channel(false);
        Self {
            dir,
            td,
            store,
            datastore,
            ca_manager,
            stop,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("private/api.sock")
    }

    /// Serves the admin routes on [`Parts::socket`] as the server does, until `stop`.
    fn serve_admin(&self) {
        let context = ApiContext::new(
            self.td.clone(),
            self.datastore.clone(),
            self.ca_manager.ca(),
            Arc::new(ManualClock::at_fixed_instant()),
        );
        std::fs::create_dir_all(self.socket().parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(self.socket()).unwrap();
        let mut stop = self.stop.subscribe();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(spire_server_api::admin_routes(&context))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        );
    }

    fn checkers(&self) -> Vec<Arc<dyn Checker>> {
        server_checkers(
            self.socket(),
            &self.td,
            self.datastore.clone(),
            self.ca_manager.clone(),
        )
    }
}

fn by_name(checkers: &[Arc<dyn Checker>], name: &str) -> Arc<dyn Checker> {
    checkers.iter().find(|c| c.name() == name).unwrap().clone()
}

#[tokio::test]
async fn a_running_server_passes_every_check_under_spire_s_names() {
    let parts = Parts::new().await;
    parts.serve_admin();
    let checkers = parts.checkers();
    let names: Vec<&str> = checkers.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "server",
            "catalog.datastore",
            "server.ca",
            "server.ca.rotator"
        ]
    );
    let health = spire_health::Health::new(checkers).unwrap();
    let mut reports = health.subscribe();
    tokio::spawn(health.run(std::future::pending()));
    let report = reports.wait_for(|r| r.checked()).await.unwrap().clone();
    assert!(report.live() && report.ready(), "{report:?}");
    assert_eq!(
        &report.ready_body()[..],
        b"{\"catalog.datastore\":{},\"server\":{},\"server.ca\":{},\"server.ca.rotator\":{}}\n"
    );
}

#[tokio::test]
async fn the_admin_api_check_fails_when_nothing_answers_on_the_socket() {
    let parts = Parts::new().await;
    let server = by_name(&parts.checkers(), "server");
    let state = server.check().await;
    assert!(!state.live && !state.ready);
    assert_eq!(
        state.ready_details,
        json!({ "get_bundle_err": "unable to fetch bundle" })
    );

    parts.serve_admin();
    assert!(server.check().await.passing());

    // The admin server stops: the socket file stays but nothing answers.
    parts.stop.send_replace(true);
    let stopped = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if !server.check().await.passing() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        stopped.is_ok(),
        "the check fails once the admin API is gone"
    );
}

#[tokio::test]
async fn the_admin_api_check_fails_when_the_socket_never_answers() {
    let parts = Parts::new().await;
    std::fs::create_dir_all(parts.socket().parent().unwrap()).unwrap();
    // Bound, never accepted from: the connection cannot complete its HTTP/2 handshake.
    let _listener = tokio::net::UnixListener::bind(parts.socket()).unwrap();
    let check = AdminApiCheck {
        socket: parts.socket(),
        timeout: Duration::from_millis(200),
    };
    let state = check.check().await;
    assert!(!state.passing());
    assert_eq!(
        state.live_details,
        json!({ "get_bundle_err": "unable to fetch bundle" })
    );
}

#[tokio::test]
async fn the_datastore_check_reports_the_list_error() {
    let parts = Parts::new().await;
    let datastore = by_name(&parts.checkers(), "catalog.datastore");
    assert_eq!(datastore.check().await, State::healthy());
    parts.store.close().await;
    let state = datastore.check().await;
    assert!(!state.live && !state.ready);
    let error = state.ready_details["list_bundle_err"].as_str().unwrap();
    assert!(!error.is_empty());
    assert_eq!(state.live_details, state.ready_details);
}

#[tokio::test]
async fn the_ca_check_signs_and_reports_signing_errors() {
    let parts = Parts::new().await;
    let ca = by_name(&parts.checkers(), "server.ca");
    assert_eq!(ca.check().await, State::healthy());

    // The same check with a public key the CA cannot use.
    let mut broken = CaCheck::new(parts.ca_manager.ca(), &parts.td);
    if let Ok((_, key)) = &mut broken.subject {
        *key = b"not a key".to_vec();
    }
    let state = broken.check().await;
    assert!(!state.live && !state.ready);
    assert!(
        state.ready_details["sign_x509_svid_err"]
            .as_str()
            .unwrap()
            .contains("reading the public key"),
        "{state:?}"
    );
}

#[tokio::test]
async fn the_rotator_fails_after_more_than_ten_failed_rotations_in_a_row() {
    let failures = Arc::new(AtomicU64::new(0));
    let seen = failures.clone();
    let check = RotatorCheck {
        failures: Arc::new(move || seen.load(Ordering::SeqCst)),
    };
    assert_eq!(check.check().await, State::healthy());
    failures.store(10, Ordering::SeqCst);
    assert_eq!(check.check().await, State::healthy());
    failures.store(11, Ordering::SeqCst);
    let state = check.check().await;
    assert!(!state.live && !state.ready);
    assert_eq!(
        state.ready_details,
        json!({ "rotation_err": "rotations exceed the threshold number of failures" })
    );

    // The real source starts at zero.
    let parts = Parts::new().await;
    assert_eq!(parts.ca_manager.consecutive_rotation_failures(), 0);
    assert!(
        by_name(&parts.checkers(), "server.ca.rotator")
            .check()
            .await
            .passing()
    );
}
