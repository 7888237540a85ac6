//! k8s_configmap against a test kube-apiserver: server-side apply (creating the ConfigMap),
//! the three formats, and no republish of an unchanged bundle.

use serde_json::{Value, json};
use spire_test_k8s::{Fault, TestApiServer};

use super::*;
use crate::test_bundle::bundle;

const PATH: &str = "/api/v1/namespaces/spire/configmaps/spire-bundle";

fn publisher(api: &TestApiServer, dir: &std::path::Path, format: &str) -> K8sConfigMapPublisher {
    let config = K8sConfigMapConfig::from_plugin_data(&json!({
        "clusters": { "main": {
            "configmap_name": "spire-bundle",
            "configmap_key": "bundle",
            "namespace": "spire",
            "format": format,
            "kubeconfig_path": api.kubeconfig(dir).to_str().unwrap(),
        }},
    }))
    .unwrap();
    K8sConfigMapPublisher::new(&config).unwrap()
}

#[tokio::test]
async fn applies_creates_and_skips_an_unchanged_bundle() {
    let api = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let publisher = publisher(&api, dir.path(), "spiffe");
    let bundle = bundle(1);

    publisher.publish(&bundle).await.unwrap();
    let config_map = api.get_object(PATH).expect("created by the apply");
    let document: Value =
        serde_json::from_str(config_map["data"]["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(document["spiffe_sequence"], 3);
    assert_eq!(document["keys"].as_array().unwrap().len(), 2);
    let apply = &api.requests_to(PATH)[0];
    assert_eq!(apply.method, "PATCH");
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        apply
            .path
            .ends_with("?fieldManager=spire-bundlepublisher-k8s_configmap"),
        "{}",
        apply.path
    );

    // The same bundle again: nothing is sent.
    publisher.publish(&bundle).await.unwrap();
    assert_eq!(api.requests_to(PATH).len(), 1);

    // A failed publish is not remembered: the next call tries again.
    let changed = bundle_rotated();
    api.inject(Fault::status(PATH, 500));
    assert!(publisher.publish(&changed).await.is_err());
    publisher.publish(&changed).await.unwrap();
    assert_eq!(api.requests_to(PATH).len(), 3);
}

fn bundle_rotated() -> Bundle {
    let mut bundle = bundle(2);
    bundle.sequence_number = 4;
    bundle
}

#[test]
fn formats() {
    let bundle = bundle(1);
    assert_eq!(
        format_bundle(&bundle, BundleFormat::Pem, None),
        bundle.x509_authorities_pem()
    );
    let spiffe: Value = serde_json::from_str(&format_bundle(
        &bundle,
        BundleFormat::Spiffe,
        Some(Duration::from_secs(300)),
    ))
    .unwrap();
    assert_eq!(spiffe["spiffe_refresh_hint"], 300);
    let jwks: Value =
        serde_json::from_str(&format_bundle(&bundle, BundleFormat::Jwks, None)).unwrap();
    assert!(jwks.get("spiffe_sequence").is_none());
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.get("use").is_none()), "{jwks}");
}

#[test]
fn configuration_rules() {
    let err = K8sConfigMapConfig::from_plugin_data(&json!({
        "clusters": { "c": { "configmap_name": "x", "configmap_key": "k", "namespace": "n" } },
    }))
    .unwrap_err();
    assert_eq!(err, "missing format for cluster \"c\"");
    let err = K8sConfigMapConfig::from_plugin_data(&json!({
        "clusters": { "c": { "configmap_name": "x", "configmap_key": "k", "namespace": "n", "format": "der" } },
    }))
    .unwrap_err();
    assert!(err.starts_with("invalid bundle format \"der\""), "{err}");
    assert!(
        K8sConfigMapConfig::from_plugin_data(&json!({}))
            .unwrap()
            .clusters
            .is_empty()
    );
}
