//! `spire-server logger get|set|reset`: the running server's log level, through the Logger
//! API on the admin socket. Also the bridge between that API's levels and the process's
//! logger, for `run`.

use anyhow::bail;
use clap::{Args, Subcommand};
use spire_cli::{LogHandle, LogLevel, protojson};
use spire_proto::spire::api::server::logger::v1::logger_client::LoggerClient;
use spire_proto::spire::api::server::logger::v1::{
    GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest,
};
use spire_proto::spire::api::types::{self, LogLevel as ApiLevel};

use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, go_quote, rpc_err};

/// The `logger` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum LoggerCommand {
    /// Gets the logger details
    Get(GetArgs),
    /// Sets the logger details
    Set(SetArgs),
    /// Reset the logger details to launch level
    Reset(GetArgs),
}

/// Flags of `logger get` and `logger reset`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    socket: SocketArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Flags of `logger set`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct SetArgs {
    #[command(flatten)]
    socket: SocketArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The new log level, one of (panic, fatal, error, warn, info, debug, trace)
    #[arg(long = "level", value_name = "string", default_value = "")]
    level: String,
}

/// Runs one `logger` verb.
pub(crate) async fn run(command: LoggerCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    let (output, logger) = match command {
        LoggerCommand::Get(args) => {
            const PREFIX: &str = "error fetching logger: ";
            let mut client = client(&args.socket, PREFIX).await?;
            let logger = client
                .get_logger(GetLoggerRequest {})
                .await
                .map_err(|s| rpc_err(PREFIX, &s))?;
            (args.output, logger)
        }
        LoggerCommand::Set(args) => {
            if args.level.is_empty() {
                bail!("a value (-level) must be set");
            }
            let Ok(level) = LogLevel::parse(&args.level) else {
                bail!("the value {} is not a valid setting", go_quote(&args.level));
            };
            const PREFIX: &str = "failed to set log level: ";
            let mut client = client(&args.socket, PREFIX).await?;
            let logger = client
                .set_log_level(SetLogLevelRequest {
                    new_level: to_api(level).into(),
                })
                .await
                .map_err(|s| rpc_err(PREFIX, &s))?;
            (args.output, logger)
        }
        LoggerCommand::Reset(args) => {
            const PREFIX: &str = "failed to reset logger: ";
            let mut client = client(&args.socket, PREFIX).await?;
            let logger = client
                .reset_log_level(ResetLogLevelRequest {})
                .await
                .map_err(|s| rpc_err(PREFIX, &s))?;
            (args.output, logger)
        }
    };
    let logger = logger.into_inner();
    match output.output {
        OutputFormat::Json => protojson::print(io.out, &logger, "spire.api.types.Logger"),
        OutputFormat::Pretty => print_pretty(io, &logger),
    }
}

/// The Logger client on the admin socket. A failed dial is reported as the RPC's failure,
/// with its prefix, as gRPC-Go's lazy dial reports it.
async fn client(
    socket: &SocketArgs,
    prefix: &str,
) -> anyhow::Result<LoggerClient<tonic::transport::Channel>> {
    let client = socket.connect().await?;
    Ok(LoggerClient::new(
        client.channel().map_err(|s| rpc_err(prefix, &s))?,
    ))
}

/// `Logger Level : <current>` / `Launch Level : <launch>` with logrus's names, then a blank
/// line.
fn print_pretty(io: &mut Io<'_>, logger: &types::Logger) -> anyhow::Result<()> {
    let Some(current) = from_api(logger.current_level()) else {
        bail!(
            "internal error: returned current log level is undefined; please report this as a bug"
        );
    };
    let Some(launch) = from_api(logger.launch_level()) else {
        bail!(
            "internal error: returned launch log level is undefined; please report this as a bug"
        );
    };
    write!(
        io.out,
        "Logger Level : {current}\nLaunch Level : {launch}\n\n"
    )?;
    Ok(())
}

/// The API's level for a logrus level.
fn to_api(level: LogLevel) -> ApiLevel {
    match level {
        LogLevel::Panic => ApiLevel::Panic,
        LogLevel::Fatal => ApiLevel::Fatal,
        LogLevel::Error => ApiLevel::Error,
        LogLevel::Warn => ApiLevel::Warn,
        LogLevel::Info => ApiLevel::Info,
        LogLevel::Debug => ApiLevel::Debug,
        LogLevel::Trace => ApiLevel::Trace,
    }
}

/// The logrus level of an API level (none for `UNSPECIFIED`).
fn from_api(level: ApiLevel) -> Option<LogLevel> {
    LogLevel::ALL.into_iter().find(|l| to_api(*l) == level)
}

/// The process's logger behind the server's Logger API.
#[derive(Debug)]
pub(crate) struct ServerLogLevel(pub(crate) LogHandle);

impl spire_server_app::LogLevelControl for ServerLogLevel {
    fn current_level(&self) -> ApiLevel {
        to_api(self.0.current_level())
    }

    fn launch_level(&self) -> ApiLevel {
        to_api(self.0.launch_level())
    }

    fn set_level(&self, level: ApiLevel) -> Result<(), String> {
        let level = from_api(level).ok_or("unsupported log level")?;
        self.0.set_level(level)
    }
}
