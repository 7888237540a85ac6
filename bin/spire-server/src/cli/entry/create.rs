//! `spire-server entry create`.

use anyhow::bail;
use clap::{ArgAction, Args};
use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;
use spire_proto::spire::api::types::{Entry, Spiffeid};

use super::print::{write_entry, write_failed_entry};
use super::{entry_client, parse_data};
use crate::cli::common::{
    Io, OutputArgs, OutputFormat, SocketArgs, go_bool, go_i32, go_i64, id_to_proto, parse_selector,
    rpc_err,
};
use crate::cli::protojson;

/// Flags of `entry create` (compat §7.1).
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// A custom ID for this registration entry (optional). If not set, a new entry ID will be generated
    #[arg(long = "entryID", value_name = "string", default_value = "")]
    pub(crate) entry_id: String,
    /// The SPIFFE ID of this record's parent
    #[arg(long = "parentID", value_name = "string", default_value = "")]
    pub(crate) parent_id: String,
    /// The SPIFFE ID that this record represents
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
    /// The lifetime, in seconds, for x509-SVIDs issued based on this registration entry.
    #[arg(long = "x509SVIDTTL", value_name = "int", default_value = "0", value_parser = go_i32, allow_negative_numbers = true)]
    pub(crate) x509_svid_ttl: i32,
    /// The lifetime, in seconds, for JWT-SVIDs issued based on this registration entry.
    #[arg(long = "jwtSVIDTTL", value_name = "int", default_value = "0", value_parser = go_i32, allow_negative_numbers = true)]
    pub(crate) jwt_svid_ttl: i32,
    /// Path to a file containing registration JSON (optional). If set to '-', read the JSON from stdin.
    #[arg(long = "data", value_name = "string", default_value = "")]
    pub(crate) data: String,
    /// A colon-delimited type:value selector. Can be used more than once
    #[arg(long = "selector", value_name = "value", action = ArgAction::Append)]
    pub(crate) selectors: Vec<String>,
    /// SPIFFE ID of a trust domain to federate with. Can be used more than once
    #[arg(long = "federatesWith", value_name = "value", action = ArgAction::Append)]
    pub(crate) federates_with: Vec<String>,
    /// If set, this entry will be applied to matching nodes rather than workloads
    #[arg(long = "node", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) node: bool,
    /// If set, the SPIFFE ID in this entry will be granted access to the SPIRE Server's management APIs
    #[arg(long = "admin", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) admin: bool,
    /// A boolean value that, when set, indicates that the resulting issued SVID from this entry must be stored through an SVIDStore plugin
    #[arg(long = "storeSVID", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) store_svid: bool,
    /// A boolean value that, when set, indicates that the entry describes a downstream SPIRE server
    #[arg(long = "downstream", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) downstream: bool,
    /// An expiry, from epoch in seconds, for the resulting registration entry to be pruned
    #[arg(long = "entryExpiry", value_name = "int", default_value = "0", value_parser = go_i64, allow_negative_numbers = true)]
    pub(crate) entry_expiry: i64,
    /// A DNS name that will be included in SVIDs issued based on this entry, where appropriate. Can be used more than once
    #[arg(long = "dns", value_name = "value", action = ArgAction::Append)]
    pub(crate) dns_names: Vec<String>,
    /// The entry hint, used to disambiguate entries with the same SPIFFE ID
    #[arg(long = "hint", value_name = "string", default_value = "")]
    pub(crate) hint: String,
    /// A boolean value that, when set, indicates that the agent should not prefetch X509-SVIDs for this entry
    #[arg(long = "disableX509SVIDPrefetch", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) disable_x509_svid_prefetch: bool,
    /// A boolean value that, when set, indicates that JWT-SVIDs issued for this entry carry a jti claim
    #[arg(long = "jwtSVIDIncludeJTI", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) jwt_svid_include_jti: bool,
}

impl CreateArgs {
    /// SPIRE's client-side checks, in SPIRE's order.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !self.data.is_empty() {
            return Ok(());
        }
        if self.selectors.is_empty() {
            bail!("at least one selector is required");
        }
        if self.node && !self.federates_with.is_empty() {
            bail!("node entries can not federate");
        }
        if self.parent_id.is_empty() && !self.node {
            bail!("a parent ID is required if the node flag is not set");
        }
        if self.spiffe_id.is_empty() {
            bail!("a SPIFFE ID is required");
        }
        if self.x509_svid_ttl < 0 {
            bail!("a positive x509-SVID TTL is required");
        }
        if self.jwt_svid_ttl < 0 {
            bail!("a positive JWT-SVID TTL is required");
        }
        if self.disable_x509_svid_prefetch || self.jwt_svid_include_jti {
            bail!(
                "-disableX509SVIDPrefetch and -jwtSVIDIncludeJTI need entry additional attributes, which this server's Entry API does not carry yet"
            );
        }
        Ok(())
    }

    /// The entry the flags describe; `-node` makes the parent `spiffe://<td>/spire/server`.
    pub(crate) fn to_entry(&self) -> anyhow::Result<Entry> {
        let spiffe_id = id_to_proto(&self.spiffe_id)?;
        let parent_id = if self.node {
            Spiffeid {
                trust_domain: spiffe_id.trust_domain.clone(),
                path: "/spire/server".to_owned(),
            }
        } else {
            id_to_proto(&self.parent_id)?
        };
        let selectors = self
            .selectors
            .iter()
            .map(|s| parse_selector(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Entry {
            id: self.entry_id.clone(),
            spiffe_id: Some(spiffe_id),
            parent_id: Some(parent_id),
            selectors,
            x509_svid_ttl: self.x509_svid_ttl,
            jwt_svid_ttl: self.jwt_svid_ttl,
            federates_with: self.federates_with.clone(),
            admin: self.admin,
            downstream: self.downstream,
            expires_at: self.entry_expiry,
            dns_names: self.dns_names.clone(),
            store_svid: self.store_svid,
            hint: self.hint.clone(),
            ..Entry::default()
        })
    }
}

/// Creates the entries and prints them (failures on stderr, exit 1).
pub(crate) async fn run(args: CreateArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    args.validate()?;
    let entries = if args.data.is_empty() {
        vec![args.to_entry()?]
    } else {
        parse_data(&args.data, io)?
    };
    let mut resp = entry_client(&client, "")?
        .batch_create_entry(BatchCreateEntryRequest {
            entries: entries.clone(),
            output_mask: None,
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    // The API leaves failed results without an entry; SPIRE shows the requested one.
    for (result, requested) in resp.results.iter_mut().zip(entries) {
        if result.status.as_ref().is_some_and(|s| s.code != 0) {
            result.entry = Some(requested);
        }
    }
    if args.output.output == OutputFormat::Json {
        return protojson::print(
            io.out,
            &resp,
            "spire.api.server.entry.v1.BatchCreateEntryResponse",
        );
    }
    let mut failed = false;
    for result in resp
        .results
        .iter()
        .filter(|r| status_code(r.status.as_ref()) == 0)
    {
        write_entry(io.out, result.entry.as_ref().unwrap_or(&Entry::default()))?;
    }
    for result in resp
        .results
        .iter()
        .filter(|r| status_code(r.status.as_ref()) != 0)
    {
        failed = true;
        let status = result.status.clone().unwrap_or_default();
        write_failed_entry(
            io.err,
            "create",
            status.code,
            &status.message,
            result.entry.as_ref().unwrap_or(&Entry::default()),
        )?;
    }
    if failed {
        bail!("failed to create one or more entries");
    }
    Ok(())
}

/// A result's status code; a missing status counts as OK, as in gRPC-Go's zero value.
pub(crate) fn status_code(status: Option<&spire_proto::spire::api::types::Status>) -> i32 {
    status.map_or(0, |s| s.code)
}
