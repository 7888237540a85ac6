//! `spire-agent debug getinfo`: what the running agent holds, through the Debug API on its
//! admin socket (`admin_socket_path`).

use std::time::Duration;

use clap::{Args, Subcommand};
use spire_cli::{
    Client, Io, OutputArgs, OutputFormat, go_duration_string, go_rfc3339_utc, protojson, rpc_err,
};
use spire_proto::spire::agent::debug::v1::debug_client::DebugClient;
use spire_proto::spire::agent::debug::v1::{GetInfoRequest, GetInfoResponse};

use crate::cli::logger::AdminSocketArgs;

/// The `debug` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Prints debug information about the agent
    #[command(name = "getinfo")]
    GetInfo(GetInfoArgs),
}

/// Flags of `debug getinfo`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct GetInfoArgs {
    #[command(flatten)]
    socket: AdminSocketArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Runs one `debug` verb.
pub(crate) async fn run(command: DebugCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    let DebugCommand::GetInfo(args) = command;
    let client = Client::connect(args.socket.path()).await;
    let info = DebugClient::new(client.channel().map_err(|s| rpc_err("", &s))?)
        .get_info(GetInfoRequest {})
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    match args.output.output {
        OutputFormat::Json => {
            protojson::print(io.out, &info, "spire.agent.debug.v1.GetInfoResponse")
        }
        OutputFormat::Pretty => print_pretty(io, &info),
    }
}

fn print_pretty(io: &mut Io<'_>, info: &GetInfoResponse) -> anyhow::Result<()> {
    let uptime = Duration::from_secs(u64::try_from(info.uptime).unwrap_or_default());
    let last_sync = if info.last_sync_success == 0 {
        "(never)".to_owned()
    } else {
        go_rfc3339_utc(info.last_sync_success)
    };
    writeln!(io.out, "Agent Debug Info:")?;
    writeln!(
        io.out,
        "  Uptime:                          {}",
        go_duration_string(uptime)
    )?;
    writeln!(io.out, "  Last Sync Success:               {last_sync}")?;
    writeln!(
        io.out,
        "  Cached X.509 SVIDs:              {}",
        info.cached_x509_svids_count
    )?;
    writeln!(
        io.out,
        "  Cached JWT SVIDs:                {}",
        info.cached_jwt_svids_count
    )?;
    writeln!(
        io.out,
        "  Cached SVID Store X.509 SVIDs:   {}",
        info.cached_svidstore_x509_svids_count
    )?;
    if !info.svid_chain.is_empty() {
        writeln!(io.out, "  SVID Chain:")?;
        for (i, cert) in info.svid_chain.iter().enumerate() {
            let id = cert.id.as_ref().map_or_else(
                || "(none)".to_owned(),
                |id| format!("spiffe://{}{}", id.trust_domain, id.path),
            );
            writeln!(io.out, "    [{i}] SPIFFE ID:  {id}")?;
            writeln!(io.out, "        Subject:    {}", cert.subject)?;
            writeln!(
                io.out,
                "        Expires At: {}",
                go_rfc3339_utc(cert.expires_at)
            )?;
        }
    }
    Ok(())
}
