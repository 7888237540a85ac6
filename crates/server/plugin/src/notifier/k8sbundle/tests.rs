//! k8sbundle against a test kube-apiserver: SPIRE's read-modify-write of an existing
//! ConfigMap, conflicts retried, a missing ConfigMap an error.

use serde_json::json;
use spire_test_k8s::{Fault, TestApiServer, config_map_json};

use super::*;
use crate::test_bundle::bundle;

const PATH: &str = "/api/v1/namespaces/spire/configmaps/trust-bundle";

async fn notifier(api: &TestApiServer, dir: &std::path::Path) -> K8sBundleNotifier {
    let config = K8sBundleConfig::from_plugin_data(&json!({
        "namespace": "spire",
        "config_map": "trust-bundle",
        "config_map_key": "root-cert.pem",
        "kube_config_file_path": api.kubeconfig(dir).to_str().unwrap(),
    }))
    .unwrap();
    K8sBundleNotifier::new(&config).unwrap()
}

#[tokio::test]
async fn writes_the_pem_roots_with_a_strategic_merge_patch_on_the_resource_version() {
    let api = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let stored = api.put_config_map(config_map_json(
        "spire",
        "trust-bundle",
        &[("other", "kept")],
    ));
    let notifier = notifier(&api, dir.path()).await;
    let bundle = bundle(2);

    notifier.bundle_loaded(&bundle).await.unwrap();
    let config_map = api.get_object(PATH).unwrap();
    assert_eq!(
        config_map["data"]["root-cert.pem"],
        bundle.x509_authorities_pem()
    );
    assert_eq!(config_map["data"]["other"], "kept");
    // Two certificates, no JWT key material.
    assert_eq!(
        bundle
            .x509_authorities_pem()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );

    let patch = api
        .requests_to(PATH)
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let body = patch.json().unwrap();
    assert_eq!(
        body["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );
    assert_eq!(body["data"]["root-cert.pem"], bundle.x509_authorities_pem());

    // A rotation: the next notification replaces the key's value.
    let rotated = bundle_with_more_roots();
    notifier.bundle_updated(&rotated).await.unwrap();
    assert_eq!(
        api.get_object(PATH).unwrap()["data"]["root-cert.pem"],
        rotated.x509_authorities_pem()
    );
}

fn bundle_with_more_roots() -> Bundle {
    bundle(3)
}

#[tokio::test]
async fn a_conflict_is_retried_and_a_missing_config_map_is_an_error() {
    let api = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    api.put_config_map(config_map_json("spire", "trust-bundle", &[]));
    let notifier = notifier(&api, dir.path()).await;

    // Another writer got in between our GET and our PATCH, twice.
    api.inject(Fault::status(PATH, 409).method("PATCH").times(2));
    notifier.bundle_updated(&bundle(1)).await.unwrap();
    let patches = api
        .requests_to(PATH)
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 3);
    assert!(api.get_object(PATH).unwrap()["data"]["root-cert.pem"].is_string());

    // k8sbundle never creates the ConfigMap: it must exist (the manifests create it).
    api.delete_object(PATH);
    let err = notifier.bundle_loaded(&bundle(1)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("configmaps \"trust-bundle\" not found"),
        "{err}"
    );
}

#[test]
fn configuration_defaults_and_clusters() {
    // No keys: the default target, in-cluster.
    let config = K8sBundleConfig::from_plugin_data(&json!({})).unwrap();
    assert_eq!(
        config.clusters,
        [K8sBundleCluster {
            namespace: "spire".into(),
            config_map: "spire-bundle".into(),
            config_map_key: "bundle.crt".into(),
            kube_config_file_path: None,
        }]
    );
    // Only clusters: no top-level target; each cluster needs its kubeconfig.
    let config = K8sBundleConfig::from_plugin_data(&json!({
        "clusters": [{ "kube_config_file_path": "/k/one", "namespace": "ns1" }],
    }))
    .unwrap();
    assert_eq!(config.clusters.len(), 1);
    assert_eq!(config.clusters[0].namespace, "ns1");
    assert_eq!(config.clusters[0].config_map, "spire-bundle");
    let err = K8sBundleConfig::from_plugin_data(&json!({ "clusters": [{ "namespace": "x" }] }))
        .unwrap_err();
    assert!(err.contains("kube_config_file_path"), "{err}");
    // A top-level key and clusters: both targets.
    let config = K8sBundleConfig::from_plugin_data(&json!({
        "namespace": "spire",
        "clusters": [{ "kube_config_file_path": "/k/one" }],
    }))
    .unwrap();
    assert_eq!(config.clusters.len(), 2);
    // Labelled webhooks are refused by name, never ignored.
    let err = K8sBundleConfig::from_plugin_data(&json!({ "webhook_label": "spiffe.io/webhook" }))
        .unwrap_err();
    assert!(err.starts_with("webhook_label is not supported"), "{err}");
}
