//! `spire-server healthcheck`: `grpc.health.v1.Health/Check` on the admin socket.

use clap::{ArgAction, Args};
use spire_proto::health::pb::HealthCheckRequest;
use spire_proto::health::pb::health_check_response::ServingStatus;
use spire_proto::health::pb::health_client::HealthClient;

use crate::cli::common::{Io, Reported, SocketArgs, go_bool, rpc_error};

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
    match check(&args, io).await {
        Ok(()) => {
            writeln!(io.out, "Server is healthy.")?;
            Ok(())
        }
        Err(reason) => {
            writeln!(io.err, "Server is unhealthy: {reason}")?;
            Err(Reported.into())
        }
    }
}

async fn check(args: &HealthcheckArgs, io: &mut Io<'_>) -> Result<(), String> {
    if args.verbose {
        writeln!(io.out, "Checking server health...").map_err(|e| e.to_string())?;
    }
    let client = args.socket.connect().await.map_err(|e| e.to_string())?;
    // gRPC-Go dials lazily, so in SPIRE an unreachable socket surfaces as a failed Check.
    let response = match client.channel() {
        Ok(channel) => {
            HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
        }
        Err(status) => Err(status),
    };
    match response {
        Err(status) => {
            if args.verbose {
                let _ = writeln!(io.err, "Failed to check health: {}", rpc_error(&status));
            }
            Err("unable to determine health".to_owned())
        }
        Ok(resp) if resp.get_ref().status == ServingStatus::Serving as i32 => Ok(()),
        Ok(resp) => {
            let name = ServingStatus::try_from(resp.get_ref().status).map_or_else(
                |_| resp.get_ref().status.to_string(),
                |s| s.as_str_name().to_owned(),
            );
            Err(format!("server returned status \"{name}\""))
        }
    }
}
