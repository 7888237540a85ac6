//! `grpc.health.v1.Health` on the admin socket, answering SPIRE's question: can this server
//! read its own trust bundle? `Check` reads the bundle from the datastore on every call
//! (SERVING when it is there, NOT_SERVING when it is missing or cannot be read); a named
//! service is `InvalidArgument`; `Watch` is `Unimplemented`, as on a SPIRE server.

use std::pin::Pin;
use std::sync::Arc;

use spire_id::TrustDomain;
use spire_server_datastore::DataStore;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::ApiContext;
use crate::status::make_err;

/// What the health service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Whose bundle must be readable.
    pub trust_domain: TrustDomain,
    /// Where it is read from.
    pub datastore: Arc<dyn DataStore>,
}

/// The health service.
#[derive(Clone, Debug)]
pub struct HealthService {
    config: Config,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            datastore: ctx.datastore.clone(),
        }
    }
}

// === impl HealthService ===

impl HealthService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if !request.get_ref().service.is_empty() {
            return Err(make_err(
                Code::InvalidArgument,
                "per-service health is not supported",
                None,
            ));
        }
        let status = match self
            .config
            .datastore
            .fetch_bundle(&self.config.trust_domain)
            .await
        {
            Ok(Some(_)) => ServingStatus::Serving,
            Ok(None) => {
                tracing::warn!(reason = "bundle is missing", "Health check failed");
                ServingStatus::NotServing
            }
            Err(error) => {
                tracing::warn!(%error, reason = "unable to fetch bundle", "Health check failed");
                ServingStatus::NotServing
            }
        };
        Ok(Response::new(HealthCheckResponse {
            status: status.into(),
        }))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("method Watch not implemented"))
    }
}
