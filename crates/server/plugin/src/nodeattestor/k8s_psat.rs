//! `NodeAttestor "k8s_psat"`: the agent sends a projected service account token of its pod;
//! the cluster's apiserver vouches for it (TokenReview), and the pod and node it names become
//! the agent's identity and selectors.
//!
//! The checks run in SPIRE's order with SPIRE's codes and messages (each prefixed, as SPIRE's
//! plugin facade does, with `nodeattestor(k8s_psat): `). The agent is
//! `spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node UID>` (or `…/<cluster>/pod/<pod UID>`
//! with `use_pod_uid_for_agent_id`) and may re-attest.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use spire_config::de::LenientBool;
use spire_id::go_fmt::quote;
use spire_id::{Selector, SpiffeId, TrustDomain};
use spire_k8s::types::TokenReviewStatus;
use spire_k8s::{ApiClient, ClientConfig};

use super::{AttestCode, Attestation, Challenger, NodeAttestor, is_safe_segment};
use crate::{Error, Result};

/// The audience a cluster expects when its configuration names none.
const DEFAULT_AUDIENCE: &str = "spire-server";
/// `user.extra` keys the apiserver fills for a token bound to a pod.
const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";

/// `NodeAttestor "k8s_psat"` plugin data. Keys this plugin does not know are ignored, as
/// SPIRE's are (the 2022 Istio quickstart still sets `use_token_review_api_validation`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct K8sPsatConfig {
    /// The clusters agents may attest from, by the name agents send.
    pub clusters: BTreeMap<String, K8sPsatCluster>,
}

/// One `clusters { "<name>" = { … } }` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct K8sPsatCluster {
    /// `service_account_allow_list`: `"<namespace>:<service account>"` of agent pods.
    pub service_account_allow_list: BTreeSet<String>,
    /// `audience` (default `["spire-server"]`); empty = the apiserver's default audience.
    pub audience: Vec<String>,
    /// `kube_config_file`; `None` = the in-cluster configuration.
    pub kube_config_file: Option<PathBuf>,
    /// `allowed_node_label_keys`: node labels that become `agent_node_label` selectors.
    pub allowed_node_label_keys: BTreeSet<String>,
    /// `allowed_pod_label_keys`: pod labels that become `agent_pod_label` selectors.
    pub allowed_pod_label_keys: BTreeSet<String>,
    /// `use_pod_uid_for_agent_id`: name the agent after its pod instead of its node.
    pub use_pod_uid_for_agent_id: bool,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    clusters: BTreeMap<String, RawCluster>,
}

#[derive(Deserialize)]
struct RawCluster {
    #[serde(default)]
    service_account_allow_list: Vec<String>,
    audience: Option<Vec<String>>,
    #[serde(default)]
    kube_config_file: String,
    #[serde(default)]
    allowed_node_label_keys: Vec<String>,
    #[serde(default)]
    allowed_pod_label_keys: Vec<String>,
    use_pod_uid_for_agent_id: Option<LenientBool>,
}

// === impl K8sPsatConfig ===

impl K8sPsatConfig {
    /// Reads `plugin_data` (unknown keys ignored). Every cluster must allow at least one
    /// service account.
    pub fn from_plugin_data(data: &Value) -> std::result::Result<Self, String> {
        // serde_json ignores unknown fields unless told otherwise: SPIRE's leniency for this
        // plugin comes for free.
        let raw: RawConfig = serde_json::from_value(data.clone())
            .map_err(|e| format!("plugin configuration is malformed: {e}"))?;
        let mut clusters = BTreeMap::new();
        for (name, cluster) in raw.clusters {
            if cluster.service_account_allow_list.is_empty() {
                return Err(format!(
                    "cluster {} configuration must have at least one service account allowed",
                    quote(&name)
                ));
            }
            clusters.insert(
                name,
                K8sPsatCluster {
                    service_account_allow_list: cluster
                        .service_account_allow_list
                        .into_iter()
                        .collect(),
                    audience: cluster
                        .audience
                        .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]),
                    kube_config_file: Some(cluster.kube_config_file)
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from),
                    allowed_node_label_keys: cluster.allowed_node_label_keys.into_iter().collect(),
                    allowed_pod_label_keys: cluster.allowed_pod_label_keys.into_iter().collect(),
                    use_pod_uid_for_agent_id: cluster.use_pod_uid_for_agent_id.is_some_and(|b| b.0),
                },
            );
        }
        Ok(Self { clusters })
    }
}

/// The server side of `k8s_psat`.
pub struct K8sPsatAttestor {
    trust_domain: TrustDomain,
    clusters: BTreeMap<String, Cluster>,
}

struct Cluster {
    config: K8sPsatCluster,
    client: ApiClient,
}

/// What the agent sends: exactly `{"cluster": …, "token": …}`.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    token: String,
}

// === impl K8sPsatAttestor ===

impl K8sPsatAttestor {
    /// The plugin name.
    pub const NAME: &'static str = "k8s_psat";

    /// An attestor for the configured clusters, each with its apiserver client (built now, so
    /// a kubeconfig that cannot work fails at startup rather than at the first agent).
    pub fn new(
        config: &K8sPsatConfig,
        trust_domain: TrustDomain,
    ) -> std::result::Result<Self, String> {
        if config.clusters.is_empty() {
            tracing::info!("No clusters configured, PSAT attestation is effectively disabled");
        }
        let mut clusters = BTreeMap::new();
        for (name, cluster) in &config.clusters {
            let client = ClientConfig::load(cluster.kube_config_file.as_deref())
                .and_then(ApiClient::new)
                .map_err(|e| format!("cluster {}: {e}", quote(name)))?;
            clusters.insert(
                name.clone(),
                Cluster {
                    config: cluster.clone(),
                    client,
                },
            );
        }
        Ok(Self {
            trust_domain,
            clusters,
        })
    }

    async fn attest_payload(&self, payload: &[u8]) -> Result<Attestation> {
        if payload.is_empty() {
            return Err(failure(
                AttestCode::InvalidArgument,
                "missing attestation payload",
            ));
        }
        let data: Payload = serde_json::from_slice(payload).map_err(|e| {
            failure(
                AttestCode::InvalidArgument,
                format!("failed to unmarshal data payload: {e}"),
            )
        })?;
        if data.cluster.is_empty() {
            return Err(failure(
                AttestCode::InvalidArgument,
                "missing cluster in attestation data",
            ));
        }
        if data.token.is_empty() {
            return Err(failure(
                AttestCode::InvalidArgument,
                "missing token in attestation data",
            ));
        }
        let name = data.cluster.as_str();
        let cluster = self.clusters.get(name).ok_or_else(|| {
            failure(
                AttestCode::InvalidArgument,
                format!("not configured for cluster {}", quote(name)),
            )
        })?;

        let review = cluster.review(name, &data.token).await?;
        if !review.authenticated {
            return Err(failure(
                AttestCode::PermissionDenied,
                format!(
                    "token not authenticated according to TokenReview API for cluster {}",
                    quote(name)
                ),
            ));
        }
        let (namespace, service_account) = names_from_username(&review.user.username)
            .ok_or_else(|| {
                failure(
                    AttestCode::Internal,
                    format!(
                        "failed to parse username from token review status: unexpected username format {}",
                        quote(&review.user.username)
                    ),
                )
            })?;
        let account = format!("{namespace}:{service_account}");
        if !cluster.config.service_account_allow_list.contains(&account) {
            return Err(failure(
                AttestCode::PermissionDenied,
                format!(
                    "{} is not an allowed service account for cluster {}",
                    quote(&account),
                    quote(name)
                ),
            ));
        }
        let pod_name = single_extra(&review, EXTRA_POD_NAME, "name").map_err(|e| {
            failure(
                AttestCode::Internal,
                format!("fail to get pod name from token review status: {e}"),
            )
        })?;
        let pod_uid = single_extra(&review, EXTRA_POD_UID, "UID").map_err(|e| {
            failure(
                AttestCode::Internal,
                format!("fail to get pod UID from token review status: {e}"),
            )
        })?;

        let pod = cluster
            .client
            .get_pod(namespace, pod_name)
            .await
            .map_err(|e| {
                failure(
                    AttestCode::Internal,
                    format!("fail to get pod from k8s API server: {e}"),
                )
            })?;
        if pod.metadata.uid != pod_uid {
            return Err(failure(
                AttestCode::PermissionDenied,
                format!(
                    "pod UID mismatch for pod {} in cluster {}: token bound to pod UID {}",
                    quote(pod_name),
                    quote(name),
                    quote(pod_uid)
                ),
            ));
        }
        let node_name = pod.spec.node_name.as_str();
        if node_name.is_empty() {
            return Err(failure(
                AttestCode::Internal,
                "fail to get node from k8s API server: empty node name",
            ));
        }
        let node = cluster.client.get_node(node_name).await.map_err(|e| {
            failure(
                AttestCode::Internal,
                format!("fail to get node from k8s API server: {e}"),
            )
        })?;
        let node_uid = node.metadata.uid.as_str();
        if node_uid.is_empty() {
            return Err(failure(
                AttestCode::Internal,
                format!("node UID is empty for cluster {}", quote(name)),
            ));
        }

        let mut values = vec![
            format!("cluster:{name}"),
            format!("agent_ns:{namespace}"),
            format!("agent_sa:{service_account}"),
            format!("agent_pod_name:{pod_name}"),
            format!("agent_pod_uid:{pod_uid}"),
            format!("agent_node_ip:{}", pod.status.host_ip),
            format!("agent_node_name:{node_name}"),
            format!("agent_node_uid:{node_uid}"),
        ];
        values.extend(
            node.metadata
                .labels
                .iter()
                .filter(|(k, _)| cluster.config.allowed_node_label_keys.contains(*k))
                .map(|(k, v)| format!("agent_node_label:{k}:{v}")),
        );
        values.extend(
            pod.metadata
                .labels
                .iter()
                .filter(|(k, _)| cluster.config.allowed_pod_label_keys.contains(*k))
                .map(|(k, v)| format!("agent_pod_label:{k}:{v}")),
        );
        let selectors = values
            .iter()
            .map(|v| {
                Selector::new(Self::NAME, v).map_err(|e| {
                    failure(AttestCode::Internal, format!("invalid selector {v:?}: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let agent_id = if cluster.config.use_pod_uid_for_agent_id {
            self.agent_id(&[name, "pod", pod_uid])
        } else {
            self.agent_id(&[name, node_uid])
        }?;
        Ok(Attestation {
            agent_id,
            selectors,
            can_reattest: true,
        })
    }

    /// `spiffe://<td>/spire/agent/k8s_psat/<segments…>`. Each segment comes from the
    /// configuration or the apiserver and is refused, never normalised, when it is not one
    /// safe path segment.
    fn agent_id(&self, segments: &[&str]) -> Result<SpiffeId> {
        if let Some(bad) = segments.iter().find(|s| !is_safe_segment(s)) {
            return Err(failure(
                AttestCode::Internal,
                format!("cannot form an agent ID from {}", quote(bad)),
            ));
        }
        let mut path = vec!["spire", "agent", Self::NAME];
        path.extend_from_slice(segments);
        SpiffeId::from_segments(self.trust_domain.clone(), &path)
            .map_err(|e| failure(AttestCode::Internal, format!("invalid agent ID: {e}")))
    }
}

// === impl Cluster ===

impl Cluster {
    /// Asks the apiserver about `token`, requiring (when audiences are configured) that it
    /// was issued for one of them. Failures of the call and authenticator errors reported in
    /// `status.error` are Internal, as in SPIRE.
    async fn review(&self, name: &str, token: &str) -> Result<TokenReviewStatus> {
        let internal = |e: &dyn fmt::Display| {
            failure(
                AttestCode::Internal,
                format!(
                    "unable to validate token with TokenReview API for cluster {}: {e}",
                    quote(name)
                ),
            )
        };
        let status = self
            .client
            .create_token_review(token, &self.config.audience)
            .await
            .map_err(|e| internal(&e))?;
        if !status.error.is_empty() {
            return Err(internal(&status.error));
        }
        let audiences = &self.config.audience;
        if status.authenticated
            && !audiences.is_empty()
            && !audiences.iter().any(|a| status.audiences.contains(a))
        {
            return Err(internal(&format_args!(
                "token review API did not validate audience: wanted one of {} but got {}",
                go_list(audiences),
                go_list(&status.audiences)
            )));
        }
        Ok(status)
    }
}

impl fmt::Debug for K8sPsatAttestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sPsatAttestor")
            .field("trust_domain", &self.trust_domain)
            .field("clusters", &self.clusters.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl NodeAttestor for K8sPsatAttestor {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn attest(
        &self,
        payload: Vec<u8>,
        _challenger: &mut dyn Challenger,
    ) -> Result<Attestation> {
        self.attest_payload(&payload).await
    }
}

fn failure(code: AttestCode, message: impl fmt::Display) -> Error {
    Error::plugin_failure(K8sPsatAttestor::NAME, code, message)
}

/// `system:serviceaccount:<ns>:<sa>` → (ns, sa): exactly four colon-separated parts with the
/// last two non-empty. The prefix is not checked (as in SPIRE).
fn names_from_username(username: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = username.split(':').collect();
    match parts.as_slice() {
        [_, _, ns, sa] if !ns.is_empty() && !sa.is_empty() => Some((ns, sa)),
        _ => None,
    }
}

/// The one non-empty value of `user.extra[key]`.
fn single_extra<'a>(
    review: &'a TokenReviewStatus,
    key: &str,
    what: &str,
) -> std::result::Result<&'a str, String> {
    let values = review
        .user
        .extra
        .get(key)
        .ok_or_else(|| format!("missing pod {what}"))?;
    match values.as_slice() {
        [value] if !value.is_empty() => Ok(value),
        [_] => Err(format!("pod {what} is empty")),
        other => Err(format!("expected 1 {what} but got: {}", other.len())),
    }
}

/// A string list as Go's `%v` prints it: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests;
