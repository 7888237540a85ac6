//! From a parsed configuration file (and the `run` flags that override it) to the resolved
//! settings the server starts with. Defaults live here, in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use spire_config::de::{GoDuration, Lenient};
use spire_config::server::{HealthChecksSection, ServerSection, TelemetrySection};
use spire_config::{ConfigError, Document, PluginBlock, Plugins, typed};
use spire_id::{SpiffeId, TrustDomain};
use spire_server_ca::{CaConfig, CaSubject};
use spire_server_datastore_sql::SqlConfig;
use spire_server_plugin::nodeattestor::X509PopConfig;
use spire_server_plugin::upstreamauthority::DiskUpstreamConfig;
use spire_svid::KeyType;

use crate::Error;

mod federation;

pub use federation::{BundleEndpointConfig, EndpointProfile, FederationConfig};

/// Plugin types `spire-server` knows (configuring another is an error).
pub const PLUGIN_TYPES: &[&str] = &[
    "DataStore",
    "KeyManager",
    "NodeAttestor",
    "UpstreamAuthority",
    "Notifier",
    "BundlePublisher",
    "CredentialComposer",
];

/// `run` / `validate` flags that override the file (SPIRE's flag names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each is the flag of the same name
pub struct Overrides {
    pub bind_address: Option<String>,
    pub server_port: Option<u16>,
    pub data_dir: Option<String>,
    pub log_file: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub trust_domain: Option<String>,
    pub socket_path: Option<String>,
}

/// Which key manager keeps the CA keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyManagerChoice {
    /// `KeyManager "disk" { keys_path }`.
    Disk(PathBuf),
    /// `KeyManager "memory"`.
    Memory,
}

/// The resolved server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `bind_address:bind_port` of the agent/admin TLS listener.
    pub bind_address: String,
    /// TCP port.
    pub bind_port: u16,
    /// The admin Unix socket.
    pub socket_path: PathBuf,
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// `log_level` (upper case as in SPIRE).
    pub log_level: String,
    /// `log_format`: `text` or `json`.
    pub log_format: String,
    /// `log_file`, if logs go to a file.
    pub log_file: Option<PathBuf>,
    /// CA settings, including the JWT-SVID ones (`jwt_key_type`, `jwt_issuer`,
    /// `default_jwt_svid_ttl`, `disable_jwt_svids`).
    pub ca: CaConfig,
    /// `admin_ids`.
    pub admin_ids: Vec<SpiffeId>,
    /// `DataStore "sql"`.
    pub datastore: SqlConfig,
    /// The KeyManager.
    pub key_manager: KeyManagerChoice,
    /// `UpstreamAuthority "disk"`, if configured.
    pub upstream_authority: Option<DiskUpstreamConfig>,
    /// Names of the configured NodeAttestors.
    pub node_attestors: Vec<String>,
    /// `NodeAttestor "x509pop"` settings, when configured.
    pub x509pop: Option<X509PopConfig>,
    /// `experimental.cache_reload_interval`: how often the change feed looks for writes made
    /// by other servers (this server's own writes are followed at once). Default 1 s (SPIRE:
    /// 5 s).
    pub cache_reload_interval: Duration,
    /// `experimental.disable_push` (spire-rs only, default false): the push service is not
    /// routed, so Watch answers Unimplemented as on a SPIRE server and agents only poll.
    pub disable_push: bool,
    /// `federation { }`: the bundle endpoint and the static relationships.
    pub federation: FederationConfig,
}

/// `DataStore "sql"` plugin data. SPIRE's pool-size, read-replica and TLS keys are accepted
/// (so its configs load) but not used yet.
#[derive(Deserialize)]
#[allow(dead_code)] // the accepted-but-unused keys (see above)
struct SqlPluginData {
    database_type: String,
    connection_string: String,
    ro_connection_string: Option<String>,
    max_open_conns: Option<Lenient<u32>>,
    max_idle_conns: Option<Lenient<u32>>,
    conn_max_lifetime: Option<GoDuration>,
    disable_migration: Option<spire_config::de::LenientBool>,
    root_ca_path: Option<String>,
    client_cert_path: Option<String>,
    client_key_path: Option<String>,
    log_sql: Option<spire_config::de::LenientBool>,
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

// === impl ServerConfig ===

impl ServerConfig {
    /// Reads `path`, expanding `$VAR`s first when `expand_env` is set, and resolves it.
    pub fn load(path: &Path, expand_env: bool, overrides: &Overrides) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "could not read configuration file {}: {e}",
                path.display()
            ))
        })?;
        let text = if expand_env {
            spire_config::expand_env(&text, |k| std::env::var(k).ok())
        } else {
            text
        };
        Self::from_text(&text, overrides)
    }

    /// Resolves configuration text.
    pub fn from_text(text: &str, overrides: &Overrides) -> Result<Self, Error> {
        let doc = Document::parse(text)?;
        doc.check_sections(&["server", "plugins", "telemetry", "health_checks"])?;
        let server: ServerSection = doc.section("server")?;
        let _: TelemetrySection = doc.section("telemetry")?;
        let _: HealthChecksSection = doc.section("health_checks")?;
        let plugins = Plugins::parse(doc.raw("plugins"), PLUGIN_TYPES)?;
        Self::resolve(&server, &plugins, overrides)
    }

    fn resolve(s: &ServerSection, plugins: &Plugins, o: &Overrides) -> Result<Self, Error> {
        let td_name = o
            .trust_domain
            .as_deref()
            .or(s.trust_domain.as_deref())
            .ok_or_else(|| Error::Config("trust_domain must be configured".into()))?;
        let trust_domain = TrustDomain::new(td_name)
            .map_err(|e| Error::Config(format!("could not parse trust_domain {td_name:?}: {e}")))?;
        let mut ca = CaConfig::new(trust_domain.clone());
        if let Some(subject) = &s.ca_subject {
            ca.ca_subject = CaSubject {
                country: subject.country.clone(),
                organization: subject.organization.clone(),
                common_name: subject.common_name.clone(),
            };
        }
        if let Some(kt) = &s.ca_key_type {
            ca.ca_key_type = kt
                .parse::<KeyType>()
                .map_err(|e| Error::Config(e.to_string()))?;
        }
        ca.ca_ttl = s.ca_ttl();
        ca.default_x509_svid_ttl = s.default_x509_svid_ttl();
        ca.agent_ttl = s.agent_ttl.map(Duration::from);
        if let Some(kt) = &s.jwt_key_type {
            ca.jwt_key_type = Some(
                kt.parse::<KeyType>()
                    .map_err(|e| Error::Config(e.to_string()))?,
            );
        }
        ca.default_jwt_svid_ttl = s.default_jwt_svid_ttl();
        ca.jwt_issuer = s.jwt_issuer.clone().filter(|iss| !iss.is_empty());
        ca.disable_jwt_svids = s.disable_jwt_svids.is_some_and(|b| b.0);
        let admin_ids = s
            .admin_ids
            .iter()
            .map(|id| {
                SpiffeId::parse(id)
                    .map_err(|e| Error::Config(format!("could not parse admin ID {id:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;

        let datastore = one_plugin(plugins, "DataStore")?;
        if datastore.name != "sql" {
            return Err(unsupported(datastore));
        }
        let sql: SqlPluginData = plugin_data(datastore)?;
        let key_manager = one_plugin(plugins, "KeyManager")?;
        let key_manager = match key_manager.name.as_str() {
            "disk" => {
                let data: DiskKeyManagerData = plugin_data(key_manager)?;
                KeyManagerChoice::Disk(PathBuf::from(data.keys_path))
            }
            "memory" => {
                let _: EmptyData = plugin_data(key_manager)?;
                KeyManagerChoice::Memory
            }
            _ => return Err(unsupported(key_manager)),
        };
        let mut upstream = plugins.of_type("UpstreamAuthority");
        let upstream_authority = match (upstream.next(), upstream.next()) {
            (None, _) => None,
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "only one UpstreamAuthority plugin may be configured".into(),
                ));
            }
            (Some(block), None) if block.name == "disk" => {
                let data: DiskUpstreamData = plugin_data(block)?;
                Some(DiskUpstreamConfig {
                    cert_file_path: data.cert_file_path.into(),
                    key_file_path: data.key_file_path.into(),
                    bundle_file_path: data.bundle_file_path.map(PathBuf::from),
                })
            }
            (Some(block), None) => return Err(unsupported(block)),
        };
        let federation = FederationConfig::resolve(s.federation.as_ref())?;
        let mut node_attestors = Vec::new();
        let mut x509pop = None;
        for block in plugins.of_type("NodeAttestor") {
            match block.name.as_str() {
                "join_token" | "k8s_psat" => node_attestors.push(block.name.clone()),
                "x509pop" => {
                    x509pop = Some(x509pop_config(block)?);
                    node_attestors.push(block.name.clone());
                }
                _ => return Err(unsupported(block)),
            }
        }
        for kind in ["Notifier", "BundlePublisher", "CredentialComposer"] {
            if let Some(block) = plugins.of_type(kind).next() {
                return Err(unsupported(block));
            }
        }

        Ok(Self {
            trust_domain,
            bind_address: o
                .bind_address
                .clone()
                .unwrap_or_else(|| s.bind_address().to_owned()),
            bind_port: o.server_port.unwrap_or_else(|| s.bind_port()),
            socket_path: PathBuf::from(o.socket_path.as_deref().unwrap_or(s.socket_path())),
            data_dir: PathBuf::from(
                o.data_dir
                    .as_deref()
                    .or(s.data_dir.as_deref())
                    .unwrap_or("."),
            ),
            log_level: o
                .log_level
                .clone()
                .unwrap_or_else(|| s.log_level().to_owned())
                .to_uppercase(),
            log_format: o
                .log_format
                .clone()
                .or_else(|| s.log_format.clone())
                .unwrap_or_else(|| "text".into()),
            log_file: o
                .log_file
                .clone()
                .or_else(|| s.log_file.clone())
                .map(PathBuf::from),
            ca,
            admin_ids,
            datastore: SqlConfig {
                database_type: sql.database_type,
                connection_string: sql.connection_string,
            },
            key_manager,
            upstream_authority,
            node_attestors,
            x509pop,
            cache_reload_interval: s
                .experimental
                .as_ref()
                .and_then(|e| e.cache_reload_interval.as_ref())
                .map_or(Duration::from_secs(1), |d| d.0)
                .max(Duration::from_millis(10)),
            disable_push: s
                .experimental
                .as_ref()
                .and_then(|e| e.disable_push)
                .is_some_and(|b| b.0),
            federation,
        })
    }
}

fn x509pop_config(block: &PluginBlock) -> Result<X509PopConfig, Error> {
    let data: X509PopData = plugin_data(block)?;
    if data.mode.as_deref().is_some_and(|m| m != "external_pki") {
        return Err(Error::Config(
            "NodeAttestor \"x509pop\": only mode \"external_pki\" is supported by spire-rs yet"
                .into(),
        ));
    }
    if data.agent_path_template.is_some() {
        return Err(Error::Config(
            "NodeAttestor \"x509pop\": agent_path_template is not supported by spire-rs yet".into(),
        ));
    }
    let paths: Vec<PathBuf> = data
        .ca_bundle_path
        .into_iter()
        .chain(data.ca_bundle_paths)
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() {
        return Err(Error::Config(
            "NodeAttestor \"x509pop\": ca_bundle_path or ca_bundle_paths is required".into(),
        ));
    }
    Ok(X509PopConfig {
        ca_bundle_paths: paths,
    })
}

fn one_plugin<'a>(plugins: &'a Plugins, kind: &str) -> Result<&'a PluginBlock, Error> {
    let mut all = plugins.of_type(kind);
    match (all.next(), all.next()) {
        (Some(block), None) => Ok(block),
        (None, _) => Err(Error::Config(format!("a {kind} plugin must be configured"))),
        (Some(_), Some(_)) => Err(Error::Config(format!(
            "only one {kind} plugin may be configured"
        ))),
    }
}

fn plugin_data<T: serde::de::DeserializeOwned>(block: &PluginBlock) -> Result<T, Error> {
    if block.plugin_data_file.is_some() {
        return Err(Error::Config(format!(
            "{} {:?}: plugin_data_file is not supported yet; use plugin_data",
            block.plugin_type, block.name
        )));
    }
    let section = format!("plugins.{}.{}.plugin_data", block.plugin_type, block.name);
    Ok(typed(&section, block.plugin_data.clone())?)
}

fn unsupported(block: &PluginBlock) -> Error {
    Error::Config(format!(
        "{} plugin {:?} is not supported by spire-rs yet",
        block.plugin_type, block.name
    ))
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}
