//! The server's plugin catalog: every plugin type `spire-server` has, how many of each it
//! needs, its built-ins, and each built-in's `plugin_data` parsed into its settings. A block
//! that passes here is served; nothing is accepted and then fails later.

use std::path::PathBuf;

use serde::Deserialize;
use spire_config::de::{GoDuration, Lenient, LenientBool};
use spire_config::{CatalogSpec, Constraint, PluginBlock, Refusal, typed};
use spire_server_datastore_sql::SqlConfig;
use spire_server_plugin::bundlepublisher::K8sConfigMapConfig;
use spire_server_plugin::nodeattestor::{K8sPsatConfig, X509PopConfig};
use spire_server_plugin::notifier::K8sBundleConfig;
use spire_server_plugin::upstreamauthority::DiskUpstreamConfig;

use crate::Error;

/// `spire-server`'s plugin types (SPIRE's set, with SPIRE's cardinalities) and built-ins.
pub const CATALOG: CatalogSpec = CatalogSpec {
    types: &[
        ("BundlePublisher", Constraint::Any),
        ("CredentialComposer", Constraint::Any),
        ("DataStore", Constraint::ExactlyOne),
        ("KeyManager", Constraint::ExactlyOne),
        ("NodeAttestor", Constraint::AtLeastOne),
        ("Notifier", Constraint::Any),
        ("UpstreamAuthority", Constraint::AtMostOne),
    ],
    built_ins: &[
        ("BundlePublisher", "k8s_configmap"),
        ("DataStore", "sql"),
        ("KeyManager", "disk"),
        ("KeyManager", "memory"),
        ("NodeAttestor", "join_token"),
        ("NodeAttestor", "k8s_psat"),
        ("NodeAttestor", "x509pop"),
        ("Notifier", "k8sbundle"),
        ("UpstreamAuthority", "disk"),
    ],
};

/// Which key manager keeps the CA keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyManagerChoice {
    /// `KeyManager "disk" { keys_path }`.
    Disk(PathBuf),
    /// `KeyManager "memory"`.
    Memory,
}

/// One configured node attestor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAttestorChoice {
    /// `NodeAttestor "join_token"`.
    JoinToken,
    /// `NodeAttestor "x509pop"`.
    X509Pop(X509PopConfig),
    /// `NodeAttestor "k8s_psat"`.
    K8sPsat(K8sPsatConfig),
}

/// One configured notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifierChoice {
    /// `Notifier "k8sbundle"`.
    K8sBundle(K8sBundleConfig),
}

/// One configured bundle publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundlePublisherChoice {
    /// `BundlePublisher "k8s_configmap"`.
    K8sConfigMap(K8sConfigMapConfig),
}

/// Every configured plugin, resolved.
#[derive(Clone, Debug)]
pub struct ServerPlugins {
    /// `DataStore "sql"`.
    pub datastore: SqlConfig,
    /// The KeyManager.
    pub key_manager: KeyManagerChoice,
    /// `UpstreamAuthority "disk"`, if configured.
    pub upstream_authority: Option<DiskUpstreamConfig>,
    /// The NodeAttestors, in file order.
    pub node_attestors: Vec<NodeAttestorChoice>,
    /// The Notifiers.
    pub notifiers: Vec<NotifierChoice>,
    /// The BundlePublishers.
    pub bundle_publishers: Vec<BundlePublisherChoice>,
}

/// `DataStore "sql"` plugin data. SPIRE's pool-size, read-replica, migration, logging and
/// MySQL TLS keys are read only to be refused by name ([`SqlPluginData::refusals`]).
#[derive(Deserialize)]
struct SqlPluginData {
    database_type: String,
    connection_string: String,
    ro_connection_string: Option<String>,
    max_open_conns: Option<Lenient<u32>>,
    max_idle_conns: Option<Lenient<u32>>,
    conn_max_lifetime: Option<GoDuration>,
    disable_migration: Option<LenientBool>,
    root_ca_path: Option<String>,
    client_cert_path: Option<String>,
    client_key_path: Option<String>,
    log_sql: Option<LenientBool>,
}

#[derive(Deserialize)]
struct DiskKeyManagerData {
    keys_path: String,
}

#[derive(Deserialize)]
struct EmptyData {}

/// `NodeAttestor "x509pop"` plugin data (mode `external_pki` only).
#[derive(Deserialize)]
struct X509PopData {
    mode: Option<String>,
    ca_bundle_path: Option<String>,
    #[serde(default)]
    ca_bundle_paths: Vec<String>,
    agent_path_template: Option<String>,
}

#[derive(Deserialize)]
struct DiskUpstreamData {
    cert_file_path: String,
    key_file_path: String,
    bundle_file_path: Option<String>,
}

// === impl SqlPluginData ===

impl SqlPluginData {
    /// The keys set that the datastore does not implement (`disable_migration` and `log_sql`
    /// only when true: false is what it does).
    fn refusals(&self) -> Vec<Refusal> {
        const PREFIX: &str = "plugins.DataStore.sql.plugin_data";
        let mut refusals = Vec::new();
        let mut when = |set: bool, key: &str, reason: &str| {
            if set {
                refusals.push(Refusal::new(format!("{PREFIX}.{key}"), reason));
            }
        };
        // The datastore checks this again when it opens; checking here lets `validate` see it.
        when(
            !matches!(
                self.database_type.as_str(),
                "sqlite3" | "sqlite" | "postgres" | "postgresql" | "mysql"
            ),
            "database_type",
            &format!(
                "{:?} is not a database spire-rs has (use \"sqlite3\", \"postgres\" or \"mysql\")",
                self.database_type
            ),
        );
        const POOL: &str = "the connection pool has fixed settings";
        const MYSQL_TLS: &str = "it configures MySQL TLS, and connections to MySQL are unencrypted (no TLS support is built in)";
        when(
            self.ro_connection_string.is_some(),
            "ro_connection_string",
            "every query goes to connection_string (no read replica)",
        );
        when(self.max_open_conns.is_some(), "max_open_conns", POOL);
        when(self.max_idle_conns.is_some(), "max_idle_conns", POOL);
        when(self.conn_max_lifetime.is_some(), "conn_max_lifetime", POOL);
        when(
            self.disable_migration.is_some_and(|b| b.0),
            "disable_migration",
            "the schema is always migrated at start",
        );
        when(self.root_ca_path.is_some(), "root_ca_path", MYSQL_TLS);
        when(
            self.client_cert_path.is_some(),
            "client_cert_path",
            MYSQL_TLS,
        );
        when(self.client_key_path.is_some(), "client_key_path", MYSQL_TLS);
        when(
            self.log_sql.is_some_and(|b| b.0),
            "log_sql",
            "SQL statements are logged through SPIRE_LOG (sqlx=debug) instead",
        );
        refusals
    }
}

// === impl ServerPlugins ===

impl ServerPlugins {
    /// Checks the `plugins` section against [`CATALOG`] and parses every block's data.
    pub fn resolve(section: Option<&serde_json::Value>) -> Result<Self, Error> {
        let plugins = CATALOG.load(section)?;
        let only = |kind: &str| plugins.of_type(kind).next();
        let datastore = only("DataStore").ok_or_else(|| missing("DataStore"))?;
        let sql: SqlPluginData = plugin_data(datastore)?;
        spire_config::refuse(sql.refusals())?;
        let key_manager = only("KeyManager").ok_or_else(|| missing("KeyManager"))?;
        let key_manager = match key_manager.name.as_str() {
            "disk" => {
                let data: DiskKeyManagerData = plugin_data(key_manager)?;
                KeyManagerChoice::Disk(PathBuf::from(data.keys_path))
            }
            _ => {
                let _: EmptyData = plugin_data(key_manager)?;
                KeyManagerChoice::Memory
            }
        };
        let upstream_authority = match only("UpstreamAuthority") {
            Some(block) => {
                let data: DiskUpstreamData = plugin_data(block)?;
                Some(DiskUpstreamConfig {
                    cert_file_path: data.cert_file_path.into(),
                    key_file_path: data.key_file_path.into(),
                    bundle_file_path: data.bundle_file_path.map(PathBuf::from),
                })
            }
            None => None,
        };
        let node_attestors = plugins
            .of_type("NodeAttestor")
            .map(|block| match block.name.as_str() {
                "join_token" => {
                    let _: EmptyData = plugin_data(block)?;
                    Ok(NodeAttestorChoice::JoinToken)
                }
                "x509pop" => x509pop_config(block).map(NodeAttestorChoice::X509Pop),
                _ => K8sPsatConfig::from_plugin_data(&block.plugin_data)
                    .map(NodeAttestorChoice::K8sPsat)
                    .map_err(|e| plugin_error(block, e)),
            })
            .collect::<Result<_, Error>>()?;
        let notifiers = plugins
            .of_type("Notifier")
            .map(|block| {
                K8sBundleConfig::from_plugin_data(&block.plugin_data)
                    .map(NotifierChoice::K8sBundle)
                    .map_err(|e| plugin_error(block, e))
            })
            .collect::<Result<_, Error>>()?;
        let bundle_publishers = plugins
            .of_type("BundlePublisher")
            .map(|block| {
                K8sConfigMapConfig::from_plugin_data(&block.plugin_data)
                    .map(BundlePublisherChoice::K8sConfigMap)
                    .map_err(|e| plugin_error(block, e))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            datastore: SqlConfig {
                database_type: sql.database_type,
                connection_string: sql.connection_string,
            },
            key_manager,
            upstream_authority,
            node_attestors,
            notifiers,
            bundle_publishers,
        })
    }
}

fn x509pop_config(block: &PluginBlock) -> Result<X509PopConfig, Error> {
    let data: X509PopData = plugin_data(block)?;
    if data.mode.as_deref().is_some_and(|m| m != "external_pki") {
        return Err(plugin_error(
            block,
            "only mode \"external_pki\" is supported by spire-rs yet",
        ));
    }
    if data.agent_path_template.is_some() {
        return Err(plugin_error(
            block,
            "agent_path_template is not supported by spire-rs yet",
        ));
    }
    let paths: Vec<PathBuf> = data
        .ca_bundle_path
        .into_iter()
        .chain(data.ca_bundle_paths)
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() {
        return Err(plugin_error(
            block,
            "ca_bundle_path or ca_bundle_paths is required",
        ));
    }
    Ok(X509PopConfig {
        ca_bundle_paths: paths,
    })
}

/// Typed plugin data, refusing unknown keys (SPIRE's rule for most built-ins).
fn plugin_data<T: serde::de::DeserializeOwned>(block: &PluginBlock) -> Result<T, Error> {
    // `plugin_data_file` never gets here: the catalog refuses it.
    let data = block.plugin_data.clone();
    let section = format!("plugins.{}.{}.plugin_data", block.plugin_type, block.name);
    Ok(typed(&section, data)?)
}

fn plugin_error(block: &PluginBlock, message: impl std::fmt::Display) -> Error {
    Error::Config(format!("{} {:?}: {message}", block.plugin_type, block.name))
}

fn missing(kind: &str) -> Error {
    Error::Config(format!(
        "plugin type {kind:?} constraint not satisfied: expected exactly 1 but got 0"
    ))
}
