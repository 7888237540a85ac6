//! The legacy k8s-workload-registrar's HCL file (SPIRE ≤ 1.5), resolved into
//! [`RegistrarConfig`].
//!
//! Upstream decodes the file twice, into the common keys and then into the keys of the
//! selected `mode`, and ignores everything else: so do we, collecting the keys neither stage
//! reads into [`RegistrarConfig::ignored_keys`] (the upstream example's typo
//! `add_svc_dns_names` among them). HCL v1's leniency is kept: numbers and booleans may stand
//! where strings are expected (`metrics_bind_addr = 0`), numbers may be quoted.
//!
//! One departure: spire-rs's registrar talks to spire-server only through the admin Unix
//! socket, so a TCP `server_address` (which upstream dials with mTLS credentials from
//! `agent_socket_path`) is refused with [`ConfigError::TcpServerAddress`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};
use spire_id::TrustDomain;

use super::{ConfigError, LeaderElection, LogFormat, LogLevel, RegistrarArgs};

mod raw;

use raw::{HclString, RawCommon, RawCrd, RawReconcile};

/// The resolved registrar settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// `trust_domain` (required).
    pub trust_domain: TrustDomain,
    /// `cluster` (required): names the node-alias entries.
    pub cluster: String,
    /// The admin socket: `server_socket_path`, or the path of a `unix://` `server_address`
    /// (which wins when both are set).
    pub server_socket_path: PathBuf,
    /// `log_level` (`info`).
    pub log_level: LogLevel,
    /// `log_format` (`text`).
    pub log_format: LogFormat,
    /// `log_path`; `None` = standard error.
    pub log_path: Option<PathBuf>,
    /// `disabled_namespaces` (`kube-system`, `kube-public`): pods there get no entry.
    pub disabled_namespaces: Vec<String>,
    /// `mode` and its keys.
    pub mode: RegistrarMode,
    /// Keys the file holds that neither the common nor the mode stage reads.
    pub ignored_keys: Vec<String>,
    /// Other things the operator should hear about once logging is up.
    pub warnings: Vec<String>,
}

/// `mode = "crd"` or `mode = "reconcile"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrarMode {
    /// One `SpiffeID` custom resource per pod and node, each synced to one entry.
    Crd(CrdMode),
    /// Entries owned directly, by parent ID prefix, without custom resources.
    Reconcile(ReconcileMode),
}

/// `mode = "crd"` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdMode {
    /// Where a pod's SPIFFE ID path comes from.
    pub identity: PodIdentity,
    /// `dns_name_templates` with every space removed (default `{{.Pod.Name}}`; an explicit
    /// empty list gives pods no DNS names). The first rendered name becomes the SVID's CN.
    pub dns_name_templates: Vec<String>,
    /// `context`: the `{{.Context.<key>}}` values; `None` when the file has no `context`.
    pub context: Option<BTreeMap<String, String>>,
    /// `add_svc_dns_name` (true): add `<svc>.<ns>.svc` for every Service selecting the pod.
    pub add_svc_dns_name: bool,
    /// `pod_controller` (true): create SpiffeIDs for nodes and pods.
    pub pod_controller: bool,
    /// `webhook_*`.
    pub webhook: RegistrarWebhook,
    /// `metrics_bind_addr` (`:8080`); `None` = off (`"0"`).
    pub metrics_bind_address: Option<String>,
    /// `leader_election` and `leader_election_resource_lock`, lease
    /// `spire-k8s-registrar-leader-election`.
    pub leader_election: LeaderElection,
}

/// How a pod's SPIFFE ID path is chosen in CRD mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodIdentity {
    /// `pod_label`: the value of this label; pods without it are skipped.
    Label(String),
    /// `pod_annotation`: the value of this annotation; pods without it are skipped.
    Annotation(String),
    /// `identity_template` (Go text/template over `.Pod.*` and `.Context.*`).
    Template {
        /// The template source, as written.
        template: String,
        /// `identity_template_label`: only pods whose label of this name equals `true`
        /// (any case) get an ID; `None` = every pod.
        label: Option<String>,
    },
}

/// The CRD-mode validating webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarWebhook {
    /// `webhook_enabled` (false).
    pub enabled: bool,
    /// `webhook_port` (9443).
    pub port: u16,
    /// `webhook_cert_dir` (`/run/spire/serving-certs`).
    pub cert_dir: PathBuf,
    /// `webhook_service_name` (`k8s-workload-registrar`): the DNS name of the serving SVID.
    pub service_name: String,
}

/// `mode = "reconcile"` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileMode {
    /// `controller_name` (`spire-k8s-registrar`): first segment of the node IDs.
    pub controller_name: String,
    /// `add_pod_dns_names` (false).
    pub add_pod_dns_names: bool,
    /// `cluster_dns_zone` (`cluster.local`).
    pub cluster_dns_zone: String,
    /// `metrics_addr` (`:8080`); `None` = off (`"0"`).
    pub metrics_bind_address: Option<String>,
    /// `leader_election` and `leader_election_resource_lock`, lease
    /// `<controller_name>-leader-election`.
    pub leader_election: LeaderElection,
    /// `pod_label` (a pod's ID is the label's value; pods without it are skipped).
    pub pod_label: Option<String>,
    /// `pod_annotation` (likewise); neither = `ns/<ns>/sa/<sa>`.
    pub pod_annotation: Option<String>,
}

// === impl RegistrarConfig ===

impl RegistrarConfig {
    /// The identity template when neither `pod_label` nor `pod_annotation` is set.
    pub const DEFAULT_IDENTITY_TEMPLATE: &'static str =
        "ns/{{.Pod.Namespace}}/sa/{{.Pod.ServiceAccount}}";
    /// `dns_name_templates` when the file does not set it.
    pub const DEFAULT_DNS_NAME_TEMPLATE: &'static str = "{{.Pod.Name}}";
    /// `disabled_namespaces` when the file does not set it.
    pub const DEFAULT_DISABLED_NAMESPACES: [&'static str; 2] = ["kube-system", "kube-public"];
    /// `metrics_bind_addr` / `metrics_addr` when unset.
    pub const DEFAULT_METRICS_BIND_ADDRESS: &'static str = ":8080";
    /// `webhook_cert_dir` when unset.
    pub const DEFAULT_WEBHOOK_CERT_DIR: &'static str = "/run/spire/serving-certs";
    /// `webhook_port` when unset (or 0).
    pub const DEFAULT_WEBHOOK_PORT: u16 = 9443;
    /// `webhook_service_name` when unset.
    pub const DEFAULT_WEBHOOK_SERVICE_NAME: &'static str = "k8s-workload-registrar";
    /// The CRD-mode leader-election lease.
    pub const CRD_LEASE_NAME: &'static str = "spire-k8s-registrar-leader-election";
    /// `controller_name` when unset.
    pub const DEFAULT_CONTROLLER_NAME: &'static str = "spire-k8s-registrar";
    /// `cluster_dns_zone` when unset.
    pub const DEFAULT_CLUSTER_DNS_ZONE: &'static str = "cluster.local";

    /// Reads the `-config` file and resolves it.
    pub fn load(args: &RegistrarArgs) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(&args.config).map_err(|source| ConfigError::RegistrarRead {
                path: args.config.clone(),
                source,
            })?;
        Self::parse(&text)
    }

    /// Parses HCL (or its JSON form) and resolves it, with upstream's checks in upstream's
    /// order.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let root = root(text)?;
        let (common, common_unknown): (RawCommon, _) =
            super::decode_lenient(&root).map_err(ConfigError::RegistrarDecode)?;
        let mut warnings = Vec::new();
        let common = Common::resolve(common)?;
        let (mode, mode_unknown) = match common.mode.as_str() {
            "crd" => {
                let (raw, unknown): (RawCrd, _) =
                    super::decode_lenient(&root).map_err(ConfigError::RegistrarDecode)?;
                (
                    RegistrarMode::Crd(crd_mode(raw, &common, &mut warnings)?),
                    unknown,
                )
            }
            _ => {
                let (raw, unknown): (RawReconcile, _) =
                    super::decode_lenient(&root).map_err(ConfigError::RegistrarDecode)?;
                (
                    RegistrarMode::Reconcile(reconcile_mode(raw, &common)?),
                    unknown,
                )
            }
        };
        let ignored_keys = common_unknown
            .into_iter()
            .filter(|key| mode_unknown.contains(key))
            .collect();
        Ok(Self {
            trust_domain: common.trust_domain,
            cluster: common.cluster,
            server_socket_path: common.server_socket_path,
            log_level: common.log_level,
            log_format: common.log_format,
            log_path: common.log_path,
            disabled_namespaces: common.disabled_namespaces,
            mode,
            ignored_keys,
            warnings,
        })
    }
}

/// The common stage, checked.
struct Common {
    trust_domain: TrustDomain,
    cluster: String,
    server_socket_path: PathBuf,
    log_level: LogLevel,
    log_format: LogFormat,
    log_path: Option<PathBuf>,
    pod_label: Option<String>,
    pod_annotation: Option<String>,
    mode: String,
    disabled_namespaces: Vec<String>,
}

impl Common {
    fn resolve(raw: RawCommon) -> Result<Self, ConfigError> {
        let server_address = match (string(raw.server_address), string(raw.server_socket_path)) {
            (Some(address), _) => address,
            (None, Some(path)) => format!("unix://{path}"),
            (None, None) => return Err(ConfigError::MissingServerAddress),
        };
        let Some(socket) = server_address.strip_prefix("unix://") else {
            return Err(ConfigError::TcpServerAddress {
                address: server_address,
            });
        };
        let server_socket_path = PathBuf::from(socket);
        let trust_domain =
            string(raw.trust_domain).ok_or(ConfigError::RegistrarMissingTrustDomain)?;
        let trust_domain =
            TrustDomain::parse(&trust_domain).map_err(ConfigError::MalformedTrustDomain)?;
        let cluster = string(raw.cluster).ok_or(ConfigError::MissingCluster)?;
        let pod_label = string(raw.pod_label);
        let pod_annotation = string(raw.pod_annotation);
        if pod_label.is_some() && pod_annotation.is_some() {
            return Err(ConfigError::PodLabelAndAnnotation);
        }
        let mode = string(raw.mode).ok_or(ConfigError::MissingMode)?;
        if mode != "crd" && mode != "reconcile" {
            return Err(ConfigError::InvalidMode(mode));
        }
        let disabled_namespaces = match raw.disabled_namespaces {
            Some(list) => list.into_iter().map(|s| s.0).collect(),
            None => RegistrarConfig::DEFAULT_DISABLED_NAMESPACES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        Ok(Self {
            trust_domain,
            cluster,
            server_socket_path,
            log_level: log_level(string(raw.log_level))?,
            log_format: log_format(string(raw.log_format))?,
            log_path: string(raw.log_path).map(PathBuf::from),
            pod_label,
            pod_annotation,
            mode,
            disabled_namespaces,
        })
    }
}

fn crd_mode(
    raw: RawCrd,
    common: &Common,
    warnings: &mut Vec<String>,
) -> Result<CrdMode, ConfigError> {
    let identity_template = string(raw.identity_template);
    let identity_template_label = string(raw.identity_template_label);
    if identity_template.is_some()
        && (common.pod_label.is_some() || common.pod_annotation.is_some())
    {
        return Err(ConfigError::IdentityTemplateNotExclusive);
    }
    let context: Option<BTreeMap<String, String>> = raw
        .context
        .map(|map| map.into_iter().map(|(k, v)| (k, v.0)).collect());
    let dns_name_templates: Option<Vec<String>> = raw
        .dns_name_templates
        .map(|list| list.into_iter().map(|s| s.0).collect());
    if context.is_none() {
        if identity_template.as_deref().is_some_and(references_context) {
            return Err(ConfigError::IdentityTemplateContext);
        }
        if dns_name_templates
            .iter()
            .flatten()
            .any(|t| references_context(t))
        {
            return Err(ConfigError::DnsNameTemplateContext);
        }
    }
    let identity = match (&common.pod_label, &common.pod_annotation) {
        (Some(label), _) => PodIdentity::Label(label.clone()),
        (None, Some(annotation)) => PodIdentity::Annotation(annotation.clone()),
        (None, None) => PodIdentity::Template {
            template: identity_template
                .unwrap_or_else(|| RegistrarConfig::DEFAULT_IDENTITY_TEMPLATE.to_owned()),
            label: identity_template_label.clone(),
        },
    };
    if identity_template_label.is_some() && !matches!(identity, PodIdentity::Template { .. }) {
        warnings.push(
            "identity_template_label only applies to identity templates: ignored with \
             pod_label or pod_annotation"
                .to_owned(),
        );
    }
    let dns_name_templates = match dns_name_templates {
        Some(list) => list.iter().map(|t| t.replace(' ', "")).collect(),
        None => vec![RegistrarConfig::DEFAULT_DNS_NAME_TEMPLATE.to_owned()],
    };
    let leader_election = registrar_leader_election(
        flag(raw.leader_election, false),
        string(raw.leader_election_resource_lock),
        RegistrarConfig::CRD_LEASE_NAME.to_owned(),
    )?;
    Ok(CrdMode {
        identity,
        dns_name_templates,
        context,
        add_svc_dns_name: flag(raw.add_svc_dns_name, true),
        pod_controller: flag(raw.pod_controller, true),
        webhook: RegistrarWebhook {
            enabled: flag(raw.webhook_enabled, false),
            port: raw
                .webhook_port
                .map(|p| p.0)
                .filter(|p| *p != 0)
                .unwrap_or(RegistrarConfig::DEFAULT_WEBHOOK_PORT),
            cert_dir: PathBuf::from(
                string(raw.webhook_cert_dir)
                    .unwrap_or_else(|| RegistrarConfig::DEFAULT_WEBHOOK_CERT_DIR.to_owned()),
            ),
            service_name: string(raw.webhook_service_name)
                .unwrap_or_else(|| RegistrarConfig::DEFAULT_WEBHOOK_SERVICE_NAME.to_owned()),
        },
        metrics_bind_address: metrics(string(raw.metrics_bind_addr)),
        leader_election,
    })
}

fn reconcile_mode(raw: RawReconcile, common: &Common) -> Result<ReconcileMode, ConfigError> {
    let controller_name = string(raw.controller_name)
        .unwrap_or_else(|| RegistrarConfig::DEFAULT_CONTROLLER_NAME.to_owned());
    let leader_election = registrar_leader_election(
        flag(raw.leader_election, false),
        string(raw.leader_election_resource_lock),
        format!("{controller_name}-leader-election"),
    )?;
    Ok(ReconcileMode {
        controller_name,
        add_pod_dns_names: flag(raw.add_pod_dns_names, false),
        cluster_dns_zone: string(raw.cluster_dns_zone)
            .unwrap_or_else(|| RegistrarConfig::DEFAULT_CLUSTER_DNS_ZONE.to_owned()),
        metrics_bind_address: metrics(string(raw.metrics_addr)),
        leader_election,
        pod_label: common.pod_label.clone(),
        pod_annotation: common.pod_annotation.clone(),
    })
}

/// The lock is checked only when leader election is on, as upstream does.
fn registrar_leader_election(
    enabled: bool,
    lock: Option<String>,
    lease_name: String,
) -> Result<LeaderElection, ConfigError> {
    match lock.as_deref() {
        Some("configmaps") if enabled => return Err(ConfigError::ConfigMapsLock),
        Some(other) if enabled && other != "leases" => {
            return Err(ConfigError::RegistrarInvalid(format!(
                "leader_election_resource_lock {other:?} is not supported: use \"leases\""
            )));
        }
        _ => {}
    }
    Ok(LeaderElection::with_defaults(enabled, lease_name))
}

/// Upstream's check for `.Context.` use: spaces removed, then a plain substring search.
fn references_context(template: &str) -> bool {
    template.replace(' ', "").contains("{{.Context.")
}

/// logrus's `ParseLevel` (any case); empty = info.
fn log_level(value: Option<String>) -> Result<LogLevel, ConfigError> {
    let Some(value) = value else {
        return Ok(LogLevel::Info);
    };
    Ok(match value.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => LogLevel::Error,
        "warn" | "warning" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => {
            return Err(ConfigError::RegistrarInvalid(format!(
                "error setting up logging: not a valid logrus Level: {}",
                spire_id::go_fmt::quote(&value)
            )));
        }
    })
}

/// SPIRE's log formats (any case); empty = text.
fn log_format(value: Option<String>) -> Result<LogFormat, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(_) => Err(ConfigError::RegistrarInvalid(format!(
            "error setting up logging: unknown logger format: {}",
            spire_id::go_fmt::quote(value.as_deref().unwrap_or_default())
        ))),
    }
}

/// `""` = the default listener, `"0"` = none.
fn metrics(value: Option<String>) -> Option<String> {
    match value {
        None => Some(RegistrarConfig::DEFAULT_METRICS_BIND_ADDRESS.to_owned()),
        Some(address) => super::bind_address(&address),
    }
}

/// An empty string counts as unset, as Go's zero value does.
fn string(value: Option<HclString>) -> Option<String> {
    value.map(|s| s.0).filter(|s| !s.is_empty())
}

fn flag(value: Option<spire_config::de::LenientBool>, default: bool) -> bool {
    value.map_or(default, |b| b.0)
}

/// The file's top-level attributes and blocks as one JSON object.
fn root(text: &str) -> Result<Value, ConfigError> {
    let document = spire_config::Document::parse(text)
        .map_err(|e| ConfigError::RegistrarDecode(e.to_string()))?;
    // `Document` exposes sections by name only; asking it to allow none makes it list them
    // all, and each is then fetched by name.
    let names = match document.check_sections(&[]) {
        Err(spire_config::ConfigError::UnknownKeys { keys, .. }) => keys,
        _ => Vec::new(),
    };
    let root: Map<String, Value> = names
        .into_iter()
        .filter_map(|name| document.raw(&name).cloned().map(|value| (name, value)))
        .collect();
    Ok(Value::Object(root))
}

#[cfg(test)]
mod tests;
