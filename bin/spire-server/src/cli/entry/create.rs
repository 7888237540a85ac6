//! `spire-server entry create`.

use anyhow::bail;
use clap::{ArgAction, Args};
use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;

use super::{EntryFields, entry_client, report_batch, restore_refused};
use crate::cli::common::{Io, OutputArgs, SocketArgs, go_bool, rpc_err};

/// Flags of `entry create` (compat §7.1).
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// ID to give the new entry (default: the server picks one)
    #[arg(long = "entryID", value_name = "string", default_value = "")]
    pub(crate) entry_id: String,
    #[command(flatten)]
    pub(crate) fields: EntryFields,
    /// Make a node entry: the parent becomes the server itself, and agents matching the
    /// selectors get the SPIFFE ID
    #[arg(long = "node", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) node: bool,
    /// Ask agents not to fetch X509-SVIDs for this entry ahead of time
    #[arg(long = "disableX509SVIDPrefetch", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) disable_x509_svid_prefetch: bool,
    /// Put a jti claim in the entry's JWT-SVIDs
    #[arg(long = "jwtSVIDIncludeJTI", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) jwt_svid_include_jti: bool,
}

impl CreateArgs {
    /// SPIRE's client-side checks, in SPIRE's order.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let f = &self.fields;
        if !f.data.is_empty() {
            return Ok(());
        }
        if f.selectors.is_empty() {
            bail!("at least one selector is required");
        }
        if self.node && !f.federates_with.is_empty() {
            bail!("node entries can not federate");
        }
        if f.parent_id.is_empty() && !self.node {
            bail!("a parent ID is required if the node flag is not set");
        }
        f.check_id_and_ttls()?;
        if self.disable_x509_svid_prefetch || self.jwt_svid_include_jti {
            bail!(
                "-disableX509SVIDPrefetch and -jwtSVIDIncludeJTI need entry additional attributes, which this server's Entry API does not carry yet"
            );
        }
        Ok(())
    }
}

/// Creates the entries and prints them (failures on stderr, exit 1).
pub(crate) async fn run(args: CreateArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    args.validate()?;
    let entries = args.fields.entries(&args.entry_id, args.node, io)?;
    let mut resp = entry_client(&client, "")?
        .batch_create_entry(BatchCreateEntryRequest {
            entries: entries.clone(),
            output_mask: None,
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    restore_refused(&mut resp.results, entries);
    report_batch(
        io,
        args.output.output,
        "create",
        &resp,
        "spire.api.server.entry.v1.BatchCreateEntryResponse",
        &resp.results,
    )
}
