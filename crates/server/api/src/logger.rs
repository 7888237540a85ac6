//! `spire.api.server.logger.v1.Logger`: the server's log level, read and changed while it runs
//! (admin socket only). The level itself lives with the process's logger, behind
//! [`LogLevelControl`].

use std::fmt;
use std::sync::Arc;

use spire_proto::spire::api::server::logger::v1::{
    GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest, logger_server::Logger,
};
use spire_proto::spire::api::types::{self, LogLevel};
use tonic::{Code, Request, Response, Status};

use crate::status::make_err;

/// The process's log level, as the Logger service sees it.
pub trait LogLevelControl: Send + Sync + fmt::Debug + 'static {
    /// The level in force.
    fn current_level(&self) -> LogLevel;
    /// The level the process started with (`ResetLogLevel` goes back to it).
    fn launch_level(&self) -> LogLevel;
    /// Puts `level` (never `UNSPECIFIED`) in force for every line logged from now on.
    fn set_level(&self, level: LogLevel) -> Result<(), String>;
}

/// The Logger service.
#[derive(Clone, Debug)]
pub struct LoggerService {
    control: Arc<dyn LogLevelControl>,
}

/// logrus's name of a level (`warning` for `WARN`), as SPIRE logs it.
pub fn logrus_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Unspecified => "unspecified",
        LogLevel::Panic => "panic",
        LogLevel::Fatal => "fatal",
        LogLevel::Error => "error",
        LogLevel::Warn => "warning",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

// === impl LoggerService ===

impl LoggerService {
    /// The service over `control`.
    pub fn new(control: Arc<dyn LogLevelControl>) -> Self {
        tracing::info!(
            launch_log_level = logrus_name(control.launch_level()),
            "Logger service configured"
        );
        Self { control }
    }

    fn logger(&self) -> types::Logger {
        types::Logger {
            current_level: self.control.current_level().into(),
            launch_level: self.control.launch_level().into(),
        }
    }

    fn set(&self, level: LogLevel) -> Result<Response<types::Logger>, Status> {
        self.control
            .set_level(level)
            .map_err(|e| make_err(Code::Internal, "failed to set log level", Some(&e)))?;
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
        let level = match LogLevel::try_from(request.into_inner().new_level) {
            Ok(LogLevel::Unspecified) => {
                return Err(make_err(
                    Code::InvalidArgument,
                    "newLevel value cannot be LogLevel_UNSPECIFIED",
                    None,
                ));
            }
            Ok(level) => level,
            Err(_) => {
                return Err(make_err(
                    Code::InvalidArgument,
                    "unsupported log level",
                    None,
                ));
            }
        };
        tracing::info!(new_log_level = logrus_name(level), "SetLogLevel Called");
        self.set(level)
    }

    async fn reset_log_level(
        &self,
        _request: Request<ResetLogLevelRequest>,
    ) -> Result<Response<types::Logger>, Status> {
        let launch = self.control.launch_level();
        tracing::info!(
            launch_log_level = logrus_name(launch),
            "ResetLogLevel Called"
        );
        self.set(launch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Debug)]
    struct Fixed {
        launch: LogLevel,
        current: Mutex<LogLevel>,
    }

    impl LogLevelControl for Fixed {
        fn current_level(&self) -> LogLevel {
            *self.current.lock().unwrap()
        }
        fn launch_level(&self) -> LogLevel {
            self.launch
        }
        fn set_level(&self, level: LogLevel) -> Result<(), String> {
            *self.current.lock().unwrap() = level;
            Ok(())
        }
    }

    fn service() -> LoggerService {
        LoggerService::new(Arc::new(Fixed {
            launch: LogLevel::Info,
            current: Mutex::new(LogLevel::Info),
        }))
    }

    fn levels(logger: &types::Logger) -> (LogLevel, LogLevel) {
        (logger.current_level(), logger.launch_level())
    }

    #[tokio::test]
    async fn get_set_and_reset() {
        let service = service();
        let got = service
            .get_logger(Request::new(GetLoggerRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(levels(&got), (LogLevel::Info, LogLevel::Info));
        let set = service
            .set_log_level(Request::new(SetLogLevelRequest {
                new_level: LogLevel::Warn.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(levels(&set), (LogLevel::Warn, LogLevel::Info));
        let reset = service
            .reset_log_level(Request::new(ResetLogLevelRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(levels(&reset), (LogLevel::Info, LogLevel::Info));
    }

    #[tokio::test]
    async fn unspecified_and_unknown_levels_are_refused_as_spire_refuses_them() {
        let service = service();
        for (level, message) in [
            (0, "newLevel value cannot be LogLevel_UNSPECIFIED"),
            (42, "unsupported log level"),
        ] {
            let status = service
                .set_log_level(Request::new(SetLogLevelRequest { new_level: level }))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(status.message(), message);
        }
        let got = service
            .get_logger(Request::new(GetLoggerRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(levels(&got), (LogLevel::Info, LogLevel::Info));
    }
}
