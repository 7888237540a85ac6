//! `spire-server bundle delete`.

use anyhow::{anyhow, bail};
use clap::Args;
use spire_proto::spire::api::server::bundle::v1::BatchDeleteFederatedBundleRequest;
use spire_proto::spire::api::server::bundle::v1::batch_delete_federated_bundle_request::Mode;

use super::{bundle_client, report_single};
use crate::cli::common::{Io, OutputArgs, SocketArgs, rpc_err};

/// Flags of `bundle delete`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Trust domain whose bundle to remove
    #[arg(long = "id", value_name = "string", default_value = "")]
    pub(crate) id: String,
    /// If entries still federate with it: restrict (refuse), delete (remove them too) or dissociate (unlink them)
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
    report_single(
        io,
        args.output.output,
        &resp,
        "spire.api.server.bundle.v1.BatchDeleteFederatedBundleResponse",
        resp.results.first().and_then(|r| r.status.as_ref()),
        "bundle deleted.",
        |message| anyhow!("failed to delete federated bundle {:?}: {message}", args.id),
    )
}
