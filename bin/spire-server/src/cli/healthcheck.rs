//! `spire-server healthcheck`: `grpc.health.v1.Health/Check` on the admin socket.

use clap::{ArgAction, Args};

use crate::cli::common::{Io, SocketArgs, go_bool};

/// Flags of `healthcheck`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct HealthcheckArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    /// Request a lighter check (accepted; this server runs the same check)
    #[arg(long = "shallow", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) shallow: bool,
    /// Also print progress and why the check failed
    #[arg(long = "verbose", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) verbose: bool,
}

/// Prints `Server is healthy.`, or `Server is unhealthy: …` on stderr and exits 1.
pub(crate) async fn run(args: HealthcheckArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    // `-shallow` is accepted for compatibility; the server answers the same check either way.
    let _ = args.shallow;
    let socket = args.socket.resolve(|name| std::env::var(name).ok())?;
    spire_cli::healthcheck(&socket, "Server", args.verbose, io).await
}
