//! The agent's admin socket (`admin_socket_path`): SPIRE's agent Logger API
//! (`spire.api.agent.logger.v1.Logger`) and Debug API (`spire.agent.debug.v1.Debug`), for
//! callers that can open the socket (directory 0750, socket 0770, as the server's admin
//! socket). Served through `spire-uds`'s `:authority` adapter like every Unix socket we own.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use spire_agent_manager::Manager;
use spire_cli::{LogHandle, LogLevel};
use spire_id::SpiffeId;
use spire_proto::spire::agent::debug::v1::debug_server::{Debug, DebugServer};
use spire_proto::spire::agent::debug::v1::get_info_response::Cert;
use spire_proto::spire::agent::debug::v1::{GetInfoRequest, GetInfoResponse};
use spire_proto::spire::api::agent::logger::v1::logger_server::{Logger, LoggerServer};
use spire_proto::spire::api::agent::logger::v1::{
    GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest,
};
use spire_proto::spire::api::types::{self, LogLevel as ApiLevel};
use spire_task::Shutdown;
use spire_time::SharedClock;
use tonic::{Request, Response, Status};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::Error;

/// The Logger service over the process's logger.
#[derive(Clone, Debug)]
struct LoggerService {
    log: LogHandle,
}

/// The Debug service: what the agent holds and how long it has run.
#[derive(Clone, Debug)]
pub(crate) struct DebugService {
    pub(crate) manager: Arc<Manager>,
    pub(crate) clock: SharedClock,
    pub(crate) started_at: SystemTime,
}

/// Binds the admin socket and serves it until `stop`.
pub(crate) fn serve(
    path: &Path,
    log: LogHandle,
    debug: DebugService,
    stop: Shutdown,
) -> Result<impl Future<Output = Result<(), tonic::transport::Error>> + use<>, Error> {
    let listener = spire_uds::bind(path, 0o750, 0o770)
        .map_err(|e| Error::Config(format!("cannot serve admin_socket_path: {e}")))?;
    tracing::info!(
        launch_log_level = log.launch_level().as_str(),
        "Logger service configured"
    );
    let routes = tonic::service::Routes::new(LoggerServer::new(LoggerService { log }))
        .add_service(DebugServer::new(debug));
    Ok(tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(spire_uds::incoming(listener), async move {
            stop.stopped().await;
        }))
}

// === impl LoggerService ===

impl LoggerService {
    fn logger(&self) -> types::Logger {
        types::Logger {
            current_level: self.log.current_level().to_api().into(),
            launch_level: self.log.launch_level().to_api().into(),
        }
    }

    fn set(&self, level: LogLevel) -> Result<Response<types::Logger>, Status> {
        self.log.set_level(level).map_err(|e| {
            tracing::error!(error = %e, "Failed to set log level");
            Status::internal(format!("failed to set log level: {e}"))
        })?;
        Ok(Response::new(self.logger()))
    }
}

#[tonic::async_trait]
impl Logger for LoggerService {
    async fn get_logger(
        &self,
        _request: Request<GetLoggerRequest>,
    ) -> Result<Response<types::Logger>, Status> {
        tracing::info!("GetLogger Called");
        Ok(Response::new(self.logger()))
    }

    async fn set_log_level(
        &self,
        request: Request<SetLogLevelRequest>,
    ) -> Result<Response<types::Logger>, Status> {
        let level = match ApiLevel::try_from(request.into_inner().new_level) {
            Ok(ApiLevel::Unspecified) => {
                let message = "newLevel value cannot be LogLevel_UNSPECIFIED";
                tracing::error!("Invalid argument: {message}");
                return Err(Status::invalid_argument(message));
            }
            Ok(level) => LogLevel::from_api(level),
            Err(_) => None,
        };
        let Some(level) = level else {
            tracing::error!("Invalid argument: unsupported log level");
            return Err(Status::invalid_argument("unsupported log level"));
        };
        tracing::info!(new_log_level = level.as_str(), "SetLogLevel Called");
        self.set(level)
    }

    async fn reset_log_level(
        &self,
        _request: Request<ResetLogLevelRequest>,
    ) -> Result<Response<types::Logger>, Status> {
        let launch = self.log.launch_level();
        tracing::info!(launch_log_level = launch.as_str(), "ResetLogLevel Called");
        self.set(launch)
    }
}

// === impl DebugService ===

#[tonic::async_trait]
impl Debug for DebugService {
    async fn get_info(
        &self,
        _request: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        let uptime = self
            .clock
            .now()
            .duration_since(self.started_at)
            .unwrap_or_default()
            .as_secs();
        let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        let x509 = self.manager.cache().svid_count();
        Ok(Response::new(GetInfoResponse {
            svid_chain: self
                .manager
                .agent_svid()
                .iter()
                .filter_map(|der| cert_info(der))
                .collect(),
            uptime: count(uptime),
            svids_count: count(x509 as u64),
            last_sync_success: self.manager.last_sync_success(),
            cached_x509_svids_count: count(x509 as u64),
            cached_jwt_svids_count: count(self.manager.jwt_svid_count() as u64),
            // There is no SVID store.
            cached_svidstore_x509_svids_count: 0,
        }))
    }
}

/// One certificate of the agent's chain: its SPIFFE ID (the URI SAN, if any), expiry, and
/// subject as Go's `pkix.Name` prints it (most specific attribute first, comma-separated).
fn cert_info(der: &[u8]) -> Option<Cert> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let id = cert
        .extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.iter()),
            _ => None,
        })
        .flatten()
        .find_map(|name| match name {
            GeneralName::URI(uri) => SpiffeId::parse(uri).ok(),
            _ => None,
        })
        .map(|id| types::Spiffeid {
            trust_domain: id.trust_domain().name().to_owned(),
            path: id.path().to_owned(),
        });
    let mut parts = Vec::new();
    for rdn in cert.subject().iter().collect::<Vec<_>>().into_iter().rev() {
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let key = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map_or_else(|_| oid.to_id_string(), str::to_owned);
            let key = if key == "serialNumber" {
                "SERIALNUMBER".to_owned()
            } else {
                key
            };
            parts.push(format!("{key}={}", attr.as_str().unwrap_or_default()));
        }
    }
    Some(Cert {
        id,
        expires_at: cert.validity().not_after.timestamp(),
        subject: parts.join(","),
    })
}
