//! `spire-server entry create|show|update|delete|count`.

mod create;
mod delete;
mod print;
mod show;
mod update;

use anyhow::bail;
use clap::{ArgAction, Args, Subcommand};
use serde::Deserialize;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::entry::v1::{
    batch_create_entry_response, batch_update_entry_response,
};
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid, Status};
use tonic::transport::Channel;

use self::print::{write_entry, write_failed_entry};
use crate::cli::common::{
    Client, Io, OutputFormat, go_bool, go_i32, go_i64, id_to_proto, parse_selector, read_input,
    rpc_err,
};
pub(crate) use spire_cli::go_utc_time;
use spire_cli::protojson;

/// The `entry` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum EntryCommand {
    /// Register a new workload or node entry
    Create(create::CreateArgs),
    /// List entries, or look one up by ID
    Show(show::ShowArgs),
    /// Replace an existing entry's fields
    Update(update::UpdateArgs),
    /// Remove entries by ID
    Delete(delete::DeleteArgs),
    /// Print how many entries match the filters
    Count(show::CountArgs),
}

/// Runs one `entry` verb.
pub(crate) async fn run(command: EntryCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        EntryCommand::Create(args) => create::run(args, io).await,
        EntryCommand::Show(args) => show::run_show(args, io).await,
        EntryCommand::Update(args) => update::run(args, io).await,
        EntryCommand::Delete(args) => delete::run(args, io).await,
        EntryCommand::Count(args) => show::run_count(args, io).await,
    }
}

/// The Entry client; a dial failure is reported as the first RPC's error would be (`prefix`
/// is SPIRE's wrapping for that RPC).
fn entry_client(client: &Client, prefix: &str) -> anyhow::Result<EntryClient<Channel>> {
    Ok(EntryClient::new(
        client.channel().map_err(|s| rpc_err(prefix, &s))?,
    ))
}

/// The entry fields that `entry create` and `entry update` both take as flags.
#[derive(Debug, Args)]
pub(crate) struct EntryFields {
    /// SPIFFE ID of the parent (the agent or node the entry hangs off)
    #[arg(long = "parentID", value_name = "string", default_value = "")]
    pub(crate) parent_id: String,
    /// SPIFFE ID the entry issues SVIDs for
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
    /// X509-SVID lifetime in seconds (0: server default)
    #[arg(long = "x509SVIDTTL", value_name = "int", default_value = "0", value_parser = go_i32, allow_negative_numbers = true)]
    pub(crate) x509_svid_ttl: i32,
    /// JWT-SVID lifetime in seconds (0: server default)
    #[arg(long = "jwtSVIDTTL", value_name = "int", default_value = "0", value_parser = go_i32, allow_negative_numbers = true)]
    pub(crate) jwt_svid_ttl: i32,
    /// Take the entries from this JSON file instead of the flags ('-' for stdin)
    #[arg(long = "data", value_name = "string", default_value = "")]
    pub(crate) data: String,
    /// Selector as type:value; repeatable
    #[arg(long = "selector", value_name = "value", action = ArgAction::Append)]
    pub(crate) selectors: Vec<String>,
    /// Trust domain (SPIFFE ID) whose bundle the entry also gets; repeatable
    #[arg(long = "federatesWith", value_name = "value", action = ArgAction::Append)]
    pub(crate) federates_with: Vec<String>,
    /// Let this SPIFFE ID call the server's admin API
    #[arg(long = "admin", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) admin: bool,
    /// Hand the SVID to an SVIDStore plugin instead of a workload
    #[arg(long = "storeSVID", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) store_svid: bool,
    /// Mark the entry as one for a downstream (nested) server
    #[arg(long = "downstream", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) downstream: bool,
    /// Unix time (seconds) after which the entry is pruned (0: never)
    #[arg(long = "entryExpiry", value_name = "int", default_value = "0", value_parser = go_i64, allow_negative_numbers = true)]
    pub(crate) entry_expiry: i64,
    /// DNS SAN for the entry's SVIDs; repeatable, order kept
    #[arg(long = "dns", value_name = "value", action = ArgAction::Append)]
    pub(crate) dns_names: Vec<String>,
    /// Free-form label telling apart entries that share a SPIFFE ID
    #[arg(long = "hint", value_name = "string", default_value = "")]
    pub(crate) hint: String,
}

impl EntryFields {
    /// The checks both verbs end with: a SPIFFE ID and non-negative TTLs, in SPIRE's order.
    fn check_id_and_ttls(&self) -> anyhow::Result<()> {
        if self.spiffe_id.is_empty() {
            bail!("a SPIFFE ID is required");
        }
        if self.x509_svid_ttl < 0 {
            bail!("a positive x509-SVID TTL is required");
        }
        if self.jwt_svid_ttl < 0 {
            bail!("a positive JWT-SVID TTL is required");
        }
        Ok(())
    }

    /// The entry the flags describe, with ID `id`; `node` makes the parent
    /// `spiffe://<td>/spire/server` instead of `-parentID`.
    fn to_entry(&self, id: &str, node: bool) -> anyhow::Result<Entry> {
        let spiffe_id = id_to_proto(&self.spiffe_id)?;
        let parent_id = if node {
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
            id: id.to_owned(),
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

    /// The entries to send: those of the `-data` file, or the one the flags describe.
    fn entries(&self, id: &str, node: bool, io: &mut Io<'_>) -> anyhow::Result<Vec<Entry>> {
        if self.data.is_empty() {
            Ok(vec![self.to_entry(id, node)?])
        } else {
            parse_data(&self.data, io)
        }
    }
}

/// A result's status code; a missing status counts as OK, as in gRPC-Go's zero value.
pub(crate) fn status_code(status: Option<&Status>) -> i32 {
    status.map_or(0, |s| s.code)
}

/// One result of `BatchCreateEntry` or `BatchUpdateEntry`.
trait EntryResult {
    fn status(&self) -> Option<&Status>;
    fn entry_mut(&mut self) -> &mut Option<Entry>;
    fn entry(&self) -> Option<&Entry>;
}

impl EntryResult for batch_create_entry_response::Result {
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
    fn entry_mut(&mut self) -> &mut Option<Entry> {
        &mut self.entry
    }
    fn entry(&self) -> Option<&Entry> {
        self.entry.as_ref()
    }
}

impl EntryResult for batch_update_entry_response::Result {
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
    fn entry_mut(&mut self) -> &mut Option<Entry> {
        &mut self.entry
    }
    fn entry(&self) -> Option<&Entry> {
        self.entry.as_ref()
    }
}

/// The server leaves refused entries out of the results; put the requested entry back in
/// each failed result so both output formats show what was refused.
fn restore_refused<R: EntryResult>(results: &mut [R], requested: Vec<Entry>) {
    for (result, entry) in results.iter_mut().zip(requested) {
        if status_code(result.status()) != 0 {
            *result.entry_mut() = Some(entry);
        }
    }
}

/// Prints a batch create/update response: the whole response (`type_name`) as JSON, or the
/// accepted entries on stdout and the refused ones on stderr. Fails if any was refused.
fn report_batch<R: EntryResult>(
    io: &mut Io<'_>,
    output: OutputFormat,
    verb: &str,
    response: &impl prost::Message,
    type_name: &str,
    results: &[R],
) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        return protojson::print(io.out, response, type_name);
    }
    let (ok, refused): (Vec<&R>, Vec<&R>) =
        results.iter().partition(|r| status_code(r.status()) == 0);
    for result in &ok {
        write_entry(io.out, result.entry().unwrap_or(&Entry::default()))?;
    }
    for result in &refused {
        let status = result.status().cloned().unwrap_or_default();
        write_failed_entry(
            io.err,
            verb,
            status.code,
            &status.message,
            result.entry().unwrap_or(&Entry::default()),
        )?;
    }
    if !refused.is_empty() {
        bail!("failed to {verb} one or more entries");
    }
    Ok(())
}

/// The `-data` file: `{"entries": [...]}` in the JSON form of SPIRE's registration entries
/// (`spiffe_id`/`parent_id` as strings; the API's `{trust_domain, path}` objects are
/// accepted too).
#[derive(Debug, Deserialize)]
struct DataFile {
    #[serde(default)]
    entries: Vec<DataEntry>,
}

#[derive(Debug, Deserialize)]
struct DataEntry {
    #[serde(default, alias = "id")]
    entry_id: String,
    #[serde(default)]
    spiffe_id: Option<DataId>,
    #[serde(default)]
    parent_id: Option<DataId>,
    #[serde(default)]
    selectors: Vec<DataSelector>,
    #[serde(default)]
    x509_svid_ttl: i32,
    #[serde(default)]
    jwt_svid_ttl: i32,
    #[serde(default)]
    federates_with: Vec<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    downstream: bool,
    #[serde(default, rename = "entryExpiry", alias = "expires_at")]
    expires_at: i64,
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    store_svid: bool,
    #[serde(default)]
    hint: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DataId {
    Text(String),
    Parts { trust_domain: String, path: String },
}

#[derive(Debug, Deserialize)]
struct DataSelector {
    #[serde(rename = "type")]
    selector_type: String,
    value: String,
}

impl DataId {
    fn to_proto(&self) -> anyhow::Result<Spiffeid> {
        match self {
            DataId::Text(s) => id_to_proto(s),
            DataId::Parts { trust_domain, path } => Ok(Spiffeid {
                trust_domain: trust_domain.clone(),
                path: path.clone(),
            }),
        }
    }
}

/// Reads the entries of a `-data` file (`-` = stdin).
fn parse_data(path: &str, io: &mut Io<'_>) -> anyhow::Result<Vec<Entry>> {
    let raw = read_input(path, io.stdin)?;
    parse_data_json(&raw)
}

fn parse_data_json(raw: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let file: DataFile = serde_json::from_slice(raw)?;
    file.entries
        .into_iter()
        .map(|e| {
            Ok(Entry {
                id: e.entry_id,
                spiffe_id: e.spiffe_id.as_ref().map(DataId::to_proto).transpose()?,
                parent_id: e.parent_id.as_ref().map(DataId::to_proto).transpose()?,
                selectors: e
                    .selectors
                    .into_iter()
                    .map(|s| Selector {
                        r#type: s.selector_type,
                        value: s.value,
                    })
                    .collect(),
                x509_svid_ttl: e.x509_svid_ttl,
                jwt_svid_ttl: e.jwt_svid_ttl,
                federates_with: e.federates_with,
                admin: e.admin,
                downstream: e.downstream,
                expires_at: e.expires_at,
                dns_names: e.dns_names,
                store_svid: e.store_svid,
                hint: e.hint,
                ..Entry::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn data_file_in_spire_form() {
        let raw = br#"{"entries":[{"selectors":[{"type":"unix","value":"uid:1111"}],
            "spiffe_id":"spiffe://example.org/Blog","parent_id":"spiffe://example.org/spire/agent/join_token/TokenBlog",
            "x509_svid_ttl":200,"jwt_svid_ttl":30,"admin":true,"dns_names":["a","b"],"entryExpiry":1552410266},
            {"spiffe_id":{"trust_domain":"example.org","path":"/x"},"parent_id":"spiffe://example.org/p",
             "selectors":[{"type":"k8s","value":"ns:a"}],"federates_with":["spiffe://other.org"],"hint":"h"}]}"#;
        let entries = parse_data_json(raw).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].spiffe_id.as_ref().unwrap().path, "/Blog");
        assert_eq!(entries[0].x509_svid_ttl, 200);
        assert_eq!(entries[0].expires_at, 1_552_410_266);
        assert_eq!(entries[0].dns_names, ["a", "b"]);
        assert!(entries[0].admin);
        assert_eq!(entries[1].spiffe_id.as_ref().unwrap().path, "/x");
        assert_eq!(entries[1].hint, "h");
        assert!(parse_data_json(br#"{"entries":[{"spiffe_id":"nope"}]}"#).is_err());
    }
}
