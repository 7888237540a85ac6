//! The `SecretDiscoveryService` gRPC service.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use spire_agent_cache::{Cache, Subscription};
use spire_agent_workload::WorkloadAttestor;
use spire_agent_workload::peer::{attest_caller, caller_pid};
use spire_metrics::{Counter, Gauge, GaugeGuard, Registry};
use spire_task::Shutdown;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use crate::stream::{StreamState, nonce};
use crate::{Error, SdsConfig, ValidatorMode, secrets};

/// The SDS service: attests each caller and serves what the cache holds for it. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct SdsService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: Cache,
    attestors: Vec<Arc<dyn WorkloadAttestor>>,
    config: SdsConfig,
    stop: Shutdown,
    /// SPIRE's `sds_api_connection` (calls accepted) and `sds_api_connections` (in progress).
    connection: Counter,
    connections: Gauge,
}

type ResponseStream = ReceiverStream<Result<DiscoveryResponse, Status>>;

// === impl SdsService ===

impl SdsService {
    /// The gRPC service name (`envoy.service.secret.v3.SecretDiscoveryService`).
    pub const NAME: &str = <SecretDiscoveryServiceServer<SdsService> as NamedService>::NAME;

    /// A service over `cache`, attesting callers with `attestors`, counting its calls in
    /// `metrics`. Streams end on `stop`, which waits for them (each holds a
    /// [`spire_task::DrainGuard`]).
    pub fn new(
        cache: Cache,
        attestors: Vec<Arc<dyn WorkloadAttestor>>,
        config: SdsConfig,
        stop: Shutdown,
        metrics: &Registry,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cache,
                attestors,
                config,
                stop,
                connection: metrics.counter(&["sds_api", "connection"], &[]),
                connections: metrics.gauge(&["sds_api", "connections"], &[]),
            }),
        }
    }

    /// Counts one call and holds it in the `connections` gauge until the guard drops (at the
    /// end of a stream).
    fn connection(&self) -> GaugeGuard {
        self.inner.connection.inc();
        self.inner.connections.track()
    }

    /// The routable gRPC service (no security header: Envoy does not send one).
    pub fn into_server(self) -> SecretDiscoveryServiceServer<Self> {
        SecretDiscoveryServiceServer::new(self)
    }

    /// The service as tonic [`Routes`], to serve next to other services on one socket.
    pub fn into_routes(self) -> Routes {
        Routes::new(self.into_server())
    }

    /// Attests the caller of `request` and subscribes it to the cache.
    async fn subscribe<T>(&self, request: &Request<T>) -> Result<Subscription, Status> {
        let Some(pid) = caller_pid(request) else {
            tracing::warn!("SDS caller without a peer PID");
            return Err(Error::AttestationFailed.into());
        };
        let selectors = attest_caller(pid, &self.inner.attestors)
            .await
            .map_err(|error| {
                tracing::warn!(pid, %error, "workload attestation failed");
                Status::from(Error::AttestationFailed)
            })?;
        Ok(self.inner.cache.subscribe(selectors))
    }
}

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type DeltaSecretsStream = tokio_stream::Empty<Result<DeltaDiscoveryResponse, Status>>;
    type StreamSecretsStream = ResponseStream;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented("Method is not implemented"))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let connection = self.connection();
        let subscription = self.subscribe(&request).await?;
        let (tx, rx) = mpsc::channel(1);
        let inner = Arc::clone(&self.inner);
        let stopped = inner.stop.stopped();
        let in_flight = inner.stop.guard();
        tokio::spawn(async move {
            let (_in_flight, _connection) = (in_flight, connection);
            tokio::select! {
                result = serve_stream(&inner.config, subscription, request.into_inner(), &tx) => {
                    if let Err(status) = result {
                        let _ = tx.send(Err(status)).await;
                    }
                }
                () = tx.closed() => {}
                () = stopped => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let _connection = self.connection();
        let mut subscription = self.subscribe(&request).await?;
        let update = tokio::select! {
            update = subscription.next() => update.ok_or(Error::ShuttingDown)?,
            () = self.inner.stop.stopped() => return Err(Error::ShuttingDown.into()),
        };
        let request = request.into_inner();
        let config = &self.inner.config;
        let mode =
            ValidatorMode::for_node(config.disable_spiffe_cert_validation, request.node.as_ref());
        let resources = secrets::resources(config, &request.resource_names, mode, &update)?;
        Ok(Response::new(DiscoveryResponse {
            resources: resources.iter().map(|any| (**any).clone()).collect(),
            type_url: request.type_url,
            ..DiscoveryResponse::default()
        }))
    }
}

/// One `StreamSecrets` stream until the client goes away (`Ok`) or an error ends it.
async fn serve_stream(
    config: &SdsConfig,
    mut subscription: Subscription,
    mut requests: Streaming<DiscoveryRequest>,
    tx: &mpsc::Sender<Result<DiscoveryResponse, Status>>,
) -> Result<(), Status> {
    let mut state = StreamState::new();
    // As SPIRE: the first update (the caller's SVIDs minted) comes before any request is read.
    let first = subscription.next().await.ok_or(Error::ShuttingDown)?;
    state.on_update(first);
    loop {
        let (respond, only_if_changed) = tokio::select! {
            request = requests.next() => match request {
                Some(Ok(request)) => (state.on_request(request), false),
                // The client half-closed or cancelled.
                None => return Ok(()),
                Some(Err(status)) if status.code() == tonic::Code::Cancelled => return Ok(()),
                Some(Err(status)) => {
                    tracing::debug!(%status, "SDS request stream failed");
                    return Ok(());
                }
            },
            update = subscription.next() => match update {
                Some(update) => (state.on_update(update), true),
                None => return Err(Error::ShuttingDown.into()),
            },
        };
        if !respond {
            continue;
        }
        if let Some(response) = state.respond(config, nonce(), only_if_changed)?
            && tx.send(Ok(response)).await.is_err()
        {
            return Ok(());
        }
    }
}
