//! `healthcheck` of both binaries: `grpc.health.v1.Health/Check` on a Unix socket.

use std::path::Path;

use spire_proto::health::pb::HealthCheckRequest;
use spire_proto::health::pb::health_check_response::ServingStatus;
use spire_proto::health::pb::health_client::HealthClient;

use crate::{Client, Io, Reported, rpc_error};

/// Prints `<Subject> is healthy.`, or `<Subject> is unhealthy: …` on stderr and fails with
/// [`Reported`]. `subject` is `Server` or `Agent`; `verbose` adds progress and the RPC error.
pub async fn healthcheck(
    socket: &Path,
    subject: &str,
    verbose: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    match check(socket, subject, verbose, io).await {
        Ok(()) => {
            writeln!(io.out, "{subject} is healthy.")?;
            Ok(())
        }
        Err(reason) => {
            writeln!(io.err, "{subject} is unhealthy: {reason}")?;
            Err(Reported.into())
        }
    }
}

async fn check(socket: &Path, subject: &str, verbose: bool, io: &mut Io<'_>) -> Result<(), String> {
    let lower = subject.to_lowercase();
    if verbose {
        writeln!(io.out, "Checking {lower} health...").map_err(|e| e.to_string())?;
    }
    // gRPC-Go dials lazily, so in SPIRE an unreachable socket surfaces as a failed Check.
    let response = match Client::connect(socket).await.channel() {
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
            if verbose {
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
            Err(format!("{lower} returned status \"{name}\""))
        }
    }
}
