//! The file as written: every key optional, JSON names of upstream's Go structs (its own
//! `ControllerManagerConfig` fields and controller-runtime's inlined generic spec).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawManager {
    pub(super) api_version: Option<String>,
    pub(super) kind: Option<String>,
    /// The object envelope: accepted, unread (a `Value`, so it is not reported as ignored).
    #[allow(dead_code)] // read by serde only
    pub(super) metadata: Option<Value>,
    pub(super) cluster_name: Option<String>,
    pub(super) cluster_domain: Option<String>,
    pub(super) trust_domain: Option<String>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub(super) ignore_namespaces: Option<Vec<String>>,
    pub(super) validating_webhook_configuration_name: Option<String>,
    pub(super) gc_interval: Option<KubeDuration>,
    pub(super) spire_server_socket_path: Option<String>,
    pub(super) log_level: Option<String>,
    pub(super) log_encoding: Option<String>,
    pub(super) class_name: Option<String>,
    pub(super) watch_classless: Option<bool>,
    pub(super) filter_by_class_name: Option<bool>,
    #[serde(rename = "clusterSPIFFEIDLabelSelector")]
    pub(super) cluster_spiffe_id_label_selector: Option<LabelSelector>,
    #[serde(rename = "parentIDTemplate")]
    pub(super) parent_id_template: Option<String>,
    pub(super) reconcile: Option<RawReconcile>,
    #[serde(rename = "entryIDPrefix")]
    pub(super) entry_id_prefix: Option<String>,
    #[serde(rename = "entryIDPrefixCleanup")]
    pub(super) entry_id_prefix_cleanup: Option<String>,
    pub(super) static_manifest_path: Option<String>,
    pub(super) expand_env_static_manifests: Option<bool>,
    pub(super) enable_entry_render_cache: Option<bool>,
    pub(super) entry_render_cache_size: Option<usize>,
    pub(super) grpc: Option<RawGrpc>,
    pub(super) sync_period: Option<KubeDuration>,
    pub(super) leader_election: Option<RawLeaderElection>,
    pub(super) cache_namespace: Option<String>,
    pub(super) cache_namespaces: Option<BTreeMap<String, Option<RawNamespaceConfig>>>,
    #[serde(rename = "gracefulShutDown")]
    pub(super) graceful_shutdown: Option<KubeDuration>,
    pub(super) controller: Option<RawController>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) health: Option<RawHealth>,
    pub(super) webhook: Option<RawWebhook>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawReconcile {
    #[serde(rename = "clusterSPIFFEIDs")]
    pub(super) cluster_spiffe_ids: Option<bool>,
    #[serde(rename = "clusterFederatedTrustDomains")]
    pub(super) cluster_federated_trust_domains: Option<bool>,
    #[serde(rename = "clusterStaticEntries")]
    pub(super) cluster_static_entries: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawGrpc {
    pub(super) max_call_recv_msg_size: Option<usize>,
}

/// component-base's `LeaderElectionConfiguration`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawLeaderElection {
    pub(super) leader_elect: Option<bool>,
    pub(super) resource_lock: Option<String>,
    pub(super) resource_name: Option<String>,
    pub(super) resource_namespace: Option<String>,
    pub(super) lease_duration: Option<KubeDuration>,
    pub(super) renew_deadline: Option<KubeDuration>,
    pub(super) retry_period: Option<KubeDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawNamespaceConfig {
    pub(super) label_selectors: Option<BTreeMap<String, String>>,
    pub(super) field_selectors: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawController {
    pub(super) group_kind_concurrency: Option<BTreeMap<String, u32>>,
    pub(super) cache_sync_timeout: Option<KubeDuration>,
    pub(super) recover_panic: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawMetrics {
    pub(super) bind_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawHealth {
    pub(super) health_probe_bind_address: Option<String>,
    pub(super) readiness_endpoint_name: Option<String>,
    pub(super) liveness_endpoint_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawWebhook {
    pub(super) port: Option<u16>,
    pub(super) host: Option<String>,
    pub(super) cert_dir: Option<String>,
}

/// A duration as Kubernetes config files carry one: a Go duration string (`metav1.Duration`:
/// `10s`, `1m30s`) or, where the Go field is a bare `time.Duration`, integer nanoseconds.
/// Negative durations are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KubeDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for KubeDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = KubeDuration;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Go duration such as \"10s\", or integer nanoseconds")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<KubeDuration, E> {
                let nanos = spire_cli::go_duration(v).map_err(E::custom)?;
                u64::try_from(nanos)
                    .map(|n| KubeDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom(format!("duration {v:?} must not be negative")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KubeDuration, E> {
                Ok(KubeDuration(Duration::from_nanos(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KubeDuration, E> {
                u64::try_from(v)
                    .map(|n| KubeDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom(format!("duration {v} must not be negative")))
            }
        }

        deserializer.deserialize_any(V)
    }
}

/// A YAML `null` list is an empty list (Go sets a nil slice), not "use the default".
fn null_is_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Some(
        Option::<Vec<String>>::deserialize(d)?.unwrap_or_default(),
    ))
}
