//! The real `kubectl` against the test kube-apiserver, with a kubeconfig pointing at it and
//! validation on (kubectl's default `--validate=strict`): discovery, the OpenAPI v3 documents
//! that make kubectl leave validation to the server, strict field validation with the
//! apiserver's errors, `apply -f` / `apply -k` (created, unchanged, configured), `get`
//! (server-side tables), `delete` (with kubectl's wait for the object to go), namespace
//! deletion that empties the namespace, CRD deletion that waits for its objects'
//! finalizers, and the repository's manifests applied as the deploy README says.
//!
//! Needs `kubectl` (skips without it, fails under `CI=true`).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

use std::path::{Path, PathBuf};

use serde_json::Value;
use spire_test_k8s::{Kubectl, TestApiServer};

/// kubectl for `apiserver`; `None` (skipped, a failure under CI) without kubectl.
fn kubectl(apiserver: &TestApiServer, dir: &Path) -> Option<Kubectl> {
    if let Some(reason) = Kubectl::unavailable() {
        spire_test::skip(&reason);
        return None;
    }
    Some(Kubectl::new(apiserver, dir))
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .canonicalize()
        .unwrap()
}

const NAMESPACE_AND_CONFIG: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  colour: blue
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: demo
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
        - name: agent
          image: example/agent:1
          args: ["-config", "/etc/agent.conf"]
          resources:
            limits: {memory: 64Mi, cpu: 1}
"#;

/// A SpiffeID whose finalizer holds it (what the registrar's objects carry).
const SPIFFE_ID: &str = r#"
apiVersion: spiffeid.spiffe.io/v1beta1
kind: SpiffeID
metadata:
  name: sleep
  namespace: demo
  finalizers: [finalizers.spiffeid.spiffe.io]
spec:
  spiffeId: spiffe://example.org/ns/demo/sa/sleep
  parentId: spiffe://example.org/spire/server
  selector:
    namespace: demo
"#;

/// Runs the blocking kubectl steps off the runtime the apiserver is served on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_and_deletes_with_server_side_validation() {
    let apiserver = std::sync::Arc::new(TestApiServer::start().await);
    let dir = tempfile::tempdir().unwrap();
    let Some(kubectl) = kubectl(&apiserver, dir.path()) else {
        return;
    };
    let api = apiserver.clone();
    blocking(move || {
        let k = &kubectl;
        // Created, then unchanged, then configured.
        let out = k.ok(&["apply", "-f", "-"], Some(NAMESPACE_AND_CONFIG));
        for line in [
            "namespace/demo created",
            "configmap/settings created",
            "daemonset.apps/agent created",
        ] {
            assert!(out.contains(line), "{out}");
        }
        let out = k.ok(&["apply", "-f", "-"], Some(NAMESPACE_AND_CONFIG));
        assert!(out.contains("configmap/settings unchanged"), "{out}");
        assert!(out.contains("daemonset.apps/agent unchanged"), "{out}");
        let green = NAMESPACE_AND_CONFIG.replace("colour: blue", "colour: green");
        let out = k.ok(&["apply", "-f", "-"], Some(&green));
        assert!(out.contains("configmap/settings configured"), "{out}");
        let stored = api
            .get_object("/api/v1/namespaces/demo/configmaps/settings")
            .unwrap();
        assert_eq!(stored["data"]["colour"], "green");
        assert!(
            stored["metadata"]["annotations"]
                ["kubectl.kubernetes.io/last-applied-configuration"]
                .is_string()
        );

        // Strict validation, on the server: unknown fields of a built-in kind, in a patch
        // of an existing object and in a new one...
        let typo = green.replace("          args:", "          argz:");
        let err = k.fails(&["apply", "-f", "-"], Some(&typo));
        assert!(
            err.contains(
                "error when patching \"STDIN\": strict decoding error: unknown field \
                 \"spec.template.spec.containers[0].argz\""
            ),
            "{err}"
        );
        let typo = typo.replace("name: agent\n  namespace", "name: agent-2\n  namespace");
        let err = k.fails(&["apply", "-f", "-"], Some(&typo));
        assert!(
            err.contains(
                "error when creating \"STDIN\": DaemonSet in version \"v1\" cannot be handled \
                 as a DaemonSet: strict decoding error: unknown field \
                 \"spec.template.spec.containers[0].argz\""
            ),
            "{err}"
        );
        assert!(
            api.get_object("/apis/apps/v1/namespaces/demo/daemonsets/agent-2")
                .is_none()
        );
        // ... and of a custom resource, from its CRD's schema.
        let crd = std::fs::read_to_string(deploy_dir().join("crds/spiffeid.spiffe.io_spiffeids.yaml"))
            .unwrap();
        let out = k.ok(&["apply", "-f", "-"], Some(&crd));
        assert!(
            out.contains("customresourcedefinition.apiextensions.k8s.io/spiffeids.spiffeid.spiffe.io created"),
            "{out}"
        );
        let err = k.fails(
            &["apply", "-f", "-"],
            Some(&SPIFFE_ID.replace("  parentId:", "  parentID:")),
        );
        assert!(
            err.contains(
                "SpiffeID in version \"v1beta1\" cannot be handled as a SpiffeID: strict \
                 decoding error: unknown field \"spec.parentID\""
            ),
            "{err}"
        );
        let out = k.ok(&["apply", "-f", "-"], Some(SPIFFE_ID));
        assert!(out.contains("spiffeid.spiffeid.spiffe.io/sleep created"), "{out}");

        // Server-side tables.
        let out = k.ok(&["get", "configmaps", "-n", "demo"], None);
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "AGE"], "{out}");
        assert!(out.lines().any(|l| l.starts_with("settings ")), "{out}");
        let out = k.ok(&["get", "spiffeid", "sleep", "-n", "demo"], None);
        assert!(out.lines().nth(1).unwrap().starts_with("sleep "), "{out}");
        let out = k.ok(&["get", "ds", "-n", "demo", "-o", "name"], None);
        assert_eq!(out.trim(), "daemonset.apps/agent");

        // Deleting the CRD deletes its objects; the finalizer holds the SpiffeID (and so the
        // CRD) until whoever owns it clears it.
        let out = k.ok(
            &["delete", "crd", "spiffeids.spiffeid.spiffe.io", "--wait=false"],
            None,
        );
        assert!(out.contains("deleted"), "{out}");
        let held = api
            .get_object("/apis/spiffeid.spiffe.io/v1beta1/namespaces/demo/spiffeids/sleep")
            .unwrap();
        assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
        // Meanwhile no new object of the terminating CRD is accepted.
        let err = k.fails(
            &["create", "-f", "-"],
            Some(&SPIFFE_ID.replace("name: sleep", "name: late")),
        );
        assert!(
            err.contains("create not allowed while custom resource definition is terminating"),
            "{err}"
        );
        k.ok(
            &[
                "patch", "spiffeid", "sleep", "-n", "demo", "--type=merge", "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            None,
        );
        assert!(
            api.get_object("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/spiffeids.spiffeid.spiffe.io")
                .is_none()
        );
        // (kubectl may still hold the resource in its discovery cache: then the server's 404.)
        let err = k.fails(&["get", "spiffeids", "-A"], None);
        assert!(
            err.contains("the server doesn't have a resource type \"spiffeids\"")
                || err.contains("the server could not find the requested resource"),
            "{err}"
        );

        // Deleting the namespace empties it; kubectl waits until it is gone.
        let out = k.ok(&["delete", "namespace", "demo"], None);
        assert!(out.contains("namespace \"demo\" deleted"), "{out}");
        assert!(api.list_objects("/api/v1/namespaces/demo/configmaps").is_empty());
        assert!(api.list_objects("/apis/apps/v1/namespaces/demo/daemonsets").is_empty());
        let err = k.fails(&["get", "namespace", "demo"], None);
        assert!(err.contains("namespaces \"demo\" not found"), "{err}");
    })
    .await;
}

/// A layout rendered as the deploy README says
/// (`kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/<layout>`).
fn render(k: &Kubectl, layout: &str) -> String {
    let dir = deploy_dir().join(layout);
    k.capture(&[
        "kustomize",
        "--load-restrictor",
        "LoadRestrictionsNone",
        dir.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_manifests_apply_with_validation() {
    let apiserver = std::sync::Arc::new(TestApiServer::start().await);
    let dir = tempfile::tempdir().unwrap();
    let Some(kubectl) = kubectl(&apiserver, dir.path()) else {
        return;
    };
    blocking(move || {
        let k = &kubectl;
        // Layout (a), then the mesh side, then the clean-up the README gives.
        let objects = render(k, "quickstart-2022");
        let out = k.ok(&["apply", "-f", "-"], Some(&objects));
        let created = out.lines().filter(|l| l.ends_with(" created")).count();
        assert_eq!(
            created,
            objects.matches("\nkind: ").count() + usize::from(objects.starts_with("kind: ")),
            "{out}"
        );
        let out = k.ok(&["apply", "-f", "-"], Some(&render(k, "istio")));
        assert!(out.contains("deployment.apps/sleep created"), "{out}");
        let out = k.ok(&["delete", "-f", "-"], Some(&render(k, "istio")));
        assert!(out.contains("deleted"), "{out}");
        // The README's clean-up of layout (b) is the rendering piped to `kubectl delete`;
        // the namespace comes first and this apiserver empties it at once (a real one takes
        // a moment), hence `--ignore-not-found` there.
        let out = k.ok(&["delete", "--ignore-not-found", "-f", "-"], Some(&objects));
        assert!(out.contains("namespace \"spire\" deleted"), "{out}");

        // Layout (b), then its second step with `apply -k`.
        let objects = render(k, "quickstart");
        k.ok(&["apply", "-f", "-"], Some(&objects));
        let clusterspiffeid = deploy_dir().join("quickstart/clusterspiffeid");
        let out = k.ok(&["apply", "-k", clusterspiffeid.to_str().unwrap()], None);
        assert!(
            out.contains("clusterspiffeid.spire.spiffe.io/example created"),
            "{out}"
        );
        let out = k.ok(&["delete", "-k", clusterspiffeid.to_str().unwrap()], None);
        assert!(out.contains("deleted"), "{out}");
        k.ok(&["delete", "--ignore-not-found", "-f", "-"], Some(&objects));
    })
    .await;
    for path in [
        "/api/v1/namespaces",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    ] {
        let left: Vec<Value> = api_names(&apiserver, path);
        assert!(left.is_empty(), "{path}: {left:?}");
    }
}

fn api_names(apiserver: &TestApiServer, path: &str) -> Vec<Value> {
    apiserver
        .list_objects(path)
        .into_iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect()
}
