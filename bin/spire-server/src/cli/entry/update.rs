//! `spire-server entry update`.

use anyhow::bail;
use clap::Args;
use spire_proto::spire::api::server::entry::v1::BatchUpdateEntryRequest;

use super::{EntryFields, entry_client, report_batch, restore_refused};
use crate::cli::common::{Io, OutputArgs, SocketArgs, rpc_err};

/// Flags of `entry update`: create's entry fields with a required `-entryID`, but no `-node`
/// and no additional attributes.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct UpdateArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// ID of the entry to change (required unless -data is given)
    #[arg(long = "entryID", value_name = "string", default_value = "")]
    pub(crate) entry_id: String,
    #[command(flatten)]
    pub(crate) fields: EntryFields,
}

impl UpdateArgs {
    /// SPIRE's client-side checks, in SPIRE's order.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let f = &self.fields;
        if !f.data.is_empty() {
            return Ok(());
        }
        if self.entry_id.is_empty() {
            bail!("entry ID is required");
        }
        if f.selectors.is_empty() {
            bail!("at least one selector is required");
        }
        if f.parent_id.is_empty() {
            bail!("a parent ID is required");
        }
        f.check_id_and_ttls()
    }
}

/// Updates the entries and prints them (failures on stderr, exit 1).
pub(crate) async fn run(args: UpdateArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    args.validate()?;
    let entries = args.fields.entries(&args.entry_id, false, io)?;
    let mut resp = entry_client(&client, "")?
        .batch_update_entry(BatchUpdateEntryRequest {
            entries: entries.clone(),
            input_mask: None,
            output_mask: None,
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    restore_refused(&mut resp.results, entries);
    report_batch(
        io,
        args.output.output,
        "update",
        &resp,
        "spire.api.server.entry.v1.BatchUpdateEntryResponse",
        &resp.results,
    )
}
