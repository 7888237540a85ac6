//! Validation with `kubernetes-validate` (Kubernetes' own schemas) and, for custom resources,
//! with `jsonschema` against our CRDs' openAPIV3Schema, through a small python3 program.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use spire_test::{manifest_objects, skip};

use super::objects::{deploy_dir, render};

/// The Kubernetes versions every rendered object is validated against: the oldest and a
/// recent one that `kubernetes-validate` 1.37 bundles schemas for.
pub(crate) const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.33.0"];

/// Validates each object: with kubernetes-validate (strict: unknown fields are errors) for
/// Kubernetes' own kinds, with jsonschema against the CRD's openAPIV3Schema for custom
/// resources (also strict, as `kubectl apply`'s field validation is). Prints one JSON result
/// per object; `{"missing": …}` when the modules are not installed.
pub(crate) const VALIDATE_PY: &str = r#"
import json, sys
try:
    import jsonschema
    import kubernetes_validate.utils as kv
except ImportError as e:
    print(json.dumps({"missing": str(e)}))
    sys.exit(0)

def strict(node):
    node = dict(node)
    if "properties" in node:
        node["properties"] = {k: strict(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    return node

req = json.load(sys.stdin)
schemas = {}
for crd in req["crds"]:
    for v in crd["spec"]["versions"]:
        key = (crd["spec"]["group"] + "/" + v["name"], crd["spec"]["names"]["kind"])
        schemas[key] = (crd["spec"]["scope"], strict(v["schema"]["openAPIV3Schema"]))
results = []
for obj in req["objects"]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    result = {"kind": obj.get("kind"), "name": obj.get("metadata", {}).get("name"), "errors": []}
    if key in schemas:
        scope, schema = schemas[key]
        result["by"] = "crd"
        if scope == "Cluster" and "namespace" in obj.get("metadata", {}):
            result["errors"].append("a cluster-scoped resource has a namespace")
        for err in jsonschema.Draft7Validator(schema).iter_errors(obj):
            result["errors"].append("/".join(map(str, err.absolute_path)) + ": " + err.message)
    else:
        result["by"] = "kubernetes"
        for version in req["versions"]:
            try:
                kv.validate(obj, version, strict=True)
            except kv.SchemaNotFoundError as e:
                result["errors"].append(e.message)
            except kv.ValidationError as e:
                result["errors"].append(version + " " + "/".join(map(str, e.absolute_path)) + ": " + e.message)
    results.append(result)
print(json.dumps({"results": results}))
"#;

/// Runs [`VALIDATE_PY`]; `None` (after [`skip`]) without python3 or its modules.
pub(crate) fn validate(objects: &[Value]) -> Option<Vec<Value>> {
    let crd_dir = deploy_dir().join("crds");
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(&crd_dir).expect("deploy/crds") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            crds.extend(manifest_objects(&path));
        }
    }
    let request = json!({"versions": KUBERNETES_VERSIONS, "crds": crds, "objects": objects});
    let mut child = match Command::new("python3")
        .args(["-c", VALIDATE_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("python3 is not installed (it runs kubernetes-validate)");
            return None;
        }
        Err(e) => panic!("running python3: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("writing to python3");
    let output = child.wait_with_output().expect("python3");
    assert!(output.status.success(), "the validator failed");
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the validator answers JSON");
    if let Some(missing) = answer["missing"].as_str() {
        skip(&format!(
            "{missing}: python3 -m pip install --break-system-packages 'kubernetes-validate==1.37.0'"
        ));
        return None;
    }
    Some(answer["results"].as_array().expect("results").clone())
}

/// A pod with what the `spire` sidecar template adds, so that its fragments are validated too.
pub(crate) fn injected_pod() -> Value {
    let operator = manifest_objects(&deploy_dir().join("istio/istio-spire-config.yaml"));
    let text = operator[0]["spec"]["values"]["sidecarInjectorWebhook"]["templates"]["spire"]
        .as_str()
        .expect("template");
    let mut fragment: Value = serde_saphyr::from_str(text).expect("template YAML");
    fragment["spec"]["containers"][0]["image"] = json!("docker.io/istio/proxyv2");
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "spire-template"}, "spec": fragment["spec"]})
}

// === the validation itself ===

#[test]
fn every_rendered_object_validates_against_kubernetes_and_crd_schemas() {
    let mut objects = Vec::new();
    for layout in [
        "quickstart-2022",
        "quickstart",
        "quickstart/clusterspiffeid",
        "istio",
    ] {
        let Some(rendered) = render(layout) else {
            return;
        };
        objects.extend(rendered);
    }
    objects.push(injected_pod());
    let Some(results) = validate(&objects) else {
        return;
    };
    assert_eq!(results.len(), objects.len());
    let failures: Vec<_> = results
        .iter()
        .filter(|r| r["errors"].as_array().is_some_and(|e| !e.is_empty()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let by_crd: Vec<_> = results
        .iter()
        .filter(|r| r["by"] == "crd")
        .map(|r| r["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        by_crd,
        ["ClusterSPIFFEID"],
        "the custom resources in deploy/"
    );
}

#[test]
fn the_validator_refuses_unknown_fields_and_missing_required_ones() {
    let cases = [
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {}}),
            "'spec' was unexpected",
        ),
        (
            json!({"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
                   "metadata": {"name": "x"}, "spec": {"podSelector": {}}}),
            "'spiffeIDTemplate' is a required property",
        ),
        (
            json!({"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
                   "metadata": {"name": "x"}, "spec": {"spiffeIDTemplate": "t", "ttlSeconds": 1}}),
            "'ttlSeconds' was unexpected",
        ),
        (
            json!({"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
                   "metadata": {"name": "x", "namespace": "default"}, "spec": {"spiffeIDTemplate": "t"}}),
            "cluster-scoped resource has a namespace",
        ),
    ];
    let objects: Vec<Value> = cases.iter().map(|(o, _)| o.clone()).collect();
    let Some(results) = validate(&objects) else {
        return;
    };
    for ((object, reason), result) in cases.iter().zip(&results) {
        let errors = result["errors"].to_string();
        assert!(errors.contains(reason), "{object}: {errors}");
    }
}
