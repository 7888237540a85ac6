//! The public Unix socket: Workload API and gRPC health on one listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spire_agent_cache::{Cache, JwtSvidSource};
use spire_metrics::Registry;
use spire_metrics::rpc::{RpcMetrics, RpcMetricsLayer};
use spire_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use spire_task::Shutdown;
use spire_time::SharedClock;
use tokio::net::UnixListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::{Error, Result, ServiceSettings, WorkloadApi, WorkloadAttestor};

/// SPIRE's default agent socket (`socket_path`).
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-agent/public/api.sock";

/// Endpoint settings (the `agent {}` keys that concern the Workload API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    /// `socket_path`.
    pub socket_path: PathBuf,
    /// `allow_unauthenticated_verifiers`: callers without an identity still get bundles.
    pub allow_unauthenticated_verifiers: bool,
    /// `allowed_foreign_jwt_claims`: claims ValidateJWTSVID returns for subjects of other
    /// trust domains besides `sub`, `aud` and `exp`.
    pub allowed_foreign_jwt_claims: Vec<String>,
    /// `disable_workload_api`: the socket serves no `SpiffeWorkloadAPI` (its methods answer
    /// `Unimplemented`), only health and the extra routes (SDS).
    pub disable_workload_api: bool,
}

/// A bound (not yet serving) public socket; see [`Endpoint::bind`].
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    listener: UnixListener,
    /// Services built elsewhere (Envoy SDS) and their names; see [`Endpoint::with_routes`].
    extra: Option<(Vec<&'static str>, Routes)>,
    /// JWT-SVID source and clock; see [`Endpoint::with_jwt`].
    jwt: Option<(Arc<dyn JwtSvidSource>, SharedClock)>,
    /// The agent's telemetry; see [`Endpoint::with_metrics`].
    metrics: Registry,
}

/// Every method the socket serves, counted as SPIRE counts them (`rpc.workload_api.*`,
/// `rpc.sds.v3.*`, `rpc.health.*`).
const METHODS: &[&str] = &[
    "/SpiffeWorkloadAPI/FetchX509SVID",
    "/SpiffeWorkloadAPI/FetchX509Bundles",
    "/SpiffeWorkloadAPI/FetchJWTSVID",
    "/SpiffeWorkloadAPI/FetchJWTBundles",
    "/SpiffeWorkloadAPI/ValidateJWTSVID",
    "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets",
    "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets",
    "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

// === impl EndpointConfig ===

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
            allow_unauthenticated_verifiers: false,
            allowed_foreign_jwt_claims: Vec::new(),
            disable_workload_api: false,
        }
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// Creates the socket: the parent directory (0755) if missing, a stale socket file
    /// removed (anything else at the path is an error and left alone), the socket bound and
    /// made 0777 (any local process may call). Clients can connect from here on; requests
    /// are answered once [`Endpoint::serve`] runs. Call inside a tokio runtime.
    pub fn bind(config: EndpointConfig) -> Result<Self> {
        let listener = listen(&config.socket_path)?;
        Ok(Self {
            config,
            listener,
            extra: None,
            jwt: None,
            metrics: Registry::default(),
        })
    }

    /// Mints JWT-SVIDs through `source` (the agent manager's JWT-SVID cache) and validates
    /// tokens against `clock`. Without it FetchJWTSVID answers Unavailable and validation uses
    /// the system clock.
    pub fn with_jwt(mut self, source: Arc<dyn JwtSvidSource>, clock: SharedClock) -> Self {
        self.jwt = Some((source, clock));
        self
    }

    /// Records the socket's series in `metrics`: a call counter per method (one layer over
    /// every service on the socket) and the Workload API's connection series.
    pub fn with_metrics(mut self, metrics: Registry) -> Self {
        self.metrics = metrics;
        self
    }

    /// Also serves `routes` on this socket: services built by other crates (Envoy SDS, which
    /// needs no security header), whose gRPC service `names` health reports SERVING. A later
    /// call replaces the routes of an earlier one.
    pub fn with_routes(mut self, names: &[&'static str], routes: Routes) -> Self {
        self.extra = Some((names.to_vec(), routes));
        self
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.config.socket_path
    }

    /// Serves `SpiffeWorkloadAPI`, `grpc.health.v1.Health` (SERVING) and the routes given to
    /// [`Endpoint::with_routes`] until `stop`; open streams end then too.
    pub async fn serve(
        self,
        cache: Cache,
        attestors: Vec<Arc<dyn WorkloadAttestor>>,
        stop: Shutdown,
    ) -> Result<()> {
        let path = self.config.socket_path.clone();
        let incoming = spire_uds::incoming(self.listener);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        let api = if self.config.disable_workload_api {
            None
        } else {
            health_reporter
                .set_serving::<SpiffeWorkloadApiServer<WorkloadApi>>()
                .await;
            let mut settings = ServiceSettings {
                allow_unauthenticated_verifiers: self.config.allow_unauthenticated_verifiers,
                allowed_foreign_jwt_claims: self
                    .config
                    .allowed_foreign_jwt_claims
                    .iter()
                    .cloned()
                    .collect(),
                metrics: self.metrics.clone(),
                ..ServiceSettings::default()
            };
            if let Some((source, clock)) = self.jwt {
                settings.jwt_source = Some(source);
                settings.clock = clock;
            }
            Some(WorkloadApi::new(cache, attestors, settings, stop.clone()))
        };
        let (names, routes) = self.extra.unwrap_or_default();
        for name in names {
            health_reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        tracing::info!(
            path = %path.display(),
            workload_api = api.is_some(),
            "serving the agent socket"
        );
        let mut routes = routes.add_service(health);
        if let Some(api) = api {
            routes = routes.add_service(api.into_server());
        }
        let rpc = RpcMetrics::new(&self.metrics, METHODS.iter().copied());
        Server::builder()
            .layer(RpcMetricsLayer::new(rpc))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, stop.stopped())
            .await?;
        Ok(())
    }
}

/// Binds the public socket at `config.socket_path` and serves on it until `stop` (see
/// [`Endpoint::bind`] and [`Endpoint::serve`]). Call it once the agent can serve: the socket
/// appears only then.
pub async fn serve(
    config: EndpointConfig,
    cache: Cache,
    attestors: Vec<Arc<dyn WorkloadAttestor>>,
    stop: Shutdown,
) -> Result<()> {
    Endpoint::bind(config)?.serve(cache, attestors, stop).await
}

/// The listener: the one place the transport is chosen. `spire-uds` sets up the socket and
/// its accepted connections rewrite the `:authority` that gRPC C-core clients (py-spiffe)
/// send; they still carry SO_PEERCRED as tonic's `UdsConnectInfo`.
fn listen(path: &Path) -> Result<UnixListener> {
    spire_uds::bind(path, 0o755, 0o777).map_err(|error| Error::Socket {
        path: path.to_path_buf(),
        source: error,
    })
}

#[cfg(test)]
mod tests;
