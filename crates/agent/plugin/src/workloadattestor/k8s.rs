//! `WorkloadAttestor "k8s"`: the pod and container of a process, from its cgroups and the
//! kubelet's pod list, as SPIRE's `k8s` workload attestor does.
//!
//! Per attestation: `/proc/<pid>/cgroup` (and `mountinfo` as a fallback) gives the pod UID
//! and container ID ([`cgroup`]); a process outside a container gets no selectors. Then the
//! shared [`poller`] supplies a parsed pod list and the container is looked up in it
//! ([`pods`]); while it is not there the attestor asks for the next list, up to
//! `max_poll_attempts` lists `poll_retry_interval` apart, then fails with
//! `DeadlineExceeded` `no selectors found after max poll attempts` (or `Unavailable` with the
//! last request's error when the kubelet could not be read). With `enable_namespace_labels`,
//! the `ns-label` selectors of the pod's namespace ([`namespaces`]) come last, sorted by key.

pub mod cgroup;
pub mod config;
mod kubelet;
pub mod namespaces;
pub mod pods;
pub mod poller;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spire_id::Selector;
use spire_k8s::ClientConfig;

pub use config::{K8sConfig, KubeletCredentials, KubeletPort};
pub use kubelet::KubeletSource;
pub use namespaces::{ApiNamespaces, NAMESPACE_LABELS_TTL, NamespaceSource};
pub use poller::{FetchError, PodListSource};

use super::WorkloadAttestor;
use crate::{Code, Error, Result};
use namespaces::NamespaceLabels;
use poller::Poller;

/// The plugin name and selector type.
pub const NAME: &str = "k8s";

/// Looks an environment variable up (`None`: unset).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What the attestor takes from its host besides `plugin_data`; tests point these
/// elsewhere.
#[derive(Clone)]
pub struct K8sOptions {
    /// Where `<pid>/cgroup` and `<pid>/mountinfo` are read (default `/proc`).
    pub proc_root: PathBuf,
    /// The environment, for the node name (default: the process environment).
    pub env: EnvLookup,
    /// Time allowed for one `/pods` request, body included (default 10 s, SPIRE's).
    pub kubelet_timeout: Duration,
    /// Largest accepted `/pods` body (default 64 MiB; a 110-pod node sends 2–5 MB).
    /// `max_pod_list_bytes` in `plugin_data` wins over it.
    pub max_body_bytes: usize,
    /// The apiserver for `enable_namespace_labels` (default `None`: the in-cluster service
    /// account, as SPIRE uses); tests point it at a test apiserver.
    pub apiserver: Option<ClientConfig>,
}

/// The `k8s` workload attestor. Cheap to clone; clones share the pod-list fetcher.
#[derive(Clone, Debug)]
pub struct K8sAttestor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: K8sConfig,
    proc_root: PathBuf,
    poller: Poller,
    /// Set with `enable_namespace_labels`.
    namespaces: Option<NamespaceLabels>,
}

// === impl K8sOptions ===

impl Default for K8sOptions {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            env: Arc::new(|name| std::env::var(name).ok()),
            kubelet_timeout: spire_k8s::kubelet::KubeletConfig::DEFAULT_TIMEOUT,
            max_body_bytes: spire_k8s::kubelet::KubeletConfig::DEFAULT_MAX_BODY_BYTES,
            apiserver: None,
        }
    }
}

impl fmt::Debug for K8sOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sOptions")
            .field("proc_root", &self.proc_root)
            .field("kubelet_timeout", &self.kubelet_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("apiserver", &self.apiserver)
            .finish_non_exhaustive()
    }
}

// === impl K8sAttestor ===

impl K8sAttestor {
    /// Parses `plugin_data` ([`K8sConfig::from_plugin_data`]) and builds the attestor for this
    /// host ([`K8sOptions::default`]).
    pub fn from_plugin_data(plugin_data: &Value) -> Result<Self> {
        Self::new(
            K8sConfig::from_plugin_data(plugin_data)?,
            K8sOptions::default(),
        )
    }

    /// An attestor calling the kubelet (and, with `enable_namespace_labels`, the apiserver
    /// of [`K8sOptions::apiserver`]). The node name is resolved and the kubelet credentials
    /// and CA are read now: a missing or unusable file is [`Error::Config`], as SPIRE refuses
    /// to configure then. The `/pods` body cap is `max_pod_list_bytes` when set, else
    /// [`K8sOptions::max_body_bytes`].
    pub fn new(config: K8sConfig, options: K8sOptions) -> Result<Self> {
        let node_name = config.resolve_node_name(|name| (options.env)(name));
        let source = KubeletSource::new(
            &config,
            node_name,
            options.kubelet_timeout,
            config.max_pod_list_bytes.unwrap_or(options.max_body_bytes),
        )
        .map_err(Error::Config)?;
        tracing::info!(kubelet = %source.url(), "k8s workload attestor configured");
        let namespaces = config
            .enable_namespace_labels
            .then(|| Arc::new(ApiNamespaces::new(options.apiserver)) as Arc<dyn NamespaceSource>);
        Ok(Self::with_sources(
            config,
            options.proc_root,
            Arc::new(source),
            namespaces,
        ))
    }

    /// An attestor reading pod lists from `source` (a fake kubelet in tests); with
    /// `enable_namespace_labels`, namespace labels come from the in-cluster apiserver.
    pub fn with_source(
        config: K8sConfig,
        proc_root: impl Into<PathBuf>,
        source: Arc<dyn PodListSource>,
    ) -> Self {
        Self::with_sources(config, proc_root, source, None)
    }

    /// An attestor reading pod lists from `pods` and, when `enable_namespace_labels` is
    /// set, namespace labels from `namespaces` (`None`: the in-cluster apiserver).
    pub fn with_sources(
        config: K8sConfig,
        proc_root: impl Into<PathBuf>,
        pods: Arc<dyn PodListSource>,
        namespaces: Option<Arc<dyn NamespaceSource>>,
    ) -> Self {
        let poller = Poller::new(pods, config.poll_retry_interval);
        let namespaces = config.enable_namespace_labels.then(|| {
            let source = namespaces.unwrap_or_else(|| Arc::new(ApiNamespaces::new(None)));
            NamespaceLabels::new(source, config.poll_retry_interval)
        });
        Self {
            inner: Arc::new(Inner {
                config,
                proc_root: proc_root.into(),
                poller,
                namespaces,
            }),
        }
    }

    /// The settings in effect.
    pub fn config(&self) -> &K8sConfig {
        &self.inner.config
    }

    /// How many `/pods` requests this attestor has started.
    pub fn kubelet_requests(&self) -> u64 {
        self.inner.poller.requests()
    }
}

#[async_trait::async_trait]
impl WorkloadAttestor for K8sAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, pid: i32) -> Result<Vec<Selector>> {
        let inner = &self.inner;
        let config = &inner.config;
        let location =
            cgroup::locate(&inner.proc_root, pid, config.verbose_container_locator_logs)?;
        if location.container_id.is_empty() {
            // Not in a container: not a Kubernetes workload.
            return Ok(Vec::new());
        }
        let pod_uid = location.pod_uid.as_str();
        let container_id = location.container_id.as_str();

        let mut seen = 0;
        let mut last_error = None;
        for attempt in 1..=config.max_poll_attempts {
            match inner.poller.next(seen).await {
                Ok(snapshot) => {
                    seen = snapshot.version;
                    last_error = None;
                    if let Some(matched) = snapshot.pods.matched(
                        pod_uid,
                        container_id,
                        config.disable_container_selectors,
                    )? {
                        let mut selectors = matched.selectors;
                        if let Some(namespaces) = &inner.namespaces {
                            let labels = namespaces.selectors(&matched.namespace).await?;
                            selectors.extend(labels.iter().cloned());
                        }
                        return Ok(selectors);
                    }
                    tracing::debug!(
                        pid,
                        pod_uid,
                        container_id,
                        attempt,
                        "Container id not found"
                    );
                }
                Err(message) => {
                    tracing::debug!(pid, attempt, error = %message, "pod list unavailable");
                    last_error = Some(message);
                }
            }
        }
        tracing::warn!(
            pid,
            pod_uid,
            container_id,
            "Container id not found; giving up"
        );
        Err(match last_error {
            Some(message) => Error::status(Code::Unavailable, message.to_string()),
            None => Error::status(
                Code::DeadlineExceeded,
                "no selectors found after max poll attempts",
            ),
        })
    }
}

#[cfg(test)]
mod tests;
