//! `WorkloadAttestor "k8s"` plugin data → settings, with SPIRE's defaults and messages.
//!
//! Every key of SPIRE's plugin is known; any other key is refused by name (SPIRE reports
//! unused keys). Values are lenient as in HCL v1: numbers and booleans may be quoted, durations
//! are Go strings. Features spire-rs does not have are refused by name, never accepted and
//! ignored: `experimental.sigstore` and the legacy container locator
//! (`use_new_container_locator = false`).
//!
//! `enable_namespace_labels` adds `ns-label:<key>:<value>` selectors read from the apiserver
//! with the agent's in-cluster credentials (the service account needs `get` on
//! `namespaces`); see [`super::namespaces`] for the caching and failure rules.
//!
//! One key is a spire-rs extension that SPIRE does not have: `max_pod_list_bytes`, the
//! largest kubelet `/pods` body accepted (default 64 MiB, at least 1 MiB). spire-rs caps the
//! body so a misbehaving endpoint cannot exhaust the agent's memory; this key lets operators
//! of nodes with unusually large pod objects raise the cap. A SPIRE agent refuses the key as
//! unknown, so configurations using it are spire-rs only.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use spire_config::de::{GoDuration, Lenient, LenientBool};

use crate::{Error, Result};

/// SPIRE's default `max_poll_attempts`.
pub const DEFAULT_MAX_POLL_ATTEMPTS: u32 = 60;
/// SPIRE's default `poll_retry_interval`.
pub const DEFAULT_POLL_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// SPIRE's default `reload_interval`.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// SPIRE's default `kubelet_secure_port`.
pub const DEFAULT_SECURE_PORT: u16 = 10250;
/// The service account CA, SPIRE's default `kubelet_ca_path`.
pub const DEFAULT_KUBELET_CA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// The service account token, SPIRE's default `token_path`.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The environment variable holding the node name unless `node_name_env` names another.
pub const DEFAULT_NODE_NAME_ENV: &str = "MY_NODE_NAME";
/// The least `max_pod_list_bytes` accepted (1 MiB): a node's pod list is larger than that
/// long before it is full, so a smaller cap only breaks attestation.
pub const MIN_MAX_POD_LIST_BYTES: usize = 1024 * 1024;

/// The `k8s` attestor's settings, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sConfig {
    /// Which kubelet port to call.
    pub port: KubeletPort,
    /// How to authenticate on the secure port ([`KubeletCredentials::Anonymous`] on the
    /// read-only port).
    pub credentials: KubeletCredentials,
    /// `skip_kubelet_verification`: do not verify the kubelet's serving certificate.
    pub skip_kubelet_verification: bool,
    /// `kubelet_ca_path`: the roots the kubelet's certificate must chain to.
    pub kubelet_ca_path: PathBuf,
    /// `node_name`: the kubelet host; wins over the environment.
    pub node_name: Option<String>,
    /// `node_name_env`: the environment variable holding the node name (no fallback to
    /// [`DEFAULT_NODE_NAME_ENV`] when set).
    pub node_name_env: Option<String>,
    /// `max_poll_attempts` (≤ 0 ⇒ 60).
    pub max_poll_attempts: u32,
    /// `poll_retry_interval` (≤ 0 ⇒ 500 ms): the least time between kubelet requests, and
    /// how long a fetched pod list is reused.
    pub poll_retry_interval: Duration,
    /// `reload_interval` (≤ 0 ⇒ 1 m): how often the CA, token and client certificate are
    /// read again.
    pub reload_interval: Duration,
    /// `disable_container_selectors`: pod selectors only; a known pod whose container is
    /// not (yet) in the pod list still attests.
    pub disable_container_selectors: bool,
    /// `verbose_container_locator_logs`: log every cgroup path and mount root examined.
    pub verbose_container_locator_logs: bool,
    /// `enable_namespace_labels`: add `ns-label:<key>:<value>` selectors for the labels of
    /// the workload pod's namespace, read from the apiserver.
    pub enable_namespace_labels: bool,
    /// `max_pod_list_bytes` (spire-rs extension, ≥ [`MIN_MAX_POD_LIST_BYTES`]): the largest
    /// `/pods` body accepted; `None` keeps the host default
    /// ([`K8sOptions::max_body_bytes`](super::K8sOptions::max_body_bytes), 64 MiB).
    pub max_pod_list_bytes: Option<usize>,
}

/// The kubelet port the attestor calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeletPort {
    /// `https://<node name or 127.0.0.1>:<port>` (default 10250).
    Secure(u16),
    /// `http://127.0.0.1:<port>`, no authentication (`kubelet_read_only_port`).
    ReadOnly(u16),
}

/// How the attestor authenticates to the kubelet's secure port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeletCredentials {
    /// No credentials (`use_anonymous_authentication`, or the read-only port).
    Anonymous,
    /// A client certificate (`certificate_path` + `private_key_path`).
    ClientCert {
        /// `certificate_path` (PEM chain, leaf first).
        certificate_path: PathBuf,
        /// `private_key_path` (PEM).
        private_key_path: PathBuf,
    },
    /// `Authorization: Bearer` with the whitespace-trimmed content of `token_path`.
    Token(PathBuf),
}

#[derive(Deserialize)]
struct Raw {
    kubelet_read_only_port: Option<Lenient<i64>>,
    kubelet_secure_port: Option<Lenient<i64>>,
    max_poll_attempts: Option<Lenient<i64>>,
    poll_retry_interval: Option<String>,
    kubelet_ca_path: Option<String>,
    skip_kubelet_verification: Option<LenientBool>,
    token_path: Option<String>,
    certificate_path: Option<String>,
    private_key_path: Option<String>,
    use_anonymous_authentication: Option<LenientBool>,
    node_name_env: Option<String>,
    node_name: Option<String>,
    reload_interval: Option<String>,
    disable_container_selectors: Option<LenientBool>,
    use_new_container_locator: Option<LenientBool>,
    verbose_container_locator_logs: Option<LenientBool>,
    enable_namespace_labels: Option<LenientBool>,
    experimental: Option<RawExperimental>,
    /// spire-rs extension (not a SPIRE key).
    max_pod_list_bytes: Option<Lenient<i64>>,
}

#[derive(Deserialize)]
struct RawExperimental {
    sigstore: Option<Value>,
}

const SECTION: &str = "plugins.WorkloadAttestor.k8s.plugin_data";

// === impl K8sConfig ===

impl K8sConfig {
    /// Reads `plugin_data` (an object). Unknown keys are [`Error::PluginData`]; SPIRE's
    /// semantic errors (`cannot use both the read-only and secure port`, the certificate /
    /// key pairing, unparsable durations) and unsupported features are [`Error::Config`].
    pub fn from_plugin_data(plugin_data: &Value) -> Result<Self> {
        let raw: Raw = spire_config::typed(SECTION, plugin_data.clone())?;
        refuse_unsupported(&raw)?;

        let secure_port = positive(raw.kubelet_secure_port);
        let read_only_port = positive(raw.kubelet_read_only_port);
        if secure_port.is_some() && read_only_port.is_some() {
            return Err(config("cannot use both the read-only and secure port"));
        }
        let port = match (read_only_port, secure_port) {
            (Some(port), _) => KubeletPort::ReadOnly(port_number(port)?),
            (None, Some(port)) => KubeletPort::Secure(port_number(port)?),
            (None, None) => KubeletPort::Secure(DEFAULT_SECURE_PORT),
        };

        let flag = |b: Option<LenientBool>| b.is_some_and(|b| b.0);
        let path = |p: Option<String>| p.filter(|p| !p.is_empty()).map(PathBuf::from);
        let credentials = match port {
            // The read-only port never authenticates; SPIRE does not look at the
            // credential keys then.
            KubeletPort::ReadOnly(_) => KubeletCredentials::Anonymous,
            KubeletPort::Secure(_) if flag(raw.use_anonymous_authentication) => {
                KubeletCredentials::Anonymous
            }
            KubeletPort::Secure(_) => {
                match (path(raw.certificate_path), path(raw.private_key_path)) {
                    (Some(certificate_path), Some(private_key_path)) => {
                        KubeletCredentials::ClientCert {
                            certificate_path,
                            private_key_path,
                        }
                    }
                    (Some(_), None) => {
                        return Err(config(
                            "the private key path is required with the certificate path",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(config(
                            "the certificate path is required with the private key path",
                        ));
                    }
                    (None, None) => KubeletCredentials::Token(
                        path(raw.token_path).unwrap_or_else(|| DEFAULT_TOKEN_PATH.into()),
                    ),
                }
            }
        };

        Ok(Self {
            port,
            credentials,
            skip_kubelet_verification: flag(raw.skip_kubelet_verification),
            kubelet_ca_path: path(raw.kubelet_ca_path)
                .unwrap_or_else(|| DEFAULT_KUBELET_CA_PATH.into()),
            node_name: raw.node_name.filter(|n| !n.is_empty()),
            node_name_env: raw.node_name_env.filter(|n| !n.is_empty()),
            max_poll_attempts: match raw.max_poll_attempts.map(|n| n.0) {
                Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => DEFAULT_MAX_POLL_ATTEMPTS,
            },
            poll_retry_interval: duration(
                raw.poll_retry_interval,
                "poll retry interval",
                DEFAULT_POLL_RETRY_INTERVAL,
            )?,
            reload_interval: duration(
                raw.reload_interval,
                "reload interval",
                DEFAULT_RELOAD_INTERVAL,
            )?,
            disable_container_selectors: flag(raw.disable_container_selectors),
            verbose_container_locator_logs: flag(raw.verbose_container_locator_logs),
            enable_namespace_labels: flag(raw.enable_namespace_labels),
            max_pod_list_bytes: max_pod_list_bytes(raw.max_pod_list_bytes)?,
        })
    }

    /// The node name: `node_name`, else the variable named by `node_name_env`, else
    /// `MY_NODE_NAME`; empty counts as unset (the kubelet is then reached on 127.0.0.1).
    pub fn resolve_node_name(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        match (&self.node_name, &self.node_name_env) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(var)) => env(var),
            (None, None) => env(DEFAULT_NODE_NAME_ENV),
        }
        .filter(|name| !name.is_empty())
    }
}

impl Default for K8sConfig {
    /// The settings of an empty `plugin_data`.
    fn default() -> Self {
        Self {
            port: KubeletPort::Secure(DEFAULT_SECURE_PORT),
            credentials: KubeletCredentials::Token(DEFAULT_TOKEN_PATH.into()),
            skip_kubelet_verification: false,
            kubelet_ca_path: DEFAULT_KUBELET_CA_PATH.into(),
            node_name: None,
            node_name_env: None,
            max_poll_attempts: DEFAULT_MAX_POLL_ATTEMPTS,
            poll_retry_interval: DEFAULT_POLL_RETRY_INTERVAL,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            disable_container_selectors: false,
            verbose_container_locator_logs: false,
            enable_namespace_labels: false,
            max_pod_list_bytes: None,
        }
    }
}

// === helpers ===

fn config(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

fn refuse_unsupported(raw: &Raw) -> Result<()> {
    if raw
        .experimental
        .as_ref()
        .is_some_and(|e| e.sigstore.is_some())
    {
        return Err(config(
            "experimental.sigstore is not supported by spire-rs (no image signature \
             selectors); remove the sigstore block",
        ));
    }
    if raw.use_new_container_locator.is_some_and(|b| !b.0) {
        return Err(config(
            "use_new_container_locator = false (the legacy container locator) is not \
             supported by spire-rs; remove it to use the default locator",
        ));
    }
    Ok(())
}

/// `max_pod_list_bytes`: unset keeps the host default; anything below 1 MiB (zero and
/// negative values included) is refused rather than silently replaced.
fn max_pod_list_bytes(value: Option<Lenient<i64>>) -> Result<Option<usize>> {
    let Some(Lenient(bytes)) = value else {
        return Ok(None);
    };
    let min = MIN_MAX_POD_LIST_BYTES;
    usize::try_from(bytes)
        .ok()
        .filter(|b| *b >= min)
        .map(Some)
        .ok_or_else(|| {
            config(format!(
                "max_pod_list_bytes must be at least {min} bytes (1 MiB), got {bytes}"
            ))
        })
}

fn positive(value: Option<Lenient<i64>>) -> Option<i64> {
    value.map(|v| v.0).filter(|v| *v > 0)
}

fn port_number(port: i64) -> Result<u16> {
    u16::try_from(port).map_err(|_| config(format!("kubelet port {port} is out of range")))
}

/// A Go duration; unset, empty, zero or negative means `default` (SPIRE's `<= 0` rule).
fn duration(value: Option<String>, what: &str, default: Duration) -> Result<Duration> {
    let Some(text) = value.filter(|t| !t.trim().is_empty()) else {
        return Ok(default);
    };
    let text = text.trim();
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let parsed = GoDuration::parse(magnitude)
        .map_err(|e| config(format!("unable to parse {what}: {e}")))?
        .0;
    Ok(if negative || parsed.is_zero() {
        default
    } else {
        parsed
    })
}
