//! Shared by the `k8s` attestor's integration tests: a pod as the kubelet lists it, the
//! selectors SPIRE derives from it, and attestors built from plugin data.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use spire_agent_plugin::workloadattestor::WorkloadAttestor;
use spire_agent_plugin::workloadattestor::k8s::{K8sAttestor, K8sConfig, K8sOptions};
use spire_test_k8s::PodBuilder;

pub(crate) const POD_UID: &str = "7d9c5b2e-3f41-4a8e-9c1d-2b6f8e0a4c31";
pub(crate) const CONTAINER_ID: &str =
    "4f7e9a1c2b3d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
pub(crate) const PID: i32 = 4242;

/// The workload's pod: one app container, an init container, a label, a ReplicaSet owner.
pub(crate) fn pod(uid: &str, container_id: &str) -> Value {
    PodBuilder::new("web-6d4cf56db6-x7k2p", "shop", uid)
        .node("node-1")
        .service_account("web")
        .label("app", "web")
        .owner(
            "ReplicaSet",
            "web-6d4cf56db6",
            "0b1c2d3e-0000-4000-8000-000000000001",
        )
        .init_container(
            "migrate",
            "containerd://1111111111111111111111111111111111111111111111111111111111111111",
            "docker.io/library/busybox:1.36",
            "docker.io/library/busybox@sha256:aaaa",
        )
        .container(
            "web",
            &format!("containerd://{container_id}"),
            "docker.io/library/nginx:1.25",
            "docker.io/library/nginx@sha256:bbbb",
        )
        .build()
}

/// Every selector SPIRE gives the `web` container of [`pod`], in order.
pub(crate) fn expected_selectors(uid: &str) -> Vec<String> {
    [
        "k8s:sa:web".to_owned(),
        "k8s:ns:shop".to_owned(),
        "k8s:node-name:node-1".to_owned(),
        format!("k8s:pod-uid:{uid}"),
        "k8s:pod-name:web-6d4cf56db6-x7k2p".to_owned(),
        "k8s:pod-image-count:1".to_owned(),
        "k8s:pod-init-image-count:1".to_owned(),
        "k8s:pod-image:docker.io/library/nginx:1.25".to_owned(),
        "k8s:pod-image:docker.io/library/nginx@sha256:bbbb".to_owned(),
        "k8s:pod-init-image:docker.io/library/busybox:1.36".to_owned(),
        "k8s:pod-init-image:docker.io/library/busybox@sha256:aaaa".to_owned(),
        "k8s:pod-label:app:web".to_owned(),
        "k8s:pod-owner:ReplicaSet:web-6d4cf56db6".to_owned(),
        "k8s:pod-owner-uid:ReplicaSet:0b1c2d3e-0000-4000-8000-000000000001".to_owned(),
        "k8s:container-name:web".to_owned(),
        "k8s:container-image:docker.io/library/nginx:1.25".to_owned(),
        "k8s:container-image:docker.io/library/nginx@sha256:bbbb".to_owned(),
    ]
    .into()
}

/// A /proc with one process, [`PID`], in the container.
pub(crate) fn fake_proc() -> tempfile::TempDir {
    let proc = tempfile::tempdir().unwrap();
    let dir = proc.path().join(PID.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cgroup"),
        format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER_ID}.scope\n", POD_UID.replace('-', "_")),
    )
    .unwrap();
    proc
}

/// Options reading `proc_root`, with no node name in the environment.
pub(crate) fn options(proc_root: &Path) -> K8sOptions {
    K8sOptions {
        proc_root: proc_root.to_owned(),
        env: std::sync::Arc::new(|_| None),
        ..K8sOptions::default()
    }
}

/// An attestor from `plugin_data`.
pub(crate) fn attestor(plugin_data: Value, options: K8sOptions) -> K8sAttestor {
    K8sAttestor::new(K8sConfig::from_plugin_data(&plugin_data).unwrap(), options).unwrap()
}

/// The attestation of `pid`, as `type:value` strings.
pub(crate) async fn attest(
    attestor: &K8sAttestor,
    pid: i32,
) -> Result<Vec<String>, spire_agent_plugin::Error> {
    attestor
        .attest(pid)
        .await
        .map(|selectors| selectors.iter().map(ToString::to_string).collect())
}

/// Writes `contents` to `dir/name` and returns the path as a string.
pub(crate) fn file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

/// Moves the tokio clock forward by `by` without pausing it for good (the HTTP exchanges in
/// these tests need real time; only the attestor's intervals are skipped).
pub(crate) async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}
