//! The test conveniences: manifests, namespaces, Endpoints, awaiting a stored state, and the
//! manifests users really apply (from `../shared/testdata`, skipped when absent).

mod support;

use std::path::Path;

use serde_json::json;
use spire_test_k8s::{EndpointsBuilder, ManifestError, TestApiServer};
use support::{Client, MERGE_PATCH, names};

const MANIFEST: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
---
apiVersion: example.com/v1
kind: Gadget
metadata:
  name: g
spec: {size: 3}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: defaulted
data: {k: v}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: listed}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata: {name: r, namespace: listed}
---
"#;

#[tokio::test]
async fn manifests_are_stored_at_their_resource_paths() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let stored = server.apply_manifest(MANIFEST).unwrap();
    let kinds: Vec<&str> = stored.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "Gadget",
            "ConfigMap",
            "Namespace",
            "Role"
        ]
    );
    assert_eq!(stored[0]["status"]["conditions"][1]["type"], "Established");

    // The CRD declared its resource: cluster-scoped, with status, listed by kind.
    let list = client.list("/apis/example.com/v1/gadgets").await;
    assert_eq!(list["kind"], "GadgetList");
    assert_eq!(names(&list), ["g"]);
    let (code, gadget) = client
        .patch(
            "/apis/example.com/v1/gadgets/g/status",
            MERGE_PATCH,
            &json!({"status": {"ok": true}, "spec": {"size": 4}}),
        )
        .await;
    assert_eq!(code, 200, "{gadget}");
    assert_eq!(
        (
            gadget["status"]["ok"].as_bool(),
            gadget["spec"]["size"].as_i64()
        ),
        (Some(true), Some(3))
    );

    assert!(
        server
            .get_object("/api/v1/namespaces/default/configmaps/defaulted")
            .is_some()
    );
    assert!(
        server
            .get_object("/apis/rbac.authorization.k8s.io/v1/namespaces/listed/roles/r")
            .is_some()
    );

    // Applying again updates in place.
    let again = server.apply_manifest(MANIFEST).unwrap();
    assert_eq!(again[1]["metadata"]["uid"], stored[1]["metadata"]["uid"]);

    assert!(matches!(
        server.apply_manifest("kind: ConfigMap\nmetadata: {name: x}\n"),
        Err(ManifestError::Invalid { index: 0, .. })
    ));
    assert!(matches!(
        server.apply_manifest("a: [b"),
        Err(ManifestError::Parse(_))
    ));
}

#[tokio::test]
async fn namespaces_and_endpoints_have_their_real_shape() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    server.put_namespace("shop", &[("team", "a")]);
    let (_, namespace) = client.get("/api/v1/namespaces/shop").await;
    assert_eq!(namespace["kind"], "Namespace");
    assert_eq!(
        namespace["metadata"]["labels"],
        json!({"team": "a", "kubernetes.io/metadata.name": "shop"})
    );
    assert_eq!(namespace["status"]["phase"], "Active");
    let selected = client
        .list("/api/v1/namespaces?labelSelector=team%3Da")
        .await;
    assert_eq!(names(&selected), ["shop"]);

    server.put_endpoints(
        EndpointsBuilder::new("shop", "web")
            .address("10.1.0.5", "web-1", "uid-1", "node-1")
            .not_ready_address("10.1.0.6", "web-2", "uid-2", "")
            .port("http", 8080)
            .label("app", "web")
            .build(),
    );
    let (code, endpoints) = client.get("/api/v1/namespaces/shop/endpoints/web").await;
    assert_eq!(code, 200);
    assert_eq!(endpoints["kind"], "Endpoints");
    assert_eq!(
        endpoints["subsets"],
        json!([{
            "addresses": [{"ip": "10.1.0.5", "nodeName": "node-1",
                           "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-1"}}],
            "notReadyAddresses": [{"ip": "10.1.0.6",
                                   "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-2", "uid": "uid-2"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }])
    );
    let empty = EndpointsBuilder::new("shop", "idle").build();
    assert!(empty.get("subsets").is_none());

    let (code, version) = client.get("/version").await;
    assert_eq!((code, version["major"].as_str()), (200, Some("1")));
}

#[tokio::test]
async fn wait_for_returns_once_the_state_is_reached() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let path = "/api/v1/namespaces/spire/configmaps/c";

    let writes = async {
        client
            .create(
                "/api/v1/namespaces/spire/configmaps",
                &json!({"metadata": {"name": "c"}, "data": {"n": "1"}}),
            )
            .await;
        client
            .patch(path, MERGE_PATCH, &json!({"data": {"n": "2"}}))
            .await;
    };
    let (reached, ()) = tokio::join!(server.wait_for(path, |cm| cm["data"]["n"] == "2"), writes);
    assert_eq!(reached["data"]["n"], "2");

    let d = json!({"metadata": {"name": "d"}});
    let (list, _) = tokio::join!(
        server.wait_for_list("/api/v1/namespaces/spire/configmaps", |items| items.len()
            == 2),
        client.create("/api/v1/namespaces/spire/configmaps", &d),
    );
    assert_eq!(list.len(), 2);

    let ((), (code, _)) = tokio::join!(server.wait_for_absent(path), client.delete(path));
    assert_eq!(code, 200);
    assert_eq!(
        server.wait_until(path, |object| object.is_none()).await,
        None
    );
}

#[tokio::test]
async fn the_manifests_users_apply_are_served() {
    let Some(crds) = spire_test::shared_testdata("upstream-crds") else {
        return;
    };
    let Some(istio) = spire_test::shared_testdata("istio-samples") else {
        return;
    };
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    for file in [
        "spire.spiffe.io_clusterspiffeids.yaml",
        "spire.spiffe.io_clusterfederatedtrustdomains.yaml",
        "spire.spiffe.io_clusterstaticentries.yaml",
        "spiffeid.spiffe.io_spiffeids.yaml",
    ] {
        let stored = server.apply_manifest(&read(&crds.join(file))).unwrap();
        assert_eq!(stored[0]["kind"], "CustomResourceDefinition", "{file}");
    }
    server
        .apply_manifest(&read(&istio.join("spire-quickstart.yaml")))
        .unwrap();
    server
        .apply_manifest(&read(&istio.join("clusterspiffeid.yaml")))
        .unwrap();

    let ids = client
        .list("/apis/spire.spiffe.io/v1alpha1/clusterspiffeids")
        .await;
    assert_eq!(names(&ids), ["example"]);
    let (code, _) = client
        .patch(
            "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/example/status",
            MERGE_PATCH,
            &json!({"status": {"stats": {"namespacesSelected": 1}}}),
        )
        .await;
    assert_eq!(code, 200, "the CRDs keep the status subresource");
    let (code, _) = client
        .get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/spire-controller-manager-webhook")
        .await;
    assert_eq!(code, 200);
    let config_maps = client.list("/api/v1/namespaces/spire/configmaps").await;
    assert!(names(&config_maps).contains(&"spire-controller-manager-config".to_owned()));
    let (code, _) = client
        .get("/apis/apps/v1/namespaces/spire/daemonsets/spire-agent")
        .await;
    assert_eq!(code, 200);
}
