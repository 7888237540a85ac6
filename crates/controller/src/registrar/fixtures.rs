//! Realistic objects from the 2022 Istio quickstart (Istio 1.14 `sleep` sample on a kind
//! cluster registered as `demo-cluster` in trust domain `example.org`).

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use serde_json::json;
use spire_id::TrustDomain;

use super::config::RegistrarSettings;

pub(crate) const SLEEP_POD: &str = "sleep-5f4d47c948-njvpk";
pub(crate) const SLEEP_POD_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
pub(crate) const NODE: &str = "kind-worker";
pub(crate) const NODE_UID: &str = "7b1e2f4c-3a5d-4e6f-8a9b-0c1d2e3f4a5b";
pub(crate) const REGISTRAR_NS: &str = "spire";

pub(crate) fn td() -> TrustDomain {
    TrustDomain::new("example.org").expect("valid trust domain")
}

/// The quickstart's registrar settings: everything default.
pub(crate) fn quickstart_settings() -> RegistrarSettings {
    RegistrarSettings::new(td(), "demo-cluster")
}

/// Settings that need no template engine: identity from the `spiffe.io/spiffe-id` annotation,
/// no DNS name templates.
pub(crate) fn annotation_settings() -> RegistrarSettings {
    RegistrarSettings {
        pod_annotation: "spiffe.io/spiffe-id".to_owned(),
        dns_name_templates: Some(Vec::new()),
        ..quickstart_settings()
    }
}

/// The running `sleep` pod as the apiserver returns it (trimmed to the fields that matter).
pub(crate) fn sleep_pod_json() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": SLEEP_POD,
            "generateName": "sleep-5f4d47c948-",
            "namespace": "default",
            "uid": SLEEP_POD_UID,
            "resourceVersion": "1523",
            "labels": {
                "app": "sleep",
                "pod-template-hash": "5f4d47c948",
                "security.istio.io/tlsMode": "istio",
                "service.istio.io/canonical-name": "sleep",
                "service.istio.io/canonical-revision": "latest"
            },
            "annotations": {
                "inject.istio.io/templates": "sidecar,spire",
                "sidecar.istio.io/status": "{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"]}"
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "sleep-5f4d47c948",
                "uid": "d9f1c7a2-5b8e-4c3d-9e0f-1a2b3c4d5e6f",
                "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "serviceAccountName": "sleep",
            "serviceAccount": "sleep",
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {"name": "sleep", "image": "curlimages/curl", "command": ["/bin/sleep", "3650d"]},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.14.0"}
            ],
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.14.0"}],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "workload-socket", "csi": {"driver": "csi.spiffe.io"}}
            ]
        },
        "status": {"phase": "Running", "hostIP": "172.18.0.3", "podIP": "10.244.1.5"}
    })
}

pub(crate) fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("pod JSON decodes")
}

pub(crate) fn sleep_pod() -> Pod {
    pod(sleep_pod_json())
}

/// `value` with `f` applied, for one-field variations of a fixture.
pub(crate) fn edit(
    mut value: serde_json::Value,
    f: impl FnOnce(&mut serde_json::Value),
) -> serde_json::Value {
    f(&mut value);
    value
}

pub(crate) fn node() -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "uid": NODE_UID,
            "labels": {
                "kubernetes.io/hostname": NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64"
            }
        },
        "spec": {"podCIDR": "10.244.1.0/24", "providerID": "kind://docker/kind/kind-worker"},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "172.18.0.3"},
            {"type": "Hostname", "address": NODE}
        ]}
    }))
    .expect("node JSON decodes")
}

/// The `sleep` service's endpoints: the sleep pod, plus a not-ready address and an address
/// without a target reference (both ignored).
pub(crate) fn sleep_endpoints() -> Endpoints {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "sleep", "namespace": "default", "labels": {"app": "sleep", "service": "sleep"}},
        "subsets": [{
            "addresses": [
                {"ip": "10.244.1.5", "nodeName": NODE, "targetRef": {
                    "kind": "Pod", "namespace": "default", "name": SLEEP_POD, "uid": SLEEP_POD_UID
                }},
                {"ip": "10.244.1.9"}
            ],
            "notReadyAddresses": [
                {"ip": "10.244.1.7", "nodeName": NODE, "targetRef": {
                    "kind": "Pod", "namespace": "default", "name": "sleep-5f4d47c948-qq8zt",
                    "uid": "0e1f2a3b-4c5d-4e6f-8a9b-112233445566"
                }}
            ],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
        }]
    }))
    .expect("endpoints JSON decodes")
}
