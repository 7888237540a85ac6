//! `spire-server entry delete`.

use anyhow::bail;
use clap::Args;
use serde::Deserialize;
use spire_proto::spire::api::server::entry::v1::{
    BatchDeleteEntryRequest, BatchDeleteEntryResponse,
};

use super::{entry_client, status_code};
use crate::cli::common::{
    Io, OutputArgs, OutputFormat, SocketArgs, code_name, go_quote, read_input, rpc_err,
};
use spire_cli::protojson;

/// Flags of `entry delete`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// ID of the entry to remove
    #[arg(long = "entryID", value_name = "string", default_value = "")]
    pub(crate) entry_id: String,
    /// JSON file listing the IDs to remove as {"ids": [...]} ('-' for stdin)
    #[arg(long = "file", value_name = "string", default_value = "")]
    pub(crate) file: String,
}

#[derive(Debug, Deserialize)]
struct DeleteFile {
    #[serde(default)]
    ids: Vec<String>,
}

/// Deletes the entries and reports each, as SPIRE does.
pub(crate) async fn run(args: DeleteArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    if args.file.is_empty() && args.entry_id.is_empty() {
        bail!("an entry ID is required");
    }
    let ids = if args.file.is_empty() {
        vec![args.entry_id.clone()]
    } else {
        let raw = read_input(&args.file, io.stdin)?;
        serde_json::from_slice::<DeleteFile>(&raw)?.ids
    };
    let resp = entry_client(&client, "")?
        .batch_delete_entry(BatchDeleteEntryRequest { ids })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    match args.output.output {
        OutputFormat::Json => protojson::print(
            io.out,
            &resp,
            "spire.api.server.entry.v1.BatchDeleteEntryResponse",
        ),
        OutputFormat::Pretty => write_delete(io, &resp),
    }
}

/// SPIRE's pretty delete report (note: its summary line has no trailing newline).
fn write_delete(io: &mut Io<'_>, resp: &BatchDeleteEntryResponse) -> anyhow::Result<()> {
    let (ok, failed): (Vec<_>, Vec<_>) = resp
        .results
        .iter()
        .partition(|r| status_code(r.status.as_ref()) == 0);
    for r in &ok {
        writeln!(io.out, "Deleted entry with ID: {}", r.id)?;
    }
    if !ok.is_empty() {
        write!(io.out, "\n\n")?;
    }
    for r in &failed {
        let status = r.status.clone().unwrap_or_default();
        writeln!(
            io.err,
            "Failed to delete entry with ID {} (code: {}, msg: {})",
            r.id,
            code_name(status.code),
            go_quote(&status.message)
        )?;
    }
    if !failed.is_empty() {
        write!(io.out, "\n\n")?;
        if ok.is_empty() {
            write!(io.out, "Failed to delete {} entries", failed.len())?;
        } else {
            write!(
                io.out,
                "Deleted {} entries successfully, but failed to delete {} entries",
                ok.len(),
                failed.len()
            )?;
        }
        bail!("failed to delete one or more entries");
    }
    write!(io.out, "Deleted {} entries successfully", ok.len())?;
    Ok(())
}
