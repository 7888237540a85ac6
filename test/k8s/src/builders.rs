//! Realistic Kubernetes JSON for tests: pods as the kubelet and apiserver return them,
//! nodes, namespaces, Endpoints, ConfigMaps and TokenReview users.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Builds a pod in the wire shape of the kubelet's PodList items (and of `GET pod`).
#[derive(Clone, Debug)]
pub struct PodBuilder {
    name: String,
    namespace: String,
    uid: String,
    node_name: Option<String>,
    service_account: String,
    host_ip: Option<String>,
    pod_ip: Option<String>,
    hostname: Option<String>,
    phase: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owners: Vec<Value>,
    containers: Vec<ContainerSpec>,
    init_containers: Vec<ContainerSpec>,
}

#[derive(Clone, Debug)]
struct ContainerSpec {
    name: String,
    container_id: String,
    image: String,
    image_id: String,
}

// === impl PodBuilder ===

impl PodBuilder {
    /// A running pod `namespace/name` with `uid`, service account `default`, no containers.
    pub fn new(name: &str, namespace: &str, uid: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: uid.to_owned(),
            node_name: None,
            service_account: "default".to_owned(),
            host_ip: None,
            pod_ip: None,
            hostname: None,
            phase: "Running".to_owned(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            owners: Vec::new(),
            containers: Vec::new(),
            init_containers: Vec::new(),
        }
    }

    /// `spec.nodeName`.
    pub fn node(mut self, node_name: &str) -> Self {
        self.node_name = Some(node_name.to_owned());
        self
    }

    /// `spec.serviceAccountName`.
    pub fn service_account(mut self, name: &str) -> Self {
        self.service_account = name.to_owned();
        self
    }

    /// `status.hostIP`.
    pub fn host_ip(mut self, ip: &str) -> Self {
        self.host_ip = Some(ip.to_owned());
        self
    }

    /// `status.podIP`.
    pub fn pod_ip(mut self, ip: &str) -> Self {
        self.pod_ip = Some(ip.to_owned());
        self
    }

    /// `spec.hostname`.
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.hostname = Some(hostname.to_owned());
        self
    }

    /// `status.phase` (default `Running`).
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.to_owned();
        self
    }

    /// A `metadata.labels` entry.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A `metadata.annotations` entry.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A controller owner reference (`apiVersion` from the kind: `apps/v1` for ReplicaSet,
    /// DaemonSet, StatefulSet and Deployment, `batch/v1` for Job and CronJob, else `v1`).
    pub fn owner(mut self, kind: &str, name: &str, uid: &str) -> Self {
        let api_version = match kind {
            "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Deployment" => "apps/v1",
            "Job" | "CronJob" => "batch/v1",
            _ => "v1",
        };
        self.owners.push(json!({
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }));
        self
    }

    /// A container in `spec.containers` and `status.containerStatuses` (running when
    /// `container_id_url`, e.g. `containerd://<64 hex>`, is set; waiting when empty).
    pub fn container(
        mut self,
        name: &str,
        container_id_url: &str,
        image: &str,
        image_id: &str,
    ) -> Self {
        self.containers
            .push(ContainerSpec::new(name, container_id_url, image, image_id));
        self
    }

    /// An init container in `spec.initContainers` and `status.initContainerStatuses`
    /// (terminated with exit code 0 when `container_id_url` is set).
    pub fn init_container(
        mut self,
        name: &str,
        container_id_url: &str,
        image: &str,
        image_id: &str,
    ) -> Self {
        self.init_containers
            .push(ContainerSpec::new(name, container_id_url, image, image_id));
        self
    }

    /// The pod JSON.
    pub fn build(self) -> Value {
        let mut metadata = json!({
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
        });
        if !self.labels.is_empty() {
            metadata["labels"] = json!(self.labels);
        }
        if !self.annotations.is_empty() {
            metadata["annotations"] = json!(self.annotations);
        }
        if !self.owners.is_empty() {
            metadata["ownerReferences"] = Value::Array(self.owners);
        }

        let mut spec = Map::new();
        spec.insert(
            "containers".into(),
            self.containers.iter().map(ContainerSpec::spec).collect(),
        );
        if !self.init_containers.is_empty() {
            spec.insert(
                "initContainers".into(),
                self.init_containers
                    .iter()
                    .map(ContainerSpec::spec)
                    .collect(),
            );
        }
        spec.insert("serviceAccountName".into(), self.service_account.into());
        if let Some(node) = self.node_name {
            spec.insert("nodeName".into(), node.into());
        }
        if let Some(hostname) = self.hostname {
            spec.insert("hostname".into(), hostname.into());
        }

        let mut status = Map::new();
        status.insert("phase".into(), self.phase.into());
        if let Some(ip) = self.host_ip {
            status.insert("hostIP".into(), ip.clone().into());
            status.insert("hostIPs".into(), json!([{"ip": ip}]));
        }
        if let Some(ip) = self.pod_ip {
            status.insert("podIP".into(), ip.into());
        }
        if !self.init_containers.is_empty() {
            status.insert(
                "initContainerStatuses".into(),
                self.init_containers
                    .iter()
                    .map(|c| c.status(true))
                    .collect(),
            );
        }
        if !self.containers.is_empty() {
            status.insert(
                "containerStatuses".into(),
                self.containers.iter().map(|c| c.status(false)).collect(),
            );
        }
        json!({"metadata": metadata, "spec": spec, "status": status})
    }
}

// === impl ContainerSpec ===

impl ContainerSpec {
    fn new(name: &str, container_id: &str, image: &str, image_id: &str) -> Self {
        Self {
            name: name.to_owned(),
            container_id: container_id.to_owned(),
            image: image.to_owned(),
            image_id: image_id.to_owned(),
        }
    }

    fn spec(&self) -> Value {
        json!({"name": self.name, "image": self.image, "imagePullPolicy": "IfNotPresent"})
    }

    fn status(&self, init: bool) -> Value {
        let started = !self.container_id.is_empty();
        let state = match (started, init) {
            (false, _) => json!({"waiting": {"reason": "ContainerCreating"}}),
            (true, false) => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
            (true, true) => json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        };
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": started && !init,
            "restartCount": 0,
            "started": started && !init,
            "state": state,
        });
        if started {
            status["containerID"] = self.container_id.clone().into();
        }
        status
    }
}

/// A node with `uid` and `labels`.
pub fn node_json(name: &str, uid: &str, labels: &[(&str, &str)]) -> Value {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid, "labels": labels},
        "spec": {},
        "status": {"nodeInfo": {"kubeletVersion": "v1.33.0"}},
    })
}

/// A ConfigMap holding `data`.
pub fn config_map_json(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    })
}

/// `system:serviceaccount:<namespace>:<service_account>`.
pub fn service_account_username(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// The `status.user` of a TokenReview of a projected service-account token bound to a pod,
/// as a current apiserver returns it (with node and credential-id extras).
pub fn token_review_user(
    namespace: &str,
    service_account: &str,
    pod_name: &str,
    pod_uid: &str,
    node_name: &str,
    node_uid: &str,
) -> Value {
    json!({
        "username": service_account_username(namespace, service_account),
        "uid": stable_uid(&format!("{namespace}/{service_account}")),
        "groups": [
            "system:serviceaccounts",
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated",
        ],
        "extra": {
            "authentication.kubernetes.io/credential-id": [format!("JTI={}", stable_uid(pod_uid))],
            "authentication.kubernetes.io/node-name": [node_name],
            "authentication.kubernetes.io/node-uid": [node_uid],
            "authentication.kubernetes.io/pod-name": [pod_name],
            "authentication.kubernetes.io/pod-uid": [pod_uid],
        },
    })
}

/// A UID-shaped string derived from `seed` (FNV-1a), the same on every call.
fn stable_uid(seed: &str) -> String {
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for byte in seed.bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Builder::from_u128(hash)
        .with_variant(uuid::Variant::RFC4122)
        .with_version(uuid::Version::Random)
        .into_uuid()
        .to_string()
}

/// An active namespace with `labels`, as `GET namespace` returns it.
pub fn namespace_json(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut all: BTreeMap<&str, &str> = labels.iter().copied().collect();
    all.entry("kubernetes.io/metadata.name").or_insert(name);
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": all},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// Builds an Endpoints object (`/api/v1/namespaces/<ns>/endpoints/<service>`) as the
/// endpoints controller writes it: one subset with ready and not-ready addresses (each with
/// a pod `targetRef`) and ports.
#[derive(Clone, Debug)]
pub struct EndpointsBuilder {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    addresses: Vec<Value>,
    not_ready: Vec<Value>,
    ports: Vec<Value>,
}

// === impl EndpointsBuilder ===

impl EndpointsBuilder {
    /// The Endpoints of Service `namespace/name`, without addresses or ports.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            labels: BTreeMap::new(),
            addresses: Vec::new(),
            not_ready: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// A ready address `ip` of pod `pod_name` (`pod_uid`) on `node` (omitted when empty).
    pub fn address(mut self, ip: &str, pod_name: &str, pod_uid: &str, node: &str) -> Self {
        let address = self.address_json(ip, Some((pod_name, pod_uid)), node);
        self.addresses.push(address);
        self
    }

    /// A not-ready address `ip` of pod `pod_name` (`pod_uid`) on `node` (omitted when empty).
    pub fn not_ready_address(
        mut self,
        ip: &str,
        pod_name: &str,
        pod_uid: &str,
        node: &str,
    ) -> Self {
        let address = self.address_json(ip, Some((pod_name, pod_uid)), node);
        self.not_ready.push(address);
        self
    }

    /// A ready address without a `targetRef` (e.g. a manually managed endpoint).
    pub fn address_without_target(mut self, ip: &str) -> Self {
        let address = self.address_json(ip, None, "");
        self.addresses.push(address);
        self
    }

    /// A TCP port (`name` omitted when empty).
    pub fn port(mut self, name: &str, port: u16) -> Self {
        let mut entry = json!({"port": port, "protocol": "TCP"});
        if !name.is_empty() {
            entry["name"] = name.into();
        }
        self.ports.push(entry);
        self
    }

    /// A `metadata.labels` entry.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    fn address_json(&self, ip: &str, pod: Option<(&str, &str)>, node: &str) -> Value {
        let mut address = json!({"ip": ip});
        if !node.is_empty() {
            address["nodeName"] = node.into();
        }
        if let Some((name, uid)) = pod {
            address["targetRef"] = json!({
                "kind": "Pod",
                "namespace": self.namespace,
                "name": name,
                "uid": uid,
            });
        }
        address
    }

    /// The Endpoints JSON (no `subsets` when there are no addresses, as for a Service
    /// without ready or pending pods).
    pub fn build(self) -> Value {
        let mut metadata = json!({"name": self.name, "namespace": self.namespace});
        if !self.labels.is_empty() {
            metadata["labels"] = json!(self.labels);
        }
        let mut endpoints = json!({"kind": "Endpoints", "apiVersion": "v1", "metadata": metadata});
        if !self.addresses.is_empty() || !self.not_ready.is_empty() {
            let mut subset = Map::new();
            if !self.addresses.is_empty() {
                subset.insert("addresses".into(), Value::Array(self.addresses));
            }
            if !self.not_ready.is_empty() {
                subset.insert("notReadyAddresses".into(), Value::Array(self.not_ready));
            }
            if !self.ports.is_empty() {
                subset.insert("ports".into(), Value::Array(self.ports));
            }
            endpoints["subsets"] = json!([subset]);
        }
        endpoints
    }
}
