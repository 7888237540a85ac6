//! Shared setup of the integration tests: a test CA, SVIDs minted under it, a real agent
//! cache and a served endpoint (with a JWT-SVID source when asked).
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use spire_agent_cache::{Cache, JwtSvidSource};
use spire_agent_workload::{Endpoint, EndpointConfig, UnixAttestor, UnixConfig, WorkloadAttestor};
use spire_task::Shutdown;
use spire_time::SharedClock;

mod fixtures;
mod jwt;
pub use fixtures::*;
#[allow(unused_imports)] // only the JWT suites use these
pub use jwt::*;

/// A served endpoint on a socket in a temporary directory; serving stops on drop.
pub struct Served {
    pub socket: PathBuf,
    pub task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    stop: StopOnDrop,
}

/// Triggers the endpoint's stop signal when dropped.
struct StopOnDrop(Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

impl Served {
    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Asks the endpoint to stop (as the agent does on SIGTERM).
    pub fn stop(&self) {
        self.stop.0.trigger();
    }
}

pub fn serve(cache: &Cache, allow_unauthenticated_verifiers: bool) -> Served {
    serve_with(
        cache,
        EndpointConfig {
            allow_unauthenticated_verifiers,
            ..EndpointConfig::default()
        },
    )
}

/// Serves with `config`, its socket path replaced by a fresh temp path.
pub fn serve_with(cache: &Cache, config: EndpointConfig) -> Served {
    serve_endpoint(cache, config, None)
}

/// Serves with `config` and JWT-SVIDs from `source`, validating against `clock`.
pub fn serve_jwt(
    cache: &Cache,
    config: EndpointConfig,
    source: Arc<dyn JwtSvidSource>,
    clock: SharedClock,
) -> Served {
    serve_endpoint(cache, config, Some((source, clock)))
}

fn serve_endpoint(
    cache: &Cache,
    config: EndpointConfig,
    jwt: Option<(Arc<dyn JwtSvidSource>, SharedClock)>,
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("public/api.sock");
    let mut endpoint = Endpoint::bind(EndpointConfig {
        socket_path: socket.clone(),
        ..config
    })
    .unwrap();
    if let Some((source, clock)) = jwt {
        endpoint = endpoint.with_jwt(source, clock);
    }
    let stop = Shutdown::new();
    let stopped = stop.clone();
    let attestors: Vec<Arc<dyn WorkloadAttestor>> =
        vec![Arc::new(UnixAttestor::new(UnixConfig::default()))];
    let cache = cache.clone();
    let task =
        tokio::spawn(async move { endpoint.serve(cache, attestors, stopped).await.unwrap() });
    Served {
        socket,
        task,
        _dir: dir,
        stop: StopOnDrop(stop),
    }
}
