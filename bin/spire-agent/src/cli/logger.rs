//! `spire-agent logger get|set|reset`: the running agent's log level, through the Logger API
//! on its admin socket (`admin_socket_path`).

use clap::{Args, Subcommand};
use spire_cli::{Client, Io, OutputArgs, OutputFormat, protojson, rpc_err};
use spire_proto::spire::api::agent::logger::v1::logger_client::LoggerClient;
use spire_proto::spire::api::agent::logger::v1::{
    GetLoggerRequest, ResetLogLevelRequest, SetLogLevelRequest,
};

/// SPIRE's default agent admin socket.
const DEFAULT_ADMIN_SOCKET_PATH: &str = "/tmp/spire-agent/private/admin.sock";

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

/// `-socketPath` of the admin socket.
#[derive(Debug, Args)]
pub(crate) struct AdminSocketArgs {
    /// Path to the SPIRE Agent admin API socket
    #[arg(long = "socketPath", value_name = "string", default_value = DEFAULT_ADMIN_SOCKET_PATH)]
    socket_path: String,
}

impl AdminSocketArgs {
    /// The socket to dial.
    pub(crate) fn path(&self) -> &std::path::Path {
        std::path::Path::new(&self.socket_path)
    }
}

/// Flags of `logger get` and `logger reset`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    socket: AdminSocketArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Flags of `logger set`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct SetArgs {
    #[command(flatten)]
    socket: AdminSocketArgs,
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
            let logger = client(&args.socket, PREFIX)
                .await?
                .get_logger(GetLoggerRequest {})
                .await
                .map_err(|s| rpc_err(PREFIX, &s))?;
            (args.output, logger)
        }
        LoggerCommand::Set(args) => {
            let level = spire_cli::parse_set_level(&args.level)?;
            const PREFIX: &str = "failed to set log level: ";
            let logger = client(&args.socket, PREFIX)
                .await?
                .set_log_level(SetLogLevelRequest {
                    new_level: level.to_api().into(),
                })
                .await
                .map_err(|s| rpc_err(PREFIX, &s))?;
            (args.output, logger)
        }
        LoggerCommand::Reset(args) => {
            const PREFIX: &str = "failed to reset logger: ";
            let logger = client(&args.socket, PREFIX)
                .await?
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

/// The Logger client on the admin socket; a failed dial is the RPC's failure, with its prefix.
async fn client(
    socket: &AdminSocketArgs,
    prefix: &str,
) -> anyhow::Result<LoggerClient<tonic::transport::Channel>> {
    let client = Client::connect(socket.path()).await;
    Ok(LoggerClient::new(
        client.channel().map_err(|s| rpc_err(prefix, &s))?,
    ))
}
