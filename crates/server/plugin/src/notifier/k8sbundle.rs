//! `Notifier "k8sbundle"`: writes the trust bundle's X.509 roots, as concatenated PEM, into
//! one key of an existing ConfigMap in each configured cluster.
//!
//! The write is a read-modify-write on the ConfigMap's `resourceVersion` (GET, then a
//! strategic-merge PATCH carrying it; a conflict re-reads and retries), so two servers
//! writing at once never lose an update silently.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use spire_id::go_fmt::quote;
use spire_k8s::{ApiClient, ClientConfig};
use spire_svid::Bundle;

use super::Notifier;
use crate::{Error, Result};

const DEFAULT_NAMESPACE: &str = "spire";
const DEFAULT_CONFIG_MAP: &str = "spire-bundle";
const DEFAULT_CONFIG_MAP_KEY: &str = "bundle.crt";

/// `Notifier "k8sbundle"` plugin data, resolved: one target per cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sBundleConfig {
    /// Where the bundle goes: the top-level keys (when any is set, or when `clusters` is
    /// empty) and every entry of `clusters`.
    pub clusters: Vec<K8sBundleCluster>,
}

/// One ConfigMap to keep current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sBundleCluster {
    /// `namespace` (default `spire`).
    pub namespace: String,
    /// `config_map` (default `spire-bundle`).
    pub config_map: String,
    /// `config_map_key` (default `bundle.crt`).
    pub config_map_key: String,
    /// `kube_config_file_path`; `None` = in-cluster (only for the top-level target).
    pub kube_config_file_path: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
struct RawTarget {
    namespace: Option<String>,
    config_map: Option<String>,
    config_map_key: Option<String>,
    kube_config_file_path: Option<String>,
    webhook_label: Option<String>,
    api_service_label: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(flatten)]
    root: RawTarget,
    #[serde(default)]
    clusters: Vec<RawTarget>,
}

// === impl K8sBundleConfig ===

impl K8sBundleConfig {
    /// Reads `plugin_data` (unknown keys ignored, as SPIRE's decoder does).
    pub fn from_plugin_data(data: &Value) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_value(data.clone())
            .map_err(|e| format!("unable to decode configuration: {e}"))?;
        let root_set = raw.root.namespace.is_some()
            || raw.root.config_map.is_some()
            || raw.root.config_map_key.is_some()
            || raw.root.kube_config_file_path.is_some()
            || raw.root.webhook_label.is_some()
            || raw.root.api_service_label.is_some();
        let mut clusters = Vec::new();
        if root_set || raw.clusters.is_empty() {
            clusters.push(target(raw.root, false)?);
        }
        for cluster in raw.clusters {
            clusters.push(target(cluster, true)?);
        }
        Ok(Self { clusters })
    }
}

fn target(raw: RawTarget, in_clusters: bool) -> std::result::Result<K8sBundleCluster, String> {
    // Labelled webhooks and APIServices need informers on those kinds; until spire-rs has
    // them the keys are refused rather than accepted and ignored.
    for (key, value) in [
        ("webhook_label", &raw.webhook_label),
        ("api_service_label", &raw.api_service_label),
    ] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(format!(
                "{key} is not supported by spire-rs yet: only the ConfigMap is kept current"
            ));
        }
    }
    let kube_config_file_path = raw
        .kube_config_file_path
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if in_clusters && kube_config_file_path.is_none() {
        return Err("cluster configuration is missing kube_config_file_path".into());
    }
    let or = |value: Option<String>, default: &str| {
        value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    Ok(K8sBundleCluster {
        namespace: or(raw.namespace, DEFAULT_NAMESPACE),
        config_map: or(raw.config_map, DEFAULT_CONFIG_MAP),
        config_map_key: or(raw.config_map_key, DEFAULT_CONFIG_MAP_KEY),
        kube_config_file_path,
    })
}

/// Keeps the configured ConfigMaps current.
#[derive(Debug)]
pub struct K8sBundleNotifier {
    targets: Vec<(K8sBundleCluster, ApiClient)>,
}

// === impl K8sBundleNotifier ===

impl K8sBundleNotifier {
    /// The plugin name.
    pub const NAME: &'static str = "k8sbundle";

    /// A notifier with one apiserver client per target (built now: a kubeconfig that cannot
    /// work fails at startup).
    pub fn new(config: &K8sBundleConfig) -> std::result::Result<Self, String> {
        let targets = config
            .clusters
            .iter()
            .map(|cluster| {
                ClientConfig::load(cluster.kube_config_file_path.as_deref())
                    .and_then(ApiClient::new)
                    .map(|client| (cluster.clone(), client))
                    .map_err(|e| format!("unable to create the Kubernetes client: {e}"))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self { targets })
    }

    async fn write(&self, bundle: &Bundle) -> Result<()> {
        let pem = bundle.x509_authorities_pem();
        for (target, client) in &self.targets {
            client
                .update_config_map_key(
                    &target.namespace,
                    &target.config_map,
                    &target.config_map_key,
                    &pem,
                )
                .await
                .map_err(|source| Error::Kubernetes {
                    context: format!(
                        "unable to update config map {}/{}",
                        target.namespace,
                        quote(&target.config_map)
                    ),
                    source,
                })?;
        }
        Ok(())
    }
}

#[async_trait]
impl Notifier for K8sBundleNotifier {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn bundle_loaded(&self, bundle: &Bundle) -> Result<()> {
        self.write(bundle).await
    }

    async fn bundle_updated(&self, bundle: &Bundle) -> Result<()> {
        self.write(bundle).await
    }
}

#[cfg(test)]
mod tests;
