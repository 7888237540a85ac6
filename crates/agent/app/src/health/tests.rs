//! The agent's checker against a real public socket: `PermissionDenied` and answers are
//! healthy; `Unavailable`, a missing socket and silence are not; starting is live.

use std::sync::Arc;

use spire_agent_cache::{Cache, CacheConfig};
use spire_agent_workload::{Endpoint, EndpointConfig, UnixAttestor, UnixConfig, WorkloadAttestor};
use spire_id::{Selector, TrustDomain};
use spire_svid::Bundle;
use spire_task::Shutdown;

use super::*;

/// An attestor that always fails, so attestation fails and the API answers `Unavailable`.
#[derive(Debug)]
struct Failing;

#[async_trait::async_trait]
impl WorkloadAttestor for Failing {
    fn name(&self) -> &str {
        "failing"
    }

    async fn attest(&self, _pid: i32) -> Result<Vec<Selector>, spire_agent_plugin::Error> {
        Err(spire_agent_plugin::Error::Config(
            "broken on purpose".into(),
        ))
    }
}

struct Agent {
    dir: tempfile::TempDir,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            shutdown: Shutdown::new(),
            task: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("public/api.sock")
    }

    /// Serves the Workload API on [`Agent::socket`] with an empty cache.
    fn serve(&mut self, attestor: Arc<dyn WorkloadAttestor>, allow_unauthenticated: bool) {
        let td = TrustDomain::new("example.org").unwrap();
        let cache = Cache::new(
            CacheConfig {
                trust_domain: td.clone(),
                x509_svid_cache_max_size: 1000,
            },
            Bundle::new(td),
        );
        let endpoint = Endpoint::bind(EndpointConfig {
            socket_path: self.socket(),
            allow_unauthenticated_verifiers: allow_unauthenticated,
            ..EndpointConfig::default()
        })
        .unwrap();
        let stop = self.shutdown.clone();
        self.task = Some(tokio::spawn(async move {
            endpoint.serve(cache, vec![attestor], stop).await.unwrap();
        }));
    }

    async fn stop(&mut self) {
        self.shutdown.trigger();
        self.task.take().unwrap().await.unwrap();
    }
}

fn unavailable() -> Value {
    json!({ "make_new_x509_err": "workload api is unavailable" })
}

fn unix() -> Arc<dyn WorkloadAttestor> {
    Arc::new(UnixAttestor::new(UnixConfig::default()))
}

#[tokio::test]
async fn while_the_socket_is_not_up_yet_the_agent_is_live_but_not_ready() {
    let agent = Agent::new();
    let check = agent_checker(agent.socket());
    assert_eq!(check.name(), "agent");
    let state = check.check().await;
    assert!(state.live, "still starting (attesting): live");
    assert!(!state.ready);
    assert_eq!(state.live_details, json!({}));
    assert_eq!(state.ready_details, unavailable());
}

#[tokio::test]
async fn permission_denied_for_the_checking_process_is_healthy() {
    let mut agent = Agent::new();
    agent.serve(unix(), false);
    let state = agent_checker(agent.socket()).check().await;
    assert_eq!(state, State::healthy(), "no identity issued: the API is up");
    agent.stop().await;
}

#[tokio::test]
async fn bundles_for_an_unauthenticated_verifier_are_healthy() {
    let mut agent = Agent::new();
    agent.serve(unix(), true);
    assert_eq!(
        agent_checker(agent.socket()).check().await,
        State::healthy()
    );
    agent.stop().await;
}

#[tokio::test]
async fn unavailable_is_neither_live_nor_ready_once_started() {
    let mut agent = Agent::new();
    agent.serve(Arc::new(Failing), false);
    let state = agent_checker(agent.socket()).check().await;
    assert!(!state.live && !state.ready);
    assert_eq!(state.live_details, unavailable());
    assert_eq!(state.ready_details, unavailable());
    agent.stop().await;
}

#[tokio::test]
async fn a_socket_that_goes_away_after_starting_is_not_live() {
    let mut agent = Agent::new();
    agent.serve(unix(), false);
    let check = agent_checker(agent.socket());
    assert!(check.check().await.passing());
    agent.stop().await;
    let state = check.check().await;
    assert!(!state.live && !state.ready, "{state:?}");
    assert_eq!(state.live_details, unavailable());
}

#[tokio::test]
async fn a_socket_that_never_answers_is_unhealthy() {
    let agent = Agent::new();
    std::fs::create_dir_all(agent.socket().parent().unwrap()).unwrap();
    // Bound, never accepted from: connections queue, no answer ever comes.
    let _listener = tokio::net::UnixListener::bind(agent.socket()).unwrap();
    let check = AgentCheck {
        socket: agent.socket(),
        timeout: Duration::from_millis(200),
        started: AtomicBool::new(false),
    };
    let state = check.check().await;
    assert!(!state.live && !state.ready, "{state:?}");
    assert_eq!(
        state.ready_details,
        json!({ "make_new_x509_err": "workload api did not answer within 200ms" })
    );
}
