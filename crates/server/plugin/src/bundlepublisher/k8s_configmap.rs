//! `BundlePublisher "k8s_configmap"`: the trust bundle, as PEM, a SPIFFE bundle document or a
//! JWK set, server-side applied into one key of a ConfigMap per cluster (created when
//! missing). A bundle equal to the last one published everywhere is not published again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use spire_config::de::GoDuration;
use spire_id::go_fmt::quote;
use spire_k8s::{ApiClient, ClientConfig};
use spire_svid::Bundle;

use super::BundlePublisher;
use crate::{Error, Result};

/// The field manager of our server-side applies.
const FIELD_MANAGER: &str = "spire-bundlepublisher-k8s_configmap";

/// How the bundle is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleFormat {
    /// Concatenated PEM certificates of the X.509 authorities.
    Pem,
    /// The SPIFFE bundle document (JWKS with `use`, `spiffe_sequence`, `spiffe_refresh_hint`).
    Spiffe,
    /// A standard JWK set: the same keys without the SPIFFE members.
    Jwks,
}

/// `BundlePublisher "k8s_configmap"` plugin data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct K8sConfigMapConfig {
    /// The targets, by the name given in `clusters`.
    pub clusters: BTreeMap<String, K8sConfigMapCluster>,
}

/// One ConfigMap to publish into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sConfigMapCluster {
    /// `configmap_name`.
    pub configmap_name: String,
    /// `configmap_key`.
    pub configmap_key: String,
    /// `namespace`.
    pub namespace: String,
    /// `format`.
    pub format: BundleFormat,
    /// `kubeconfig_path`; `None` = in-cluster.
    pub kubeconfig_path: Option<PathBuf>,
    /// `refresh_hint`: replaces the bundle's refresh hint in the `spiffe` format.
    pub refresh_hint: Option<Duration>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    clusters: BTreeMap<String, RawCluster>,
}

#[derive(Deserialize)]
struct RawCluster {
    #[serde(default)]
    configmap_name: String,
    #[serde(default)]
    configmap_key: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    kubeconfig_path: String,
    refresh_hint: Option<GoDuration>,
}

// === impl K8sConfigMapConfig ===

impl K8sConfigMapConfig {
    /// Reads `plugin_data`: every cluster needs a ConfigMap name, key, namespace and format.
    pub fn from_plugin_data(data: &Value) -> std::result::Result<Self, String> {
        let raw: RawConfig = serde_json::from_value(data.clone())
            .map_err(|e| format!("unable to decode configuration: {e}"))?;
        let mut clusters = BTreeMap::new();
        for (id, cluster) in raw.clusters {
            let required = |key: &str, value: &str| {
                if value.is_empty() {
                    Err(format!("missing {key} for cluster {}", quote(&id)))
                } else {
                    Ok(())
                }
            };
            required("configmap_name", &cluster.configmap_name)?;
            required("configmap_key", &cluster.configmap_key)?;
            required("namespace", &cluster.namespace)?;
            required("format", &cluster.format)?;
            let format = match cluster.format.as_str() {
                "pem" => BundleFormat::Pem,
                "spiffe" => BundleFormat::Spiffe,
                "jwks" => BundleFormat::Jwks,
                other => {
                    return Err(format!(
                        "invalid bundle format {} for cluster {}: expected \"pem\", \"spiffe\" or \"jwks\"",
                        quote(other),
                        quote(&id)
                    ));
                }
            };
            clusters.insert(
                id,
                K8sConfigMapCluster {
                    configmap_name: cluster.configmap_name,
                    configmap_key: cluster.configmap_key,
                    namespace: cluster.namespace,
                    format,
                    kubeconfig_path: Some(cluster.kubeconfig_path)
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from),
                    refresh_hint: cluster.refresh_hint.map(|d| d.0),
                },
            );
        }
        Ok(Self { clusters })
    }
}

/// Publishes into the configured ConfigMaps.
#[derive(Debug)]
pub struct K8sConfigMapPublisher {
    targets: Vec<(String, K8sConfigMapCluster, ApiClient)>,
    /// The last bundle published to every target.
    published: Mutex<Option<Bundle>>,
}

// === impl K8sConfigMapPublisher ===

impl K8sConfigMapPublisher {
    /// The plugin name.
    pub const NAME: &'static str = "k8s_configmap";

    /// A publisher with one apiserver client per cluster.
    pub fn new(config: &K8sConfigMapConfig) -> std::result::Result<Self, String> {
        let targets = config
            .clusters
            .iter()
            .map(|(id, cluster)| {
                ClientConfig::load(cluster.kubeconfig_path.as_deref())
                    .and_then(ApiClient::new)
                    .map(|client| (id.clone(), cluster.clone(), client))
                    .map_err(|e| {
                        format!(
                            "unable to create the Kubernetes client for cluster {}: {e}",
                            quote(id)
                        )
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self {
            targets,
            published: Mutex::new(None),
        })
    }
}

#[async_trait]
impl BundlePublisher for K8sConfigMapPublisher {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn publish(&self, bundle: &Bundle) -> Result<()> {
        if self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            == Some(bundle)
        {
            return Ok(());
        }
        for (id, target, client) in &self.targets {
            let content = format_bundle(bundle, target.format, target.refresh_hint);
            let data = BTreeMap::from([(target.configmap_key.clone(), content)]);
            client
                .apply_config_map(
                    &target.namespace,
                    &target.configmap_name,
                    FIELD_MANAGER,
                    &data,
                )
                .await
                .map_err(|source| Error::Kubernetes {
                    context: format!(
                        "failed to publish the bundle to config map {}/{} of cluster {}",
                        target.namespace,
                        quote(&target.configmap_name),
                        quote(id)
                    ),
                    source,
                })?;
        }
        // Only a publish that reached every cluster counts: a failed one is retried.
        *self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bundle.clone());
        Ok(())
    }
}

/// The bundle in `format`.
pub(crate) fn format_bundle(
    bundle: &Bundle,
    format: BundleFormat,
    refresh_hint: Option<Duration>,
) -> String {
    match format {
        BundleFormat::Pem => bundle.x509_authorities_pem(),
        BundleFormat::Spiffe => match refresh_hint {
            Some(hint) => {
                let mut bundle = bundle.clone();
                bundle.refresh_hint = i64::try_from(hint.as_secs()).unwrap_or(i64::MAX);
                bundle.to_spiffe_json()
            }
            None => bundle.to_spiffe_json(),
        },
        BundleFormat::Jwks => {
            // The SPIFFE document minus what only SPIFFE consumers read.
            let mut document: Value =
                serde_json::from_str(&bundle.to_spiffe_json()).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut document {
                map.remove("spiffe_sequence");
                map.remove("spiffe_refresh_hint");
                if let Some(Value::Array(keys)) = map.get_mut("keys") {
                    for key in keys.iter_mut().filter_map(Value::as_object_mut) {
                        key.remove("use");
                    }
                }
            }
            serde_json::to_string_pretty(&document).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests;
