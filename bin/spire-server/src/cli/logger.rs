//! `spire-server logger get|set|reset`: the running server's log level, through the Logger
//! API on the admin socket. Also the bridge between that API's levels and the process's
//! logger, for `run`.

use clap::{Args, Subcommand};
use spire_cli::{LogHandle, LogLevel, protojson};
use spire_proto::spire::api::server::logger::v1::logger_client::LoggerClient;
use spire_proto::spire::api::server::logger::v1::{
    GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest,
};
use spire_proto::spire::api::types::LogLevel as ApiLevel;

use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, rpc_err};

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
            let level = spire_cli::parse_set_level(&args.level)?;
            const PREFIX: &str = "failed to set log level: ";
            let mut client = client(&args.socket, PREFIX).await?;
            let logger = client
                .set_log_level(SetLogLevelRequest {
                    new_level: level.to_api().into(),
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
        OutputFormat::Pretty => spire_cli::print_logger(io.out, &logger),
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

/// The process's logger behind the server's Logger API.
#[derive(Debug)]
pub(crate) struct ServerLogLevel(pub(crate) LogHandle);

impl spire_server_app::LogLevelControl for ServerLogLevel {
    fn current_level(&self) -> ApiLevel {
        self.0.current_level().to_api()
    }

    fn launch_level(&self) -> ApiLevel {
        self.0.launch_level().to_api()
    }

    fn set_level(&self, level: ApiLevel) -> Result<(), String> {
        let level = LogLevel::from_api(level).ok_or("unsupported log level")?;
        self.0.set_level(level)
    }
}
