//! `spire-agent healthcheck`: `grpc.health.v1.Health/Check` on the public socket.

use clap::{ArgAction, Args};
use spire_cli::{Io, go_bool};

use crate::cli::socket::SocketArgs;

/// Flags of `healthcheck`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct HealthcheckArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Request a lighter check (accepted; the agent answers the same check)
    #[arg(long = "shallow", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    shallow: bool,
    /// Also print progress and why the check failed
    #[arg(long = "verbose", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    verbose: bool,
}

/// Prints `Agent is healthy.`, or `Agent is unhealthy: …` on stderr and exits 1.
pub(crate) async fn run(args: HealthcheckArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let _ = args.shallow;
    spire_cli::healthcheck(&args.socket.resolve()?, "Agent", args.verbose, io).await
}
