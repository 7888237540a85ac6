//! The agent's admin socket (`admin_socket_path`): SPIRE's agent Logger API
//! (`spire.api.agent.logger.v1.Logger`), for callers that can open the socket (directory
//! 0750, socket 0770, as the server's admin socket). Served through `spire-uds`'s
//! `:authority` adapter like every Unix socket we own.

use std::path::Path;

use spire_cli::{LogHandle, LogLevel};
use spire_proto::spire::api::agent::logger::v1::logger_server::{Logger, LoggerServer};
use spire_proto::spire::api::agent::logger::v1::{
    GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest,
};
use spire_proto::spire::api::types::{self, LogLevel as ApiLevel};
use spire_task::Shutdown;
use tonic::{Request, Response, Status};

use crate::Error;

/// The Logger service over the process's logger.
#[derive(Clone, Debug)]
struct LoggerService {
    log: LogHandle,
}

/// Binds the admin socket and serves it until `stop`.
pub(crate) fn serve(
    path: &Path,
    log: LogHandle,
    stop: Shutdown,
) -> Result<impl Future<Output = Result<(), tonic::transport::Error>> + use<>, Error> {
    let listener = spire_uds::bind(path, 0o750, 0o770)
        .map_err(|e| Error::Config(format!("cannot serve admin_socket_path: {e}")))?;
    tracing::info!(
        launch_log_level = log.launch_level().as_str(),
        "Logger service configured"
    );
    let routes = tonic::service::Routes::new(LoggerServer::new(LoggerService { log }));
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
