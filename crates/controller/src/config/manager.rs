//! spire-controller-manager's `ControllerManagerConfig` (`spire.spiffe.io/v1alpha1`): the
//! YAML file `--config` names, resolved with its flags and defaults into [`ManagerConfig`].
//!
//! Decoding is lenient as upstream's is: unknown keys (Istio's `healthProbe.bindAddress`,
//! keys of newer upstream releases) are collected into [`ManagerConfig::ignored_keys`] and
//! otherwise have no effect. The object envelope (`apiVersion`, `kind`, `metadata`) is
//! accepted silently; a foreign `kind` or `apiVersion` is refused. Go's quirks are kept:
//! `ignoreNamespaces` entries are unanchored regular expressions, `ignoreNamespaces: null`
//! ignores nothing, and a `reconcile` block switches off every kind it does not name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use regex::Regex;
use serde_json::Value;
use spire_id::TrustDomain;

use super::cli::zap_level_name;
use super::{
    ConfigError, LeaderElection, LogFormat, LogLevel, ManagerArgs, ZapEncoder, expand_env,
};

mod raw;

use raw::{RawManager, RawReconcile};

/// The resolved spire-controller-manager settings.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// `clusterName` (required).
    pub cluster_name: String,
    /// `clusterDomain`; `None` = detect it from the CNAME of `kubernetes.default.svc`.
    pub cluster_domain: Option<String>,
    /// `trustDomain` (required).
    pub trust_domain: TrustDomain,
    /// `ignoreNamespaces`, compiled: a namespace is ignored when any expression matches
    /// anywhere in its name ([`Self::is_namespace_ignored`]).
    pub ignore_namespaces: Vec<Regex>,
    /// `validatingWebhookConfigurationName`.
    pub validating_webhook_configuration_name: String,
    /// `gcInterval`: how long the reconcilers idle before a full pass.
    pub gc_interval: Duration,
    /// `spireServerSocketPath` (or the deprecated `--spire-api-socket`).
    pub spire_server_socket_path: PathBuf,
    /// The log level: `--zap-log-level`, else `logLevel`, else debug under an explicit
    /// `--zap-devel`, else info.
    pub log_level: LogLevel,
    /// The log encoding: `--zap-encoder`, else `logEncoding`, else JSON under
    /// `--zap-devel=false`, else text (`console`).
    pub log_format: LogFormat,
    /// `className`; empty = none. A custom resource is handled when its class equals this, or
    /// when it has none and [`Self::watch_classless`] is set.
    pub class_name: String,
    /// `watchClassless`.
    pub watch_classless: bool,
    /// `filterByClassName`: cache only ClusterSPIFFEIDs labelled
    /// `spire.spiffe.io/class-name=<className>`.
    pub filter_by_class_name: bool,
    /// `clusterSPIFFEIDLabelSelector`: cache only ClusterSPIFFEIDs matching it.
    pub cluster_spiffe_id_label_selector: Option<LabelSelector>,
    /// `parentIDTemplate` (Go text/template source); `None` = the k8s_psat agent ID.
    pub parent_id_template: Option<String>,
    /// Which kinds are reconciled.
    pub reconcile: Reconcile,
    /// `entryIDPrefix` with its trailing dot (`scm` → `scm.`).
    pub entry_id_prefix: Option<String>,
    /// `entryIDPrefixCleanup` with its trailing dot; `Some("")` = delete unprefixed entries.
    pub entry_id_prefix_cleanup: Option<String>,
    /// `staticManifestPath`: read the custom resources from YAML files there instead of the
    /// cluster (no webhook, no leader election, no ClusterSPIFFEIDs).
    pub static_manifest_path: Option<PathBuf>,
    /// `expandEnvStaticManifests`: expand `$VAR`s in those files.
    pub expand_env_static_manifests: bool,
    /// `enableEntryRenderCache`.
    pub enable_entry_render_cache: bool,
    /// `entryRenderCacheSize`.
    pub entry_render_cache_size: usize,
    /// `grpc.maxCallRecvMsgSize`: the largest SPIRE Server API response accepted, in bytes.
    pub grpc_max_call_recv_msg_size: usize,
    /// `metrics.bindAddress` (Go `host:port`, `:8080` = every interface); `None` = off (`"0"`).
    pub metrics_bind_address: Option<String>,
    /// `health.*`.
    pub health: Health,
    /// `leaderElection.*`.
    pub leader_election: LeaderElection,
    /// `webhook.*` and `ENABLE_WEBHOOKS`.
    pub webhook: Webhook,
    /// `syncPeriod`: the informers' full resync period (`None` = controller-runtime's).
    pub sync_period: Option<Duration>,
    /// `gracefulShutDown`: how long runnables get to stop (`None` = controller-runtime's).
    pub graceful_shutdown_timeout: Option<Duration>,
    /// `cacheNamespace` / `cacheNamespaces`: the namespaces the informers are limited to
    /// (empty = all).
    pub cache_namespaces: BTreeMap<String, CacheNamespace>,
    /// `controller.*`.
    pub controller: ControllerOptions,
    /// Keys the file holds that nothing reads (dotted paths, leaves), for a warning.
    pub ignored_keys: Vec<String>,
    /// Other things the operator should hear about once logging is up.
    pub warnings: Vec<String>,
}

/// `reconcile`: which kinds of custom resource are synced to SPIRE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconcile {
    /// `clusterSPIFFEIDs` (pods and endpoints are watched only with it).
    pub cluster_spiffe_ids: bool,
    /// `clusterFederatedTrustDomains`.
    pub cluster_federated_trust_domains: bool,
    /// `clusterStaticEntries` (Istio's manifests install no ClusterStaticEntry CRD).
    pub cluster_static_entries: bool,
}

/// `health`: the probe listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// `healthProbeBindAddress`; `None` (unset, `""` or `"0"`) = no probe listener.
    pub probe_bind_address: Option<String>,
    /// `readinessEndpointName` (`/readyz`).
    pub readiness_endpoint: String,
    /// `livenessEndpointName` (`/healthz`).
    pub liveness_endpoint: String,
}

/// The validating webhook's server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// False when `ENABLE_WEBHOOKS=false` or in static-manifest mode.
    pub enabled: bool,
    /// `webhook.port` (9443).
    pub port: u16,
    /// `webhook.host`; empty = every interface.
    pub host: String,
}

/// One `cacheNamespaces` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheNamespace {
    /// `labelSelectors`: equality requirements on labels.
    pub label_selectors: BTreeMap<String, String>,
    /// `fieldSelectors`: equality requirements on fields.
    pub field_selectors: BTreeMap<String, String>,
}

/// `controller`: options for every controller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerOptions {
    /// `groupKindConcurrency`: concurrent reconciles per `Kind.group`.
    pub group_kind_concurrency: BTreeMap<String, u32>,
    /// `cacheSyncTimeout` (`None` = controller-runtime's 2 minutes).
    pub cache_sync_timeout: Option<Duration>,
    /// `recoverPanic`.
    pub recover_panic: Option<bool>,
}

// === impl ManagerConfig ===

impl ManagerConfig {
    /// The `apiVersion` the file may declare.
    pub const API_VERSION: &'static str = "spire.spiffe.io/v1alpha1";
    /// The `kind` the file may declare.
    pub const KIND: &'static str = "ControllerManagerConfig";
    /// `ignoreNamespaces` when the file does not set it.
    pub const DEFAULT_IGNORE_NAMESPACES: [&'static str; 3] =
        ["kube-system", "kube-public", "spire-system"];
    /// `validatingWebhookConfigurationName` when the file does not set it.
    pub const DEFAULT_VALIDATING_WEBHOOK_CONFIGURATION_NAME: &'static str =
        "spire-controller-manager-webhook";
    /// `gcInterval` when the file does not set it.
    pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(10);
    /// `spireServerSocketPath` when neither the file nor the flag sets it.
    pub const DEFAULT_SPIRE_SERVER_SOCKET_PATH: &'static str = "/spire-server/api.sock";
    /// controller-runtime's metrics listener default.
    pub const DEFAULT_METRICS_BIND_ADDRESS: &'static str = ":8080";
    /// controller-runtime's readiness path.
    pub const DEFAULT_READINESS_ENDPOINT: &'static str = "/readyz";
    /// controller-runtime's liveness path.
    pub const DEFAULT_LIVENESS_ENDPOINT: &'static str = "/healthz";
    /// controller-runtime's webhook port.
    pub const DEFAULT_WEBHOOK_PORT: u16 = 9443;
    /// `entryRenderCacheSize` when the file does not set it.
    pub const DEFAULT_ENTRY_RENDER_CACHE_SIZE: usize = 300_000;
    /// gRPC-Go's default receive limit, 4 MiB.
    pub const DEFAULT_GRPC_MAX_CALL_RECV_MSG_SIZE: usize = 4 << 20;
    /// The environment variable that, set to exactly `false`, disables the webhook.
    pub const ENABLE_WEBHOOKS_ENV: &'static str = "ENABLE_WEBHOOKS";

    /// Reads `--config` (expanding `$VAR`s first under `--expand-env`) and resolves it with
    /// the flags. Without `--config` only defaults apply, so the required keys are missing.
    pub fn load(
        args: &ManagerArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(path) = &args.config else {
            return resolve(RawManager::default(), Vec::new(), args, &env);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ManagerRead {
            path: path.clone(),
            source,
        })?;
        let text = if args.expand_env {
            expand_env(&text, &env)
        } else {
            text
        };
        Self::parse(&text, args, env)
    }

    /// Parses YAML text (already expanded, if it is to be) and resolves it with the flags;
    /// `env` supplies `ENABLE_WEBHOOKS`.
    pub fn parse(
        yaml: &str,
        args: &ManagerArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (raw, ignored) = decode(yaml)?;
        resolve(raw, ignored, args, &env)
    }

    /// Whether `namespace` matches an `ignoreNamespaces` expression (anywhere in the name).
    pub fn is_namespace_ignored(&self, namespace: &str) -> bool {
        self.ignore_namespaces
            .iter()
            .any(|re| re.is_match(namespace))
    }
}

/// YAML → the raw document and the paths of the keys it ignored.
fn decode(yaml: &str) -> Result<(RawManager, Vec<String>), ConfigError> {
    let value: Value = if yaml.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(yaml).map_err(|e| ConfigError::ManagerDecode(e.to_string()))?
    };
    let value = match value {
        Value::Null => Value::Object(Default::default()),
        object @ Value::Object(_) => object,
        _ => {
            return Err(ConfigError::ManagerDecode(
                "the document must be a mapping".to_owned(),
            ));
        }
    };
    let (raw, ignored): (RawManager, _) =
        super::decode_lenient(&value).map_err(ConfigError::ManagerDecode)?;
    if let Some(kind) = raw.kind.as_deref().filter(|k| *k != ManagerConfig::KIND) {
        return Err(ConfigError::ManagerDecode(format!(
            "kind {kind:?} is not {}",
            ManagerConfig::KIND
        )));
    }
    if let Some(version) = raw
        .api_version
        .as_deref()
        .filter(|v| *v != ManagerConfig::API_VERSION)
    {
        return Err(ConfigError::ManagerDecode(format!(
            "apiVersion {version:?} is not {}",
            ManagerConfig::API_VERSION
        )));
    }
    Ok((raw, ignored))
}

/// Defaults, flags and upstream's checks, in upstream's order.
fn resolve(
    raw: RawManager,
    ignored_keys: Vec<String>,
    args: &ManagerArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ManagerConfig, ConfigError> {
    let mut warnings = Vec::new();
    let cache_namespaces = cache_namespaces(raw.cache_namespace, raw.cache_namespaces)?;

    let ignore_namespaces = match raw.ignore_namespaces {
        None => ManagerConfig::DEFAULT_IGNORE_NAMESPACES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Some(list) => list,
    };
    let ignore_namespaces = ignore_namespaces
        .into_iter()
        .map(|pattern| {
            Regex::new(&pattern)
                .map_err(|source| ConfigError::IgnoreNamespacesRegex { pattern, source })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let configured_socket = non_empty(raw.spire_server_socket_path).map(PathBuf::from);
    let flag_socket = args
        .spire_api_socket
        .clone()
        .filter(|p| !p.as_os_str().is_empty());
    let spire_server_socket_path = match (configured_socket, flag_socket) {
        (Some(path), None) => path,
        (None, None) => PathBuf::from(ManagerConfig::DEFAULT_SPIRE_SERVER_SOCKET_PATH),
        (None, Some(path)) => {
            warnings.push(
                "The spire-api-socket flag is deprecated and will be removed in a future \
                 release; use the configuration file instead"
                    .to_owned(),
            );
            path
        }
        (Some(path), Some(_)) => {
            warnings.push(
                "Ignoring deprecated spire-api-socket flag which will be removed in a future \
                 release"
                    .to_owned(),
            );
            path
        }
    };

    let static_manifest_path = non_empty(raw.static_manifest_path).map(PathBuf::from);
    let reconcile = reconcile(raw.reconcile, static_manifest_path.is_some(), &mut warnings);

    let entry_id_prefix = non_empty(raw.entry_id_prefix).map(with_dot);
    let entry_id_prefix_cleanup = raw.entry_id_prefix_cleanup.map(with_dot);
    if entry_id_prefix.is_some() && entry_id_prefix == entry_id_prefix_cleanup {
        return Err(ConfigError::EntryIdPrefixCleanupIsPrefix);
    }

    let trust_domain = non_empty(raw.trust_domain).ok_or(ConfigError::MissingTrustDomain)?;
    let cluster_name = non_empty(raw.cluster_name).ok_or(ConfigError::MissingClusterName)?;
    let validating_webhook_configuration_name = raw
        .validating_webhook_configuration_name
        .unwrap_or_else(|| ManagerConfig::DEFAULT_VALIDATING_WEBHOOK_CONFIGURATION_NAME.to_owned());
    if validating_webhook_configuration_name.is_empty() {
        return Err(ConfigError::MissingWebhookConfigurationName);
    }
    let raw_webhook = raw.webhook.unwrap_or_default();
    if let Some(dir) = non_empty(raw_webhook.cert_dir) {
        warnings.push(format!(
            "certDir configuration is ignored (certDir {dir:?})"
        ));
    }
    let trust_domain =
        TrustDomain::parse(&trust_domain).map_err(|source| ConfigError::InvalidTrustDomain {
            name: trust_domain.clone(),
            source,
        })?;

    let (log_level, log_format) = logging(args, raw.log_level, raw.log_encoding)?;

    let class_name = raw.class_name.unwrap_or_default();
    let filter_by_class_name = raw.filter_by_class_name.unwrap_or(false);
    if filter_by_class_name && class_name.is_empty() {
        return Err(ConfigError::ManagerInvalid {
            key: "filterByClassName",
            message: "requires className to be set".to_owned(),
        });
    }

    let leader_election = leader_election(
        raw.leader_election.unwrap_or_default(),
        static_manifest_path.is_some(),
        &mut warnings,
    )?;

    let metrics_bind_address = match raw.metrics.unwrap_or_default().bind_address.as_deref() {
        None | Some("") => Some(ManagerConfig::DEFAULT_METRICS_BIND_ADDRESS.to_owned()),
        Some(address) => super::bind_address(address),
    };
    let raw_health = raw.health.unwrap_or_default();
    let health = Health {
        probe_bind_address: non_empty(raw_health.health_probe_bind_address)
            .and_then(|a| super::bind_address(&a)),
        readiness_endpoint: non_empty(raw_health.readiness_endpoint_name)
            .unwrap_or_else(|| ManagerConfig::DEFAULT_READINESS_ENDPOINT.to_owned()),
        liveness_endpoint: non_empty(raw_health.liveness_endpoint_name)
            .unwrap_or_else(|| ManagerConfig::DEFAULT_LIVENESS_ENDPOINT.to_owned()),
    };
    let webhook = Webhook {
        enabled: env(ManagerConfig::ENABLE_WEBHOOKS_ENV).as_deref() != Some("false")
            && static_manifest_path.is_none(),
        port: raw_webhook
            .port
            .unwrap_or(ManagerConfig::DEFAULT_WEBHOOK_PORT),
        host: raw_webhook.host.unwrap_or_default(),
    };
    let raw_controller = raw.controller.unwrap_or_default();

    Ok(ManagerConfig {
        cluster_name,
        cluster_domain: non_empty(raw.cluster_domain),
        trust_domain,
        ignore_namespaces,
        validating_webhook_configuration_name,
        gc_interval: raw
            .gc_interval
            .map_or(ManagerConfig::DEFAULT_GC_INTERVAL, |d| d.0),
        spire_server_socket_path,
        log_level,
        log_format,
        class_name,
        watch_classless: raw.watch_classless.unwrap_or(false),
        filter_by_class_name,
        cluster_spiffe_id_label_selector: raw.cluster_spiffe_id_label_selector,
        parent_id_template: non_empty(raw.parent_id_template),
        reconcile,
        entry_id_prefix,
        entry_id_prefix_cleanup,
        static_manifest_path,
        expand_env_static_manifests: raw.expand_env_static_manifests.unwrap_or(false),
        enable_entry_render_cache: raw.enable_entry_render_cache.unwrap_or(false),
        entry_render_cache_size: raw
            .entry_render_cache_size
            .filter(|n| *n > 0)
            .unwrap_or(ManagerConfig::DEFAULT_ENTRY_RENDER_CACHE_SIZE),
        grpc_max_call_recv_msg_size: raw
            .grpc
            .and_then(|g| g.max_call_recv_msg_size)
            .filter(|n| *n > 0)
            .unwrap_or(ManagerConfig::DEFAULT_GRPC_MAX_CALL_RECV_MSG_SIZE),
        metrics_bind_address,
        health,
        leader_election,
        webhook,
        sync_period: raw.sync_period.map(|d| d.0),
        graceful_shutdown_timeout: raw.graceful_shutdown.map(|d| d.0),
        cache_namespaces,
        controller: ControllerOptions {
            group_kind_concurrency: raw_controller.group_kind_concurrency.unwrap_or_default(),
            cache_sync_timeout: raw_controller.cache_sync_timeout.map(|d| d.0),
            recover_panic: raw_controller.recover_panic,
        },
        ignored_keys,
        warnings,
    })
}

/// The zap flags win over `logLevel`/`logEncoding`; an explicit `--zap-devel` picks zap's
/// development (debug, console) or production (info, JSON) defaults for what neither sets.
fn logging(
    args: &ManagerArgs,
    level: Option<String>,
    encoding: Option<String>,
) -> Result<(LogLevel, LogFormat), ConfigError> {
    let log_level = match (args.zap.log_level, non_empty(level)) {
        (Some(level), _) => level,
        (None, Some(name)) => zap_level_name(&name).ok_or_else(|| ConfigError::ManagerInvalid {
            key: "logLevel",
            message: format!("{name:?}: supported values are info, error, warn and debug"),
        })?,
        (None, None) if args.zap.devel == Some(true) => LogLevel::Debug,
        (None, None) => LogLevel::Info,
    };
    let log_format = match (args.zap.encoder, non_empty(encoding)) {
        (Some(ZapEncoder::Json), _) => LogFormat::Json,
        (Some(ZapEncoder::Console), _) => LogFormat::Text,
        (None, Some(name)) => match name.to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "console" => LogFormat::Text,
            _ => {
                return Err(ConfigError::ManagerInvalid {
                    key: "logEncoding",
                    message: format!("{name:?}: supported values are console and json"),
                });
            }
        },
        (None, None) if args.zap.devel == Some(false) => LogFormat::Json,
        (None, None) => LogFormat::Text,
    };
    Ok((log_level, log_format))
}

/// Absent block: everything on (ClusterSPIFFEIDs off in static mode). Present block: exactly
/// what it says, absent keys off, as Go's zero values make them.
fn reconcile(
    raw: Option<RawReconcile>,
    static_mode: bool,
    warnings: &mut Vec<String>,
) -> Reconcile {
    let mut reconcile = match raw {
        None => Reconcile {
            cluster_spiffe_ids: !static_mode,
            cluster_federated_trust_domains: true,
            cluster_static_entries: true,
        },
        Some(block) => {
            let missing: Vec<&str> = [
                ("clusterSPIFFEIDs", block.cluster_spiffe_ids),
                (
                    "clusterFederatedTrustDomains",
                    block.cluster_federated_trust_domains,
                ),
                ("clusterStaticEntries", block.cluster_static_entries),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.is_none().then_some(key))
            .collect();
            if !missing.is_empty() {
                warnings.push(format!(
                    "the reconcile block does not set {}: not reconciled (a reconcile block \
                     reconciles only the kinds it sets to true)",
                    missing.join(", ")
                ));
            }
            Reconcile {
                cluster_spiffe_ids: block.cluster_spiffe_ids.unwrap_or(false),
                cluster_federated_trust_domains: block
                    .cluster_federated_trust_domains
                    .unwrap_or(false),
                cluster_static_entries: block.cluster_static_entries.unwrap_or(false),
            }
        }
    };
    if static_mode && reconcile.cluster_spiffe_ids {
        warnings.push(
            "ClusterSPIFFEIDs are not supported with staticManifestPath: \
             reconcile.clusterSPIFFEIDs is ignored"
                .to_owned(),
        );
        reconcile.cluster_spiffe_ids = false;
    }
    reconcile
}

fn leader_election(
    raw: raw::RawLeaderElection,
    static_mode: bool,
    warnings: &mut Vec<String>,
) -> Result<LeaderElection, ConfigError> {
    let mut enabled = raw.leader_elect.unwrap_or(false);
    if enabled && static_mode {
        warnings.push(
            "leader election is not used with staticManifestPath: leaderElection.leaderElect \
             is ignored"
                .to_owned(),
        );
        enabled = false;
    }
    let lock = non_empty(raw.resource_lock).unwrap_or_else(|| "leases".to_owned());
    if enabled && lock != "leases" {
        return Err(ConfigError::ManagerInvalid {
            key: "leaderElection.resourceLock",
            message: format!("{lock:?}: only \"leases\" is supported"),
        });
    }
    let lease_name = non_empty(raw.resource_name).unwrap_or_default();
    if enabled && lease_name.is_empty() {
        return Err(ConfigError::MissingLeaderElectionId);
    }
    let positive = |d: Option<raw::KubeDuration>, default| {
        d.map(|d| d.0).filter(|d| !d.is_zero()).unwrap_or(default)
    };
    Ok(LeaderElection {
        enabled,
        lease_name,
        lease_namespace: non_empty(raw.resource_namespace),
        lease_duration: positive(raw.lease_duration, LeaderElection::DEFAULT_LEASE_DURATION),
        renew_deadline: positive(raw.renew_deadline, LeaderElection::DEFAULT_RENEW_DEADLINE),
        retry_period: positive(raw.retry_period, LeaderElection::DEFAULT_RETRY_PERIOD),
    })
}

fn cache_namespaces(
    single: Option<String>,
    many: Option<BTreeMap<String, Option<raw::RawNamespaceConfig>>>,
) -> Result<BTreeMap<String, CacheNamespace>, ConfigError> {
    let single = non_empty(single);
    let many = many.unwrap_or_default();
    match single {
        Some(_) if !many.is_empty() => Err(ConfigError::CacheNamespaceConflict),
        Some(namespace) => Ok(BTreeMap::from([(namespace, CacheNamespace::default())])),
        None => Ok(many
            .into_iter()
            .map(|(namespace, config)| {
                let config = config.unwrap_or_default();
                let namespace_config = CacheNamespace {
                    label_selectors: config.label_selectors.unwrap_or_default(),
                    field_selectors: config.field_selectors.unwrap_or_default(),
                };
                (namespace, namespace_config)
            })
            .collect()),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// upstream's `addDotSuffix`: a non-empty prefix gets a trailing dot unless it has one.
fn with_dot(prefix: String) -> String {
    if prefix.is_empty() || prefix.ends_with('.') {
        prefix
    } else {
        prefix + "."
    }
}

#[cfg(test)]
mod tests;
