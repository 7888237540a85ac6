//! The `SpiffeWorkloadAPI` gRPC service with SPIRE's semantics. The JWT methods are in
//! [`jwt`].

use std::collections::BTreeSet;
use std::sync::Arc;

use spire_agent_cache::{Cache, JwtSvidSource, Subscription, WorkloadUpdate};
use spire_id::SelectorSet;
use spire_metrics::{CallCounter, Code, Counter, Gauge, GaugeGuard, Registry};
use spire_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use spire_task::Shutdown;
use spire_time::{SharedClock, SystemClock};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::WorkloadAttestor;
use crate::peer::{attest_caller, caller_pid};
use crate::response::jwt::{JwtBundlesMessage, jwt_bundles_message};
use crate::response::{BundlesMessage, bundles_message, svid_message};

mod jwt;

/// The metadata key every Workload API call must carry with exactly one value `true`
/// (SSRF protection).
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The Workload API service: attests each caller and streams what the cache holds for it.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkloadApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: Cache,
    attestors: Vec<Arc<dyn WorkloadAttestor>>,
    settings: ServiceSettings,
    stop: Shutdown,
    metrics: Metrics,
}

/// SPIRE's Workload API series, resolved once.
#[derive(Debug)]
struct Metrics {
    /// `workload_api.connection`: calls accepted.
    connection: Counter,
    /// `workload_api.connections`: calls (streams) in progress.
    connections: Gauge,
    /// `workload_api.workload_attestation`: attestation of a caller.
    attestation: CallCounter,
}

/// What the service needs besides the cache and the attestors.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// `allow_unauthenticated_verifiers`: callers without an identity still get bundles.
    pub allow_unauthenticated_verifiers: bool,
    /// `allowed_foreign_jwt_claims`: claims ValidateJWTSVID returns for subjects of other
    /// trust domains besides `sub`, `aud` and `exp`.
    pub allowed_foreign_jwt_claims: BTreeSet<String>,
    /// Where JWT-SVIDs come from (the agent manager's JWT-SVID cache); without one
    /// FetchJWTSVID answers Unavailable.
    pub jwt_source: Option<Arc<dyn JwtSvidSource>>,
    /// Wall time for ValidateJWTSVID.
    pub clock: SharedClock,
    /// The agent's telemetry (`workload_api.*`).
    pub metrics: Registry,
}

/// The interceptor type of [`WorkloadApi::into_server`].
pub type HeaderCheck = fn(Request<()>) -> Result<Request<()>, Status>;

// === impl ServiceSettings ===

impl Default for ServiceSettings {
    /// SPIRE's defaults, no JWT-SVID source, the system clock.
    fn default() -> Self {
        Self {
            allow_unauthenticated_verifiers: false,
            allowed_foreign_jwt_claims: BTreeSet::new(),
            jwt_source: None,
            clock: Arc::new(SystemClock),
            metrics: Registry::default(),
        }
    }
}

// === impl WorkloadApi ===

impl WorkloadApi {
    /// A service over `cache`, attesting callers with `attestors`. Streams end on `stop`,
    /// which waits for them (each holds a [`spire_task::DrainGuard`]).
    pub fn new(
        cache: Cache,
        attestors: Vec<Arc<dyn WorkloadAttestor>>,
        settings: ServiceSettings,
        stop: Shutdown,
    ) -> Self {
        let metrics = Metrics {
            connection: settings
                .metrics
                .counter(&["workload_api", "connection"], &[]),
            connections: settings
                .metrics
                .gauge(&["workload_api", "connections"], &[]),
            attestation: settings
                .metrics
                .call(&["workload_api", "workload_attestation"], &[]),
        };
        Self {
            inner: Arc::new(Inner {
                cache,
                attestors,
                settings,
                stop,
                metrics,
            }),
        }
    }

    /// Counts one call and holds it in the `connections` gauge until the guard drops (at the
    /// end of a stream).
    fn connection(&self) -> GaugeGuard {
        self.inner.metrics.connection.inc();
        self.inner.metrics.connections.track()
    }

    /// The routable gRPC service, with the security header checked on every method.
    pub fn into_server(self) -> InterceptedService<SpiffeWorkloadApiServer<Self>, HeaderCheck> {
        SpiffeWorkloadApiServer::with_interceptor(self, check_security_header as HeaderCheck)
    }

    /// Attests the caller of `request`; every failure is `Unavailable`.
    async fn attest<T>(&self, request: &Request<T>) -> Result<SelectorSet, Status> {
        let Some(pid) = caller_pid(request) else {
            tracing::warn!("workload API caller without a peer PID");
            return Err(attestation_failed());
        };
        let timer = self.inner.metrics.attestation.start();
        let attested = attest_caller(pid, &self.inner.attestors).await;
        timer.finish(if attested.is_ok() {
            Code::Ok
        } else {
            Code::Unavailable
        });
        attested.map_err(|error| {
            tracing::warn!(pid, %error, "workload attestation failed");
            attestation_failed()
        })
    }

    /// The caller's subscription and its first update.
    async fn subscribe<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Subscription, Arc<WorkloadUpdate>), Status> {
        let selectors = self.attest(request).await?;
        let mut subscription = self.inner.cache.subscribe(selectors);
        let first = subscription.next().await.ok_or_else(cache_gone)?;
        Ok((subscription, first))
    }

    /// A bundle stream: the message `build` makes of the caller's first update at once, then
    /// one for each later update unless it equals the last one sent (`response` picks what is
    /// sent and compared out of a built message). An error ends the stream.
    async fn bundle_stream<T, M, R>(
        &self,
        request: &Request<T>,
        build: impl Fn(&WorkloadUpdate) -> Result<Arc<M>, Status> + Send + 'static,
        response: fn(&M) -> &R,
    ) -> Result<ReceiverStream<Result<R, Status>>, Status>
    where
        M: Send + Sync + 'static,
        R: PartialEq + Clone + Send + 'static,
    {
        let connection = self.connection();
        let (mut subscription, first) = self.subscribe(request).await?;
        let mut last = build(&first)?;
        let (tx, rx) = mpsc::channel(1);
        let stopped = self.inner.stop.stopped();
        let in_flight = self.inner.stop.guard();
        let first = Ok(response(&last).clone());
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _connection = connection;
            tokio::pin!(stopped);
            if tx.send(first).await.is_err() {
                return;
            }
            loop {
                let update = tokio::select! {
                    // The next change for this caller (`None`: the cache is gone).
                    update = subscription.next() => update,
                    // The client went away.
                    () = tx.closed() => return,
                    // The agent is stopping.
                    () = &mut stopped => return,
                };
                let item = match update {
                    Some(update) => build(&update),
                    None => Err(cache_gone()),
                };
                match item {
                    // Identical consecutive messages are not sent again.
                    Ok(message)
                        if Arc::ptr_eq(&message, &last)
                            || response(&message) == response(&last) => {}
                    Ok(message) => {
                        if tx.send(Ok(response(&message).clone())).await.is_err() {
                            return;
                        }
                        last = message;
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = ReceiverStream<Result<X509svidResponse, Status>>;
    type FetchX509BundlesStream = ReceiverStream<Result<X509BundlesResponse, Status>>;
    type FetchJWTBundlesStream = ReceiverStream<Result<JwtBundlesResponse, Status>>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let connection = self.connection();
        let (mut subscription, first) = self.subscribe(&request).await?;
        let first = svid_item(&first)?;
        let (tx, rx) = mpsc::channel(1);
        let stopped = self.inner.stop.stopped();
        let in_flight = self.inner.stop.guard();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _connection = connection;
            tokio::pin!(stopped);
            let mut item = Ok(first);
            loop {
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
                let update = tokio::select! {
                    // The next change for this caller (`None`: the cache is gone).
                    update = subscription.next() => update,
                    // The client went away.
                    () = tx.closed() => return,
                    // The agent is stopping.
                    () = &mut stopped => return,
                };
                item = match update {
                    Some(update) => svid_item(&update),
                    None => Err(cache_gone()),
                };
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let allow = self.inner.settings.allow_unauthenticated_verifiers;
        let build = move |update: &WorkloadUpdate| {
            entitled_to_bundles(update, allow)?;
            Ok(bundles_message(update))
        };
        let stream = self
            .bundle_stream(&request, build, |m: &BundlesMessage| &m.0)
            .await?;
        Ok(Response::new(stream))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let _connection = self.connection();
        self.jwt_svids(request).await.map(Response::new)
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let allow = self.inner.settings.allow_unauthenticated_verifiers;
        let build = move |update: &WorkloadUpdate| {
            entitled_to_bundles(update, allow)?;
            Ok(jwt_bundles_message(update))
        };
        let stream = self
            .bundle_stream(&request, build, |m: &JwtBundlesMessage| &m.0)
            .await?;
        Ok(Response::new(stream))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        let _connection = self.connection();
        self.validate_jwt_svid(request).await.map(Response::new)
    }
}

// === helpers ===

/// The interceptor on every `/SpiffeWorkloadAPI/` method: metadata `workload.spiffe.io` must
/// be present exactly once with the value `true`.
pub fn check_security_header(request: Request<()>) -> Result<Request<()>, Status> {
    let mut values = request.metadata().get_all(SECURITY_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if value.as_bytes() == b"true" => Ok(request),
        _ => Err(Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

fn svid_item(update: &WorkloadUpdate) -> Result<X509svidResponse, Status> {
    svid_message(update).0.clone().ok_or_else(no_identity)
}

/// Bundle streams need an identity unless `allow_unauthenticated_verifiers`.
fn entitled_to_bundles(
    update: &WorkloadUpdate,
    allow_unauthenticated_verifiers: bool,
) -> Result<(), Status> {
    if update.identities.is_empty() && !allow_unauthenticated_verifiers {
        return Err(no_identity());
    }
    Ok(())
}

fn attestation_failed() -> Status {
    Status::unavailable("workload attestation failed")
}

fn no_identity() -> Status {
    Status::permission_denied("no identity issued")
}

fn cache_gone() -> Status {
    Status::unavailable("workload API is shutting down")
}

#[cfg(test)]
mod tests;
