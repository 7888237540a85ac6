//! `spire-server token generate`: a join token for agent attestation.

use anyhow::bail;
use clap::{Args, Subcommand};
use spire_proto::spire::api::server::agent::v1::CreateJoinTokenRequest;
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;

use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, go_i32, id_to_proto, rpc_err};
use spire_cli::protojson;

/// The `token` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a join token for attesting an agent
    Generate(GenerateArgs),
}

/// Flags of `token generate`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Extra SPIFFE ID for the agent that attests with the token (optional)
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
    /// Seconds until the token expires
    #[arg(long = "ttl", value_name = "int", default_value = "600", value_parser = go_i32, allow_negative_numbers = true)]
    pub(crate) ttl: i32,
}

/// Runs one `token` verb.
pub(crate) async fn run(command: TokenCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    let TokenCommand::Generate(args) = command;
    let client = args.socket.connect().await?;
    let agent_id = if args.spiffe_id.is_empty() {
        None
    } else {
        Some(id_to_proto(&args.spiffe_id)?)
    };
    if args.ttl < 1 {
        bail!("a TTL is required");
    }
    let token = AgentClient::new(client.channel().map_err(|s| rpc_err("", &s))?)
        .create_join_token(CreateJoinTokenRequest {
            ttl: args.ttl,
            token: String::new(),
            agent_id,
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    match args.output.output {
        OutputFormat::Json => protojson::print(io.out, &token, "spire.api.types.JoinToken"),
        OutputFormat::Pretty => {
            writeln!(io.out, "Token: {}", token.value)?;
            Ok(())
        }
    }
}
