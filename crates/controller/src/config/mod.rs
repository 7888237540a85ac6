//! The two front doors' configuration: spire-controller-manager's `ControllerManagerConfig`
//! YAML with its flags ([`manager`]), and the legacy k8s-workload-registrar's HCL file with its
//! `-config` flag ([`registrar`]).
//!
//! Both decoders are lenient as their upstreams are: unknown keys do not stop the process, but
//! they are collected (`ignored_keys`) so the binary can log them at `warn` once its logger is
//! up; other things worth telling the operator land in `warnings`. Sourcing (files, flags,
//! environment) is split from parsing: every `parse` function takes text and an environment
//! lookup, every `load` function adds the file and the flags.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;
use spire_id::IdError;

pub mod cli;
mod expand;
pub mod manager;
mod namespace;
pub mod registrar;

pub use cli::{ManagerArgs, RegistrarArgs, ZapArgs, ZapEncoder};
pub use expand::expand_env;
pub use manager::ManagerConfig;
pub use namespace::{POD_NAMESPACE_ENV, SERVICE_ACCOUNT_NAMESPACE_FILE, own_namespace};
pub use registrar::RegistrarConfig;

/// Why a configuration was refused. Messages are upstream's where upstream has one (the
/// registrar's common-stage errors carry its `error parsing common config: ` prefix).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The controller-manager's `--config` file could not be read.
    #[error("unable to load the config file: could not read file at {}: {source}", path.display())]
    ManagerRead {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The controller-manager's YAML is malformed or a value has the wrong type.
    #[error("unable to load the config file: could not decode file into runtime.Object: {0}")]
    ManagerDecode(String),
    /// An `ignoreNamespaces` entry is not a valid regular expression.
    #[error("unable to compile ignore namespaces regex {pattern:?}: {source}")]
    IgnoreNamespacesRegex {
        /// The offending entry.
        pattern: String,
        /// The compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// `trustDomain` is missing or empty.
    #[error("trust domain is required configuration")]
    MissingTrustDomain,
    /// `clusterName` is missing or empty.
    #[error("cluster name is required configuration")]
    MissingClusterName,
    /// `validatingWebhookConfigurationName` was set to the empty string.
    #[error("validating webhook configuration name is required configuration")]
    MissingWebhookConfigurationName,
    /// `trustDomain` is not a valid trust domain name.
    #[error("invalid trust domain name {name:?}: {source}")]
    InvalidTrustDomain {
        /// The configured value.
        name: String,
        /// Why it is invalid.
        #[source]
        source: IdError,
    },
    /// `entryIDPrefixCleanup` names the prefix the controller itself uses.
    #[error("if entryIDPrefixCleanup is specified, it can not be the same value as entryIDPrefix")]
    EntryIdPrefixCleanupIsPrefix,
    /// Both `cacheNamespace` and `cacheNamespaces` are set.
    #[error(
        "unable to load the config file: cacheNamespace or cacheNamespaces can be used, but not both"
    )]
    CacheNamespaceConflict,
    /// Leader election is on but `leaderElection.resourceName` is empty.
    #[error("LeaderElectionID must be configured")]
    MissingLeaderElectionId,
    /// A controller-manager setting or flag has a value outside its domain.
    #[error("invalid {key}: {message}")]
    ManagerInvalid {
        /// The key or flag (`logLevel`, `--zap-log-level`, …).
        key: &'static str,
        /// What is wrong.
        message: String,
    },

    /// The registrar's `-config` file could not be read.
    #[error("unable to load configuration: open {}: {}", path.display(), spire_cli::go_errno_text(source))]
    RegistrarRead {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The registrar's HCL is malformed or a value has the wrong type.
    #[error("error parsing common config: unable to decode configuration: {0}")]
    RegistrarDecode(String),
    /// Neither `server_address` nor `server_socket_path` is set.
    #[error("error parsing common config: server_address or server_socket_path must be specified")]
    MissingServerAddress,
    /// `server_address` is a TCP address: spire-rs only talks to the admin socket.
    #[error(
        "error parsing common config: server_address {address:?} is not a unix:// address; this \
         registrar talks to spire-server only through its admin Unix socket (no TCP, no \
         agent_socket_path credentials): set server_socket_path to the server's socket_path"
    )]
    TcpServerAddress {
        /// The configured address.
        address: String,
    },
    /// `trust_domain` is missing or empty.
    #[error("error parsing common config: trust_domain must be specified")]
    RegistrarMissingTrustDomain,
    /// `trust_domain` is not a valid trust domain name.
    #[error("error parsing common config: malformed trust domain: {0}")]
    MalformedTrustDomain(#[source] IdError),
    /// `cluster` is missing or empty.
    #[error("error parsing common config: cluster must be specified")]
    MissingCluster,
    /// Both `pod_label` and `pod_annotation` are set.
    #[error(
        "error parsing common config: workload registration mode specification is incorrect, \
         can't specify both pod_label and pod_annotation"
    )]
    PodLabelAndAnnotation,
    /// `mode` is missing or empty.
    #[error(
        "error parsing common config: mode must be specified, valid values are \"crd\" and \"reconcile\""
    )]
    MissingMode,
    /// `mode` is neither `crd` nor `reconcile`.
    #[error(
        "error parsing common config: invalid mode {}, valid values are \"crd\" and \"reconcile\"",
        spire_id::go_fmt::quote(.0)
    )]
    InvalidMode(String),
    /// `identity_template` is combined with `pod_label` or `pod_annotation`.
    #[error(
        "workload registration configuration is incorrect, can only use one of identity_template, \
         pod_annotation, or pod_label"
    )]
    IdentityTemplateNotExclusive,
    /// `identity_template` uses `.Context.` but no `context` is configured.
    #[error("identity_template references non-existing context")]
    IdentityTemplateContext,
    /// A `dns_name_templates` entry uses `.Context.` but no `context` is configured.
    #[error("dns_name_template references non-existing context")]
    DnsNameTemplateContext,
    /// Leader election with the `configmaps` lock, which upstream stopped supporting.
    #[error("the \"configmaps\" leader election resource lock type is no longer supported")]
    ConfigMapsLock,
    /// A registrar setting has a value outside its domain (`log_level`, `log_format`, …).
    #[error("{0}")]
    RegistrarInvalid(String),

    /// Our own namespace could not be determined.
    #[error(
        "unable to get MY_POD_NAMESPACE; ensure downward API is configured for this pod: {source}"
    )]
    OwnNamespace {
        /// Reading the service-account namespace file failed.
        #[source]
        source: std::io::Error,
    },
}

/// How verbose the log is, in `tracing`'s terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// More verbose than debug (zap levels below -1).
    Trace,
    /// Debug.
    Debug,
    /// Info (both front doors' default).
    Info,
    /// Warn.
    Warn,
    /// Error (zap's and logrus's panic/fatal levels too).
    Error,
}

/// How log lines are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines (zap `console`, logrus `text`).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Leader election, as controller-runtime runs it (defaults 15 s / 10 s / 2 s, `leases`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Whether to elect a leader at all (default false).
    pub enabled: bool,
    /// The Lease object's name (the election ID).
    pub lease_name: String,
    /// The Lease's namespace; `None` = our own namespace ([`own_namespace`]).
    pub lease_namespace: Option<String>,
    /// How long a lease is valid.
    pub lease_duration: std::time::Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: std::time::Duration,
    /// How often candidates retry.
    pub retry_period: std::time::Duration,
}

// === impl LogLevel ===

impl LogLevel {
    /// The `tracing` filter directive (`"debug"`, …), also what `spire_cli::init_logging`
    /// accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

// === impl LogFormat ===

impl LogFormat {
    /// `"text"` or `"json"`, as `spire_cli::init_logging` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

// === impl LeaderElection ===

impl LeaderElection {
    /// controller-runtime's default lease duration.
    pub const DEFAULT_LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(15);
    /// controller-runtime's default renew deadline.
    pub const DEFAULT_RENEW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
    /// controller-runtime's default retry period.
    pub const DEFAULT_RETRY_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

    /// Leader election as configured by an on/off switch and a lease name, with
    /// controller-runtime's timings, in our own namespace.
    pub fn with_defaults(enabled: bool, lease_name: impl Into<String>) -> Self {
        Self {
            enabled,
            lease_name: lease_name.into(),
            lease_namespace: None,
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            renew_deadline: Self::DEFAULT_RENEW_DEADLINE,
            retry_period: Self::DEFAULT_RETRY_PERIOD,
        }
    }
}

/// `"0"` switches a controller-runtime listener off; `""` means "not configured".
pub(crate) fn bind_address(value: &str) -> Option<String> {
    match value {
        "0" => None,
        other => Some(other.to_owned()),
    }
}

/// Deserializes `value` as `T`, ignoring keys `T` does not know, and returns those keys as
/// dotted paths down to their leaves (`healthProbe.bindAddress`, not `healthProbe`).
pub(crate) fn decode_lenient<T: DeserializeOwned>(
    value: &Value,
) -> Result<(T, Vec<String>), String> {
    // `spire_config::typed` is strict, but its refusal lists every unknown key; a second,
    // plain pass (serde ignores unknown fields) then yields the value.
    let unknown = match spire_config::typed::<T>("", value.clone()) {
        Ok(parsed) => return Ok((parsed, Vec::new())),
        Err(spire_config::ConfigError::UnknownKeys { keys, .. }) => keys,
        Err(spire_config::ConfigError::Invalid { message, .. }) => return Err(message),
        Err(other) => return Err(other.to_string()),
    };
    let parsed = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let mut ignored = Vec::new();
    for key in unknown {
        // Paths look like `.a.?.b`: an empty section name, then `?` for every `Option`.
        let segments: Vec<&str> = key
            .split('.')
            .filter(|s| !s.is_empty() && *s != "?")
            .collect();
        let prefix = segments.join(".");
        match segments
            .iter()
            .try_fold(value, |node, segment| node.get(*segment))
        {
            Some(node) => leaf_paths(&prefix, node, &mut ignored),
            // A key holding a dot cannot be walked to; name it as serde saw it.
            None => ignored.push(prefix),
        }
    }
    Ok((parsed, ignored))
}

fn leaf_paths(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaf_paths(&format!("{prefix}.{key}"), child, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}
