//! `spire-server bundle delete`.

use anyhow::bail;
use clap::Args;
use spire_proto::spire::api::server::bundle::v1::BatchDeleteFederatedBundleRequest;
use spire_proto::spire::api::server::bundle::v1::batch_delete_federated_bundle_request::Mode;

use super::bundle_client;
use crate::cli::common::{Io, OutputArgs, OutputFormat, SocketArgs, rpc_err};
use crate::cli::protojson;

/// Flags of `bundle delete`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// SPIFFE ID of the trust domain
    #[arg(long = "id", value_name = "string", default_value = "")]
    pub(crate) id: String,
    /// Deletion mode: one of restrict, delete, or dissociate
    #[arg(long = "mode", value_name = "string", default_value = "restrict")]
    pub(crate) mode: String,
}

/// `-mode` with SPIRE's error for other values.
pub(crate) fn parse_mode(mode: &str) -> anyhow::Result<Mode> {
    Ok(match mode {
        "restrict" => Mode::Restrict,
        "delete" => Mode::Delete,
        "dissociate" => Mode::Dissociate,
        other => bail!("unsupported mode \"{other}\""),
    })
}

/// Deletes one federated bundle.
pub(crate) async fn run(args: DeleteArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    if args.id.is_empty() {
        bail!("id is required");
    }
    let mode = parse_mode(&args.mode)?;
    let resp = bundle_client(&client, "failed to delete federated bundle: ")?
        .batch_delete_federated_bundle(BatchDeleteFederatedBundleRequest {
            trust_domains: vec![args.id.clone()],
            mode: mode as i32,
        })
        .await
        .map_err(|s| rpc_err("failed to delete federated bundle: ", &s))?
        .into_inner();
    if args.output.output == OutputFormat::Json {
        return protojson::print(
            io.out,
            &resp,
            "spire.api.server.bundle.v1.BatchDeleteFederatedBundleResponse",
        );
    }
    let status = resp
        .results
        .first()
        .and_then(|r| r.status.clone())
        .unwrap_or_default();
    if status.code != 0 {
        bail!(
            "failed to delete federated bundle {:?}: {}",
            args.id,
            status.message
        );
    }
    writeln!(io.out, "bundle deleted.")?;
    Ok(())
}
