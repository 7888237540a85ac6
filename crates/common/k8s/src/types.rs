//! The Kubernetes objects we read and write, reduced to the fields we use. Unknown fields
//! are ignored; absent and `null` fields decode to their defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// `metadata` of any object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    #[serde(deserialize_with = "nullable")]
    pub namespace: String,
    /// `metadata.uid`.
    #[serde(deserialize_with = "nullable")]
    pub uid: String,
    /// `metadata.resourceVersion`.
    #[serde(deserialize_with = "nullable")]
    pub resource_version: String,
    /// `metadata.labels`.
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    /// `metadata.ownerReferences`.
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerReference>,
    /// `metadata.creationTimestamp` (RFC 3339), when set.
    pub creation_timestamp: Option<String>,
}

/// One of `metadata.ownerReferences`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerReference {
    /// `apiVersion` of the owner (e.g. `apps/v1`).
    #[serde(deserialize_with = "nullable")]
    pub api_version: String,
    /// `kind` of the owner (e.g. `ReplicaSet`).
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Name of the owner.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// UID of the owner.
    #[serde(deserialize_with = "nullable")]
    pub uid: String,
    /// Whether the owner is the managing controller.
    pub controller: Option<bool>,
}

/// A `v1.Pod`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Pod {
    /// `metadata`.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(deserialize_with = "nullable")]
    pub spec: PodSpec,
    /// `status`.
    #[serde(deserialize_with = "nullable")]
    pub status: PodStatus,
}

/// `spec` of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// `spec.serviceAccountName`.
    #[serde(deserialize_with = "nullable")]
    pub service_account_name: String,
    /// `spec.nodeName`.
    #[serde(deserialize_with = "nullable")]
    pub node_name: String,
    /// `spec.hostname`.
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
}

/// `status` of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    /// `status.hostIP`.
    #[serde(rename = "hostIP", deserialize_with = "nullable")]
    pub host_ip: String,
    /// `status.containerStatuses`.
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
    /// `status.initContainerStatuses`.
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatus>,
}

/// One of a pod's `status.(init)containerStatuses`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContainerStatus {
    /// The container's name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// `containerID`, a URL such as `containerd://<64 hex>` (empty while starting).
    #[serde(rename = "containerID", deserialize_with = "nullable")]
    pub container_id: String,
    /// `image` as the runtime reports it.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// `imageID` (a digest reference; empty while pulling).
    #[serde(rename = "imageID", deserialize_with = "nullable")]
    pub image_id: String,
}

/// A `v1.Node`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Node {
    /// `metadata`.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
}

/// A `v1.Namespace` (its metadata: name, labels, annotations).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Namespace {
    /// `metadata`.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
}

/// A `v1.ConfigMap` (text data only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ConfigMap {
    /// `metadata`.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// `data`.
    #[serde(deserialize_with = "nullable")]
    pub data: BTreeMap<String, String>,
}

/// `status` of an `authentication.k8s.io/v1` TokenReview.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TokenReviewStatus {
    /// Whether the token is valid.
    pub authenticated: bool,
    /// The audiences the token was validated for.
    #[serde(deserialize_with = "nullable")]
    pub audiences: Vec<String>,
    /// Who the token belongs to.
    #[serde(deserialize_with = "nullable")]
    pub user: UserInfo,
    /// Why the review failed (authenticator errors, e.g. an expired token).
    #[serde(deserialize_with = "nullable")]
    pub error: String,
}

/// `status.user` of a TokenReview.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct UserInfo {
    /// e.g. `system:serviceaccount:<ns>:<sa>`.
    #[serde(deserialize_with = "nullable")]
    pub username: String,
    /// The user's UID.
    #[serde(deserialize_with = "nullable")]
    pub uid: String,
    /// Groups the user belongs to.
    #[serde(deserialize_with = "nullable")]
    pub groups: Vec<String>,
    /// Extra attributes, e.g. `authentication.kubernetes.io/pod-name`.
    #[serde(deserialize_with = "nullable")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A `meta/v1` `Status`: the body of every apiserver error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Status {
    /// `Status`.
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// `Success` or `Failure`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// The human-readable description, e.g. `configmaps "x" not found`.
    #[serde(deserialize_with = "nullable")]
    pub message: String,
    /// The machine-readable reason, e.g. `NotFound`.
    #[serde(deserialize_with = "nullable")]
    pub reason: String,
    /// What the status is about.
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    pub code: u16,
}

/// `details` of a `Status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct StatusDetails {
    /// The object's name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The object's API group.
    #[serde(deserialize_with = "nullable")]
    pub group: String,
    /// The resource (plural, e.g. `configmaps`).
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// The object's UID.
    #[serde(deserialize_with = "nullable")]
    pub uid: String,
}

/// `null` decodes as the default, as Go's decoder does for nil maps, slices and strings.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_decode_from_the_wire_shape_ignoring_unknown_fields() {
        let pod: Pod = serde_json::from_str(
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns","uid":"u",
              "resourceVersion":"7","creationTimestamp":"2026-01-01T00:00:00Z","labels":{"a":"b"},
              "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"ru","controller":true}]},
              "spec":{"serviceAccountName":"sa","nodeName":"n1","containers":[{"name":"c"}]},
              "status":{"phase":"Running","hostIP":"10.0.0.5",
                "containerStatuses":[{"name":"c","containerID":"containerd://ab","image":"img","imageID":"img@sha256:00","ready":true}],
                "initContainerStatuses":null}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.resource_version, "7");
        assert_eq!(pod.metadata.labels["a"], "b");
        assert_eq!(pod.metadata.owner_references[0].controller, Some(true));
        assert_eq!(
            pod.metadata.creation_timestamp.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(pod.spec.node_name, "n1");
        assert_eq!(pod.status.host_ip, "10.0.0.5");
        assert_eq!(
            pod.status.container_statuses[0].container_id,
            "containerd://ab"
        );
        assert_eq!(pod.status.container_statuses[0].image_id, "img@sha256:00");
        assert!(pod.status.init_container_statuses.is_empty());
    }

    #[test]
    fn nulls_and_absent_fields_decode_to_defaults() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":null,"labels":null,"ownerReferences":null},"spec":null}"#,
        )
        .unwrap();
        assert_eq!(pod, Pod::default());
        let review: TokenReviewStatus =
            serde_json::from_str(r#"{"user":{},"error":"invalid bearer token"}"#).unwrap();
        assert!(!review.authenticated);
        assert_eq!(review.error, "invalid bearer token");
    }
}
