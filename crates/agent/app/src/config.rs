//! From a parsed configuration file (and the `run` flags that override it) to the resolved
//! settings the agent starts with. Defaults live here, in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use spire_agent_cache::DEFAULT_JWT_SVID_CACHE_MAX_SIZE;
use spire_agent_manager::{TrustBundleFormat, TrustBundleSource};
use spire_agent_plugin::nodeattestor::{K8sPsatConfig, X509PopConfig};
use spire_agent_plugin::workloadattestor::K8sConfig;
use spire_agent_sds::SdsConfig;
use spire_config::agent::{AgentSection, SdsSection};
use spire_config::server::TelemetrySection;
use spire_config::{CatalogSpec, Constraint, Document, PluginBlock, Plugins};
use spire_health::HealthConfig;
use spire_id::TrustDomain;
use spire_metrics::TelemetryConfig;
use spire_svid::KeyType;

use crate::Error;

/// SPIRE's agent RPC timeout: the default `jwt_svid_cache_hit_timeout` and its upper bound.
const JWT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// `spire-agent`'s plugin catalog: SPIRE's agent plugin types with SPIRE's cardinalities,
/// and the built-ins spire-rs has. A block that passes is served.
pub const CATALOG: CatalogSpec = CatalogSpec {
    types: &[
        ("KeyManager", Constraint::ExactlyOne),
        ("NodeAttestor", Constraint::ExactlyOne),
        ("SVIDStore", Constraint::Any),
        ("WorkloadAttestor", Constraint::AtLeastOne),
    ],
    built_ins: &[
        ("KeyManager", "disk"),
        ("KeyManager", "memory"),
        ("NodeAttestor", "join_token"),
        ("NodeAttestor", "k8s_psat"),
        ("NodeAttestor", "x509pop"),
        ("WorkloadAttestor", "k8s"),
        ("WorkloadAttestor", "unix"),
    ],
};

/// `run` / `validate` flags that override the file (SPIRE's flag names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each is the flag of the same name
pub struct Overrides {
    pub data_dir: Option<String>,
    pub join_token: Option<String>,
    pub join_token_file: Option<String>,
    pub log_file: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
    pub socket_path: Option<String>,
    pub trust_domain: Option<String>,
    pub trust_bundle: Option<String>,
    pub trust_bundle_url: Option<String>,
    pub trust_bundle_format: Option<String>,
    pub allow_unauthenticated_verifiers: Option<bool>,
    pub insecure_bootstrap: Option<bool>,
    pub disable_workload_api: Option<bool>,
    pub disable_sds_api: Option<bool>,
}

/// Which key manager keeps the agent's private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyManagerChoice {
    /// `KeyManager "disk" { directory }`: a restart resumes the stored SVID.
    Disk(PathBuf),
    /// `KeyManager "memory"`: a restart attests again.
    Memory,
}

/// How the agent proves its node to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAttestorChoice {
    /// A join token (`join_token`, `-joinToken`, `join_token_file`); `None` when
    /// `NodeAttestor "join_token"` is configured without one (enough to resume a stored SVID).
    JoinToken(Option<String>),
    /// `NodeAttestor "x509pop"`.
    X509Pop(X509PopConfig),
    /// `NodeAttestor "k8s_psat"`.
    K8sPsat(K8sPsatConfig),
}

/// The resolved agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `server_address`.
    pub server_address: String,
    /// `server_port`.
    pub server_port: u16,
    /// `data_dir` (agent-data.json lives here).
    pub data_dir: PathBuf,
    /// `socket_path` of the Workload API.
    pub socket_path: PathBuf,
    /// `admin_socket_path`: the admin API's socket (Logger), if set.
    pub admin_socket_path: Option<PathBuf>,
    /// The bootstrap trust bundle.
    pub trust_bundle: TrustBundleSource,
    /// The node attestor.
    pub node_attestor: NodeAttestorChoice,
    /// The key manager.
    pub key_manager: KeyManagerChoice,
    /// `plugin_data` of `WorkloadAttestor "unix"`.
    pub unix_workload_attestor: Value,
    /// `WorkloadAttestor "k8s"`, when configured.
    pub k8s_workload_attestor: Option<K8sConfig>,
    /// `health_checks { }`.
    pub health: HealthConfig,
    /// `log_level` (upper case).
    pub log_level: String,
    /// `log_format`: empty (unset: logrus's default text format), `text` or `json`.
    pub log_format: String,
    /// `log_file`.
    pub log_file: Option<PathBuf>,
    /// `log_source_location`: every line names its file and function.
    pub log_source_location: bool,
    /// `experimental.sync_interval`.
    pub sync_interval: Duration,
    /// `x509_svid_cache_max_size`.
    pub x509_svid_cache_max_size: usize,
    /// `jwt_svid_cache_max_size` (default 1000).
    pub jwt_svid_cache_max_size: usize,
    /// `experimental.jwt_svid_cache_hit_timeout` (default 30 s, SPIRE's RPC timeout).
    pub jwt_svid_cache_hit_timeout: Duration,
    /// `allowed_foreign_jwt_claims`.
    pub allowed_foreign_jwt_claims: Vec<String>,
    /// `workload_x509_svid_key_type`.
    pub workload_key_type: KeyType,
    /// `allow_unauthenticated_verifiers`.
    pub allow_unauthenticated_verifiers: bool,
    /// `disable_workload_api`: the socket serves no Workload API.
    pub disable_workload_api: bool,
    /// `disable_sds_api`: the socket serves no Envoy SDS.
    pub disable_sds_api: bool,
    /// `sds {}`: Envoy SDS resource names and validation (SPIRE's defaults).
    pub sds: SdsConfig,
    /// `telemetry { }`: the Prometheus listener and the labels of every series.
    pub telemetry: TelemetryConfig,
    /// What the configuration should change, for the log once it is set up: keys accepted
    /// without effect yet, experimental settings, and
    /// settings another one overrides, each named. Keys spire-rs cannot honour are refused
    /// instead (`docs/config.md`).
    pub warnings: Vec<String>,
}

// === impl AgentConfig ===

impl AgentConfig {
    /// Reads and resolves the file at `path` (with `$VAR` expansion when `expand_env`).
    pub fn load(path: &Path, expand_env: bool, overrides: &Overrides) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("could not read {}: {e}", path.display())))?;
        let text = if expand_env {
            spire_config::expand_env(&text, |k| std::env::var(k).ok())
        } else {
            text
        };
        Self::from_text(&text, overrides)
    }

    /// Resolves a configuration given as text: the path both `run` and `validate` take. A key
    /// SPIRE has and spire-rs does not implement is refused by name.
    pub fn from_text(text: &str, overrides: &Overrides) -> Result<Self, Error> {
        let doc = Document::parse(text)?;
        doc.check_sections(&["agent", "plugins", "telemetry", "health_checks"])?;
        let agent: AgentSection = doc.section("agent")?;
        let telemetry: TelemetrySection = doc.section("telemetry")?;
        spire_config::refuse(agent.refusals())?;
        spire_config::refuse(telemetry.refusals())?;
        let plugins = CATALOG.load(doc.raw("plugins"))?;
        let health = HealthConfig::from_document(&doc)?;
        let mut config = resolve(&agent, &plugins, health, overrides)?;
        config.telemetry =
            TelemetryConfig::from_section(&telemetry, "spire_agent").map_err(config_err)?;
        config.warnings.extend(agent.ignored());
        Ok(config)
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

fn resolve(
    agent: &AgentSection,
    plugins: &Plugins,
    health: HealthConfig,
    o: &Overrides,
) -> Result<AgentConfig, Error> {
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());
    let mut warnings = Vec::new();
    // Read by SPIRE only with a rebootstrap_mode other than "never", which is refused; still
    // checked, as SPIRE does.
    agent.rebootstrap_delay().map_err(config_err)?;
    let trust_domain = pick(&o.trust_domain, &agent.trust_domain)
        .filter(|td| !td.is_empty())
        .ok_or_else(|| config_err("trust_domain must be configured"))?;
    let trust_domain = TrustDomain::parse(&trust_domain).map_err(|e| {
        config_err(format!(
            "could not parse trust_domain {trust_domain:?}: {e}"
        ))
    })?;
    let server_address = pick(&o.server_address, &agent.server_address)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| config_err("server_address must be configured"))?;
    let server_port = o
        .server_port
        .or(agent.server_port.map(|p| p.0))
        .ok_or_else(|| config_err("server_port must be configured"))?;
    let data_dir = PathBuf::from(pick(&o.data_dir, &agent.data_dir).unwrap_or_else(|| ".".into()));
    let socket_path = PathBuf::from(
        pick(&o.socket_path, &agent.socket_path)
            .unwrap_or_else(|| AgentSection::DEFAULT_SOCKET_PATH.into()),
    );
    let admin_socket_path = agent
        .admin_socket_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if let Some(admin) = &admin_socket_path {
        check_admin_socket(&socket_path, admin)?;
    }

    let insecure = o
        .insecure_bootstrap
        .or(agent.insecure_bootstrap.map(|b| b.0))
        .unwrap_or(false);
    let bundle_path = pick(&o.trust_bundle, &agent.trust_bundle_path);
    if pick(&o.trust_bundle_url, &agent.trust_bundle_url).is_some() {
        return Err(config_err(
            "trust_bundle_url is not supported yet; use trust_bundle_path or insecure_bootstrap",
        ));
    }
    if agent.trust_bundle_unix_socket.is_some() {
        return Err(config_err(
            "trust_bundle_unix_socket is not supported yet (nor trust_bundle_url, which it \
             serves); use trust_bundle_path or insecure_bootstrap",
        ));
    }
    if agent.trust_bundle_spiffe_workload_api.is_some() {
        return Err(config_err(
            "trust_bundle_spiffe_workload_api is not supported yet; use trust_bundle_path or \
             insecure_bootstrap",
        ));
    }
    let format = match pick(&o.trust_bundle_format, &agent.trust_bundle_format).as_deref() {
        None | Some("pem") => TrustBundleFormat::Pem,
        Some("spiffe") => TrustBundleFormat::Spiffe,
        Some(other) => {
            return Err(config_err(format!(
                "invalid value for trust_bundle_format, expected \"pem\" or \"spiffe\", got {other:?}"
            )));
        }
    };
    let trust_bundle = match (bundle_path, insecure) {
        (Some(_), true) => {
            warnings.push("trust_bundle_path is ignored because insecure_bootstrap is set".into());
            TrustBundleSource::Insecure
        }
        (None, true) => TrustBundleSource::Insecure,
        (Some(path), false) => TrustBundleSource::Path {
            path: PathBuf::from(path),
            format,
        },
        (None, false) => {
            return Err(config_err(
                "trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set",
            ));
        }
    };

    let node_attestor = node_attestor(agent, plugins, o)?;
    let key_manager = match single(plugins, "KeyManager")? {
        b if b.name == "disk" => {
            let dir = b
                .plugin_data
                .get("directory")
                .and_then(Value::as_str)
                .ok_or_else(|| config_err("KeyManager \"disk\": directory must be configured"))?;
            KeyManagerChoice::Disk(PathBuf::from(dir))
        }
        _ => KeyManagerChoice::Memory,
    };
    let workload_data = |name: &str| {
        plugins
            .of_type("WorkloadAttestor")
            .find(|b| b.name == name)
            .map(|b| b.plugin_data.clone())
    };
    let unix_workload_attestor = workload_data("unix")
        .ok_or_else(|| config_err("WorkloadAttestor \"unix\" must be configured"))?;
    let k8s_workload_attestor = workload_data("k8s")
        .map(|data| {
            K8sConfig::from_plugin_data(&data)
                .map_err(|e| config_err(format!("WorkloadAttestor \"k8s\": {e}")))
        })
        .transpose()?;
    let workload_key_type = match agent.workload_x509_svid_key_type.as_deref() {
        None | Some("") => KeyType::EcP256,
        Some(s) => s
            .parse()
            .map_err(|e| config_err(format!("invalid workload_x509_svid_key_type: {e}")))?,
    };

    let jwt_svid_cache_hit_timeout = jwt_svid_cache_hit_timeout(agent, &mut warnings)?;

    Ok(AgentConfig {
        trust_domain,
        server_address,
        server_port,
        data_dir,
        socket_path,
        admin_socket_path,
        trust_bundle,
        node_attestor,
        key_manager,
        unix_workload_attestor,
        k8s_workload_attestor,
        health,
        log_level: pick(&o.log_level, &agent.log_level)
            .unwrap_or_else(|| "INFO".into())
            .to_uppercase(),
        log_format: pick(&o.log_format, &agent.log_format).unwrap_or_default(),
        log_file: pick(&o.log_file, &agent.log_file).map(PathBuf::from),
        log_source_location: agent.log_source_location(),
        sync_interval: agent.sync_interval(),
        x509_svid_cache_max_size: agent.x509_svid_cache_max_size() as usize,
        jwt_svid_cache_max_size: agent
            .jwt_svid_cache_max_size
            .map_or(DEFAULT_JWT_SVID_CACHE_MAX_SIZE, |v| v.0 as usize),
        jwt_svid_cache_hit_timeout,
        allowed_foreign_jwt_claims: agent.allowed_foreign_jwt_claims.clone(),
        workload_key_type,
        allow_unauthenticated_verifiers: o
            .allow_unauthenticated_verifiers
            .or(agent.allow_unauthenticated_verifiers.map(|b| b.0))
            .unwrap_or(false),
        disable_workload_api: o
            .disable_workload_api
            .or(agent.disable_workload_api.map(|b| b.0))
            .unwrap_or(false),
        disable_sds_api: o
            .disable_sds_api
            .or(agent.disable_sds_api.map(|b| b.0))
            .unwrap_or(false),
        sds: sds_config(agent.sds.as_ref()),
        telemetry: TelemetryConfig::unconfigured("spire_agent"),
        warnings,
    })
}

/// `experimental.jwt_svid_cache_hit_timeout`: at least 5 s and under SPIRE's 30 s RPC timeout,
/// which is also the default.
fn jwt_svid_cache_hit_timeout(
    agent: &AgentSection,
    warnings: &mut Vec<String>,
) -> Result<Duration, Error> {
    let Some(timeout) = agent
        .experimental
        .as_ref()
        .and_then(|e| e.jwt_svid_cache_hit_timeout)
        .map(|d| d.0)
    else {
        return Ok(JWT_RPC_TIMEOUT);
    };
    if timeout < Duration::from_secs(5) {
        return Err(config_err(format!(
            "jwt_svid_cache_hit_timeout ({timeout:?}) must be greater than 5s"
        )));
    }
    if timeout >= JWT_RPC_TIMEOUT {
        return Err(config_err(format!(
            "jwt_svid_cache_hit_timeout ({timeout:?}) must be less than 30s"
        )));
    }
    warnings.push("The use of 'jwt_svid_cache_hit_timeout' is experimental".into());
    Ok(timeout)
}

/// `sds {}` over SPIRE's defaults (a key left out keeps its default).
fn sds_config(section: Option<&SdsSection>) -> SdsConfig {
    let mut sds = SdsConfig::default();
    let Some(section) = section else {
        return sds;
    };
    if let Some(name) = &section.default_svid_name {
        sds.default_svid_name.clone_from(name);
    }
    if let Some(name) = &section.default_bundle_name {
        sds.default_bundle_name.clone_from(name);
    }
    if let Some(name) = &section.default_all_bundles_name {
        sds.default_all_bundles_name.clone_from(name);
    }
    if let Some(disabled) = &section.disable_spiffe_cert_validation {
        sds.disable_spiffe_cert_validation = disabled.0;
    }
    sds
}

/// A join token (flag, file, config) wins, as in SPIRE; otherwise the one configured
/// `NodeAttestor`.
fn node_attestor(
    agent: &AgentSection,
    plugins: &Plugins,
    o: &Overrides,
) -> Result<NodeAttestorChoice, Error> {
    let token_file = o.join_token_file.clone().or(agent.join_token_file.clone());
    let token = match (&o.join_token, token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(&file)
                .map_err(|e| config_err(format!("unable to read join token file {file:?}: {e}")))?
                .trim()
                .to_owned(),
        ),
        (None, None) => agent.join_token.clone(),
    }
    .filter(|t| !t.is_empty());
    if let Some(token) = token {
        return Ok(NodeAttestorChoice::JoinToken(Some(token)));
    }
    let block = single(plugins, "NodeAttestor")?;
    match block.name.as_str() {
        "join_token" => Ok(NodeAttestorChoice::JoinToken(None)),
        "k8s_psat" => Ok(NodeAttestorChoice::K8sPsat(
            K8sPsatConfig::from_plugin_data(&block.plugin_data)
                .map_err(|e| config_err(format!("NodeAttestor \"k8s_psat\": {e}")))?,
        )),
        "x509pop" => {
            let path = |key: &str| {
                block
                    .plugin_data
                    .get(key)
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
            };
            Ok(NodeAttestorChoice::X509Pop(X509PopConfig {
                private_key_path: path("private_key_path").ok_or_else(|| {
                    config_err("NodeAttestor \"x509pop\": private_key_path is required")
                })?,
                certificate_path: path("certificate_path").ok_or_else(|| {
                    config_err("NodeAttestor \"x509pop\": certificate_path is required")
                })?,
                intermediates_path: path("intermediates_path"),
            }))
        }
        // The catalog admits no other name.
        _ => Ok(NodeAttestorChoice::JoinToken(None)),
    }
}

/// The one enabled block of a type the catalog constrains to exactly one.
fn single<'a>(plugins: &'a Plugins, plugin_type: &str) -> Result<&'a PluginBlock, Error> {
    plugins.of_type(plugin_type).next().ok_or_else(|| {
        config_err(format!(
            "plugin type {plugin_type:?} constraint not satisfied: expected exactly 1 but got 0"
        ))
    })
}

#[cfg(test)]
mod tests;

/// SPIRE's rule: the admin socket must not be in the Workload API socket's directory (or below
/// it), where workloads can reach it. Paths are compared made absolute, as SPIRE compares them.
fn check_admin_socket(socket_path: &Path, admin: &Path) -> Result<(), Error> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let socket = absolute(socket_path);
    let admin = absolute(admin);
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let dir = format!("{}/", dir.display()).replace("//", "/");
    if admin.display().to_string().starts_with(&dir) {
        return Err(config_err(
            "admin socket cannot be in the same directory or a subdirectory as that containing \
             the Workload API socket",
        ));
    }
    Ok(())
}
