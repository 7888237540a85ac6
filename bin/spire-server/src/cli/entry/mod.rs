//! `spire-server entry create|show|update|delete|count`.

mod create;
mod delete;
mod print;
mod show;
mod update;

use clap::Subcommand;
use serde::Deserialize;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};
use tonic::transport::Channel;

pub(crate) use self::print::go_utc_time;
use crate::cli::common::{Client, Io, id_to_proto, read_input, rpc_err};

/// The `entry` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum EntryCommand {
    /// Creates registration entries
    Create(create::CreateArgs),
    /// Displays configured registration entries
    Show(show::ShowArgs),
    /// Updates registration entries
    Update(update::UpdateArgs),
    /// Deletes registration entries
    Delete(delete::DeleteArgs),
    /// Count registration entries
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
