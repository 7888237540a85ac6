//! The `SpiffeWorkloadAPI` gRPC service with SPIRE's semantics.

use std::sync::Arc;

use spire_agent_cache::{Cache, Subscription};
use spire_id::SelectorSet;
use spire_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse, X509svidRequest,
    X509svidResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::WorkloadAttestor;
use crate::peer::{attest_caller, caller_pid};
use crate::response::{bundles_message, svid_message};

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
    allow_unauthenticated_verifiers: bool,
    stop: watch::Receiver<bool>,
}

/// The interceptor type of [`WorkloadApi::into_server`].
pub type HeaderCheck = fn(Request<()>) -> Result<Request<()>, Status>;

// === impl WorkloadApi ===

impl WorkloadApi {
    /// A service over `cache`, attesting callers with `attestors`. Streams end once `stop`
    /// turns true (or its sender is dropped).
    pub fn new(
        cache: Cache,
        attestors: Vec<Arc<dyn WorkloadAttestor>>,
        allow_unauthenticated_verifiers: bool,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cache,
                attestors,
                allow_unauthenticated_verifiers,
                stop,
            }),
        }
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
        attest_caller(pid, &self.inner.attestors)
            .await
            .map_err(|error| {
                tracing::warn!(pid, %error, "workload attestation failed");
                attestation_failed()
            })
    }

    /// The caller's subscription and its first update.
    async fn subscribe<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(Subscription, Arc<spire_agent_cache::WorkloadUpdate>), Status> {
        let selectors = self.attest(request).await?;
        let mut subscription = self.inner.cache.subscribe(selectors);
        let first = subscription.next().await.ok_or_else(cache_gone)?;
        Ok((subscription, first))
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = ReceiverStream<Result<X509svidResponse, Status>>;
    type FetchX509BundlesStream = ReceiverStream<Result<X509BundlesResponse, Status>>;
    type FetchJWTBundlesStream = tokio_stream::Empty<Result<JwtBundlesResponse, Status>>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let (mut subscription, first) = self.subscribe(&request).await?;
        let first = svid_item(&first)?;
        let (tx, rx) = mpsc::channel(1);
        let stop = self.inner.stop.clone();
        tokio::spawn(async move {
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
                    () = stopped(stop.clone()) => return,
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
        let allow = self.inner.allow_unauthenticated_verifiers;
        let (mut subscription, first) = self.subscribe(&request).await?;
        let mut last = bundles_item(&first, allow)?;
        let (tx, rx) = mpsc::channel(1);
        let stop = self.inner.stop.clone();
        let first = Ok(last.0.clone());
        tokio::spawn(async move {
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
                    () = stopped(stop.clone()) => return,
                };
                let item = match update {
                    Some(update) => bundles_item(&update, allow),
                    None => Err(cache_gone()),
                };
                match item {
                    // Identical consecutive messages are not sent again.
                    Ok(message) if message.0 == last.0 => {}
                    Ok(message) => {
                        if tx.send(Ok(message.0.clone())).await.is_err() {
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
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_jwtsvid(
        &self,
        _request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        Err(Status::unimplemented("FetchJWTSVID is not implemented"))
    }

    async fn fetch_jwt_bundles(
        &self,
        _request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("FetchJWTBundles is not implemented"))
    }

    async fn validate_jwtsvid(
        &self,
        _request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("ValidateJWTSVID is not implemented"))
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

fn svid_item(update: &spire_agent_cache::WorkloadUpdate) -> Result<X509svidResponse, Status> {
    svid_message(update).0.clone().ok_or_else(no_identity)
}

fn bundles_item(
    update: &spire_agent_cache::WorkloadUpdate,
    allow_unauthenticated_verifiers: bool,
) -> Result<Arc<crate::response::BundlesMessage>, Status> {
    if update.identities.is_empty() && !allow_unauthenticated_verifiers {
        return Err(no_identity());
    }
    Ok(bundles_message(update))
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

/// Resolves once `stop` is true or its sender is gone.
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests;
