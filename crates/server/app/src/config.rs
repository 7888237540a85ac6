//! From a parsed configuration file (and the `run` flags that override it) to the resolved
//! settings the server starts with. Defaults live here, in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spire_config::server::{ServerSection, TelemetrySection};
use spire_config::{ConfigError, Document};
use spire_health::HealthConfig;
use spire_id::{SpiffeId, TrustDomain};
use spire_metrics::TelemetryConfig;
use spire_server_ca::{CaConfig, CaSubject};
use spire_svid::KeyType;

use crate::Error;

mod catalog;
mod federation;

pub use catalog::{
    BundlePublisherChoice, CATALOG, KeyManagerChoice, NodeAttestorChoice, NotifierChoice,
    ServerPlugins,
};
pub use federation::{BundleEndpointConfig, EndpointProfile, FederationConfig};

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
    /// `log_format`: empty (unset: logrus's default text format), `text` or `json`.
    pub log_format: String,
    /// `log_file`, if logs go to a file.
    pub log_file: Option<PathBuf>,
    /// `log_source_location`: every line names its file and function.
    pub log_source_location: bool,
    /// CA settings, including the JWT-SVID ones (`jwt_key_type`, `jwt_issuer`,
    /// `default_jwt_svid_ttl`, `disable_jwt_svids`).
    pub ca: CaConfig,
    /// `admin_ids`.
    pub admin_ids: Vec<SpiffeId>,
    /// `audit_log_enabled`: an `API accessed` record per API call (or batch item).
    pub audit_log_enabled: bool,
    /// `ratelimit { attestation }` (default on): AttestAgent 1/s per TCP caller address.
    pub rate_limit_attestation: bool,
    /// `ratelimit { signing }` (default on): 500 signing operations/s per TCP caller address
    /// for each of BatchNewX509SVID (counted in CSRs), NewJWTSVID and RenewAgent.
    pub rate_limit_signing: bool,
    /// `experimental.cache_reload_interval`: how often the change feed looks for writes made
    /// by other servers (this server's own writes are followed at once). Default 1 s (SPIRE:
    /// 5 s).
    pub cache_reload_interval: Duration,
    /// `experimental.disable_push` (spire-rs only, default false): the push service is not
    /// routed, so Watch answers Unimplemented as on a SPIRE server and agents only poll.
    pub disable_push: bool,
    /// `experimental.prune_events_older_than` (default 12h): change events older than this
    /// are deleted, every half of it.
    pub prune_events_older_than: Duration,
    /// `prune_attested_nodes_expired_for` and its companions: `None` (the default) keeps
    /// every attested node.
    pub prune_attested_nodes: Option<NodePruning>,
    /// `federation { }`: the bundle endpoint and the static relationships.
    pub federation: FederationConfig,
    /// Every configured plugin, resolved through the catalog.
    pub plugins: ServerPlugins,
    /// `health_checks { }`.
    pub health: HealthConfig,
    /// `telemetry { }`: the Prometheus listener and the labels of every series.
    pub telemetry: TelemetryConfig,
    /// What the configuration should change, for the log once it is set up: deprecated
    /// keys, and keys accepted without effect yet, each named.
    /// Keys spire-rs cannot honour are refused instead (`docs/config.md`).
    pub warnings: Vec<String>,
}

/// Which attested nodes the server deletes, and how many per transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePruning {
    /// `prune_attested_nodes_expired_for`: how long ago a node's SVID must have expired.
    pub expired_for: Duration,
    /// `prune_attested_nodes_batch_size` (default 1000): nodes deleted per transaction.
    pub batch_size: u32,
    /// `prune_tofu_nodes` (default false): nodes that cannot re-attest are pruned too.
    pub tofu_nodes: bool,
}

/// SPIRE's `experimental.prune_events_older_than` default.
pub const DEFAULT_PRUNE_EVENTS_OLDER_THAN: Duration = Duration::from_secs(12 * 3600);
/// SPIRE's `prune_attested_nodes_batch_size` default.
pub const DEFAULT_PRUNE_NODES_BATCH_SIZE: u32 = 1_000;

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

    /// Resolves configuration text: the path both `run` and `validate` take. A key SPIRE has
    /// and spire-rs does not implement is refused by name.
    pub fn from_text(text: &str, overrides: &Overrides) -> Result<Self, Error> {
        let doc = Document::parse(text)?;
        doc.check_sections(&["server", "plugins", "telemetry", "health_checks"])?;
        let server: ServerSection = doc.section("server")?;
        let telemetry: TelemetrySection = doc.section("telemetry")?;
        spire_config::refuse(server.refusals())?;
        spire_config::refuse(telemetry.refusals())?;
        let health = HealthConfig::from_document(&doc)?;
        let mut config = Self::resolve(&server, doc.raw("plugins"), health, overrides)?;
        config.telemetry =
            TelemetryConfig::from_section(&telemetry, "spire_server").map_err(Error::Config)?;
        config.warnings.extend(server.ignored());
        Ok(config)
    }

    fn resolve(
        s: &ServerSection,
        plugins: Option<&serde_json::Value>,
        health: HealthConfig,
        o: &Overrides,
    ) -> Result<Self, Error> {
        let warnings = s.deprecation_warnings().map_err(Error::Config)?;
        let td_name = o
            .trust_domain
            .as_deref()
            .or(s.trust_domain.as_deref())
            .ok_or_else(|| Error::Config("trust_domain must be configured".into()))?;
        let trust_domain = TrustDomain::new(td_name)
            .map_err(|e| Error::Config(format!("could not parse trust_domain {td_name:?}: {e}")))?;
        let plugins = ServerPlugins::resolve(plugins)?;
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

        let federation = FederationConfig::resolve(s.federation.as_ref())?;
        let prune_events_older_than = s
            .experimental
            .as_ref()
            .and_then(|e| e.prune_events_older_than)
            .map_or(DEFAULT_PRUNE_EVENTS_OLDER_THAN, |d| d.0);
        if prune_events_older_than.is_zero() {
            return Err(Error::Config(
                "experimental.prune_events_older_than must be greater than zero".into(),
            ));
        }
        let prune_attested_nodes = match s.prune_attested_nodes_expired_for {
            Some(d) if d.0.is_zero() => {
                return Err(Error::Config(
                    "prune_attested_nodes_expired_for must be greater than zero".into(),
                ));
            }
            Some(d) => Some(NodePruning {
                expired_for: d.0,
                batch_size: s
                    .prune_attested_nodes_batch_size
                    .map_or(DEFAULT_PRUNE_NODES_BATCH_SIZE, |b| b.0)
                    .max(1),
                tofu_nodes: s.prune_tofu_nodes.is_some_and(|b| b.0),
            }),
            None => None,
        };
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
                .unwrap_or_default(),
            log_file: o
                .log_file
                .clone()
                .or_else(|| s.log_file.clone())
                .map(PathBuf::from),
            log_source_location: s.log_source_location(),
            ca,
            admin_ids,
            audit_log_enabled: s.audit_log_enabled.is_some_and(|b| b.0),
            rate_limit_attestation: s.rate_limits().0,
            rate_limit_signing: s.rate_limits().1,
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
            prune_events_older_than,
            prune_attested_nodes,
            federation,
            plugins,
            health,
            telemetry: TelemetryConfig::unconfigured("spire_server"),
            warnings,
        })
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

#[cfg(test)]
mod tests;
