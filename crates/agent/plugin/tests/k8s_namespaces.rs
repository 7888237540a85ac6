//! `enable_namespace_labels` against a test kubelet and a test kube-apiserver over HTTPS:
//! the `ns-label` selectors, one GET for many attestations, and SPIRE's failures.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use spire_agent_plugin::Code;
use spire_agent_plugin::workloadattestor::k8s::{K8sAttestor, K8sOptions};
use spire_k8s::ClientConfig;
use spire_test_k8s::{Fault, TestApiServer, TestKubelet, TestKubeletAuth, TestKubeletConfig};
use support::*;

const SHOP: &str = "/api/v1/namespaces/shop";

struct Setup {
    apiserver: TestApiServer,
    _kubelet: TestKubelet,
    _proc: tempfile::TempDir,
    _dir: tempfile::TempDir,
    attestor: K8sAttestor,
}

/// A kubelet listing the `shop` pod, an apiserver holding the `shop` namespace with
/// `labels`, and an attestor with namespace labels on, pointed at both.
async fn setup(labels: Value) -> Setup {
    let kubelet = TestKubelet::start(TestKubeletConfig::new(
        "localhost",
        TestKubeletAuth::Anonymous,
    ))
    .await;
    kubelet.set_pods(vec![pod(POD_UID, CONTAINER_ID)]);
    let apiserver = TestApiServer::start().await;
    apiserver.put_object(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "labels": labels}}),
    );
    let proc = fake_proc();
    let dir = tempfile::tempdir().unwrap();
    let options = K8sOptions {
        apiserver: Some(ClientConfig::from_kubeconfig(&apiserver.kubeconfig(dir.path())).unwrap()),
        ..options(proc.path())
    };
    let attestor = attestor(
        json!({
            "kubelet_secure_port": kubelet.port(),
            "use_anonymous_authentication": true,
            "skip_kubelet_verification": true,
            "max_poll_attempts": 1,
            "enable_namespace_labels": true,
        }),
        options,
    );
    Setup {
        apiserver,
        _kubelet: kubelet,
        _proc: proc,
        _dir: dir,
        attestor,
    }
}

#[tokio::test]
async fn namespace_labels_are_appended_from_the_apiserver() {
    let setup = setup(json!({
        "kubernetes.io/metadata.name": "shop",
        "istio-injection": "enabled",
        "team": "payments",
    }))
    .await;
    let mut want = expected_selectors(POD_UID);
    want.extend([
        "k8s:ns-label:istio-injection:enabled".to_owned(),
        "k8s:ns-label:kubernetes.io/metadata.name:shop".to_owned(),
        "k8s:ns-label:team:payments".to_owned(),
    ]);
    assert_eq!(attest(&setup.attestor, PID).await.unwrap(), want);

    // Further attestations within the cache lifetime, concurrent ones included, cost no
    // further GET.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let attestor = setup.attestor.clone();
            tokio::spawn(async move { attest(&attestor, PID).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), want);
    }
    let requests = setup.apiserver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, SHOP);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {}", setup.apiserver.token()).as_str())
    );
}

#[tokio::test]
async fn apiserver_failures_fail_attestation_with_spires_message() {
    let setup = setup(json!({"team": "payments"})).await;
    setup.apiserver.inject(Fault::status(SHOP, 403).message(
        r#"namespaces "shop" is forbidden: User "system:serviceaccount:spire:spire-agent" cannot get resource "namespaces" in API group "" in the namespace "shop""#,
    ));
    let error = attest(&setup.attestor, PID).await.unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(
        error.to_string(),
        r#"unable to get namespace labels for "shop": unable to get namespace "shop": namespaces "shop" is forbidden: User "system:serviceaccount:spire:spire-agent" cannot get resource "namespaces" in API group "" in the namespace "shop""#
    );

    // A namespace the apiserver does not know fails the same way.
    let setup = setup_without_namespace().await;
    let error = attest(&setup.attestor, PID).await.unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(
        error.to_string(),
        r#"unable to get namespace labels for "shop": unable to get namespace "shop": namespaces "shop" not found"#
    );
}

async fn setup_without_namespace() -> Setup {
    let setup = setup(json!({})).await;
    setup.apiserver.delete_object(SHOP).unwrap();
    setup
}
