//! The CRDs we ship (`deploy/crds/`): structurally identical to the ones users already installed
//! (upstream's, from `../shared/testdata/upstream-crds/`), valid CustomResourceDefinitions, and in
//! lockstep with the Rust types of `spire_controller::crd`.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use spire_controller::crd::{
    BundleEndpointProfile, ClusterFederatedTrustDomain, ClusterFederatedTrustDomainSpec,
    ClusterSpiffeId, ClusterSpiffeIdSpec, ClusterSpiffeIdStats, ClusterSpiffeIdStatus,
    ClusterStaticEntry, ClusterStaticEntrySpec, ClusterStaticEntryStatus, SpiffeId,
    SpiffeIdSelector, SpiffeIdSpec, SpiffeIdStatus,
};

const CLUSTER_SPIFFE_IDS: &str = "spire.spiffe.io_clusterspiffeids.yaml";
const CLUSTER_FEDERATED_TRUST_DOMAINS: &str = "spire.spiffe.io_clusterfederatedtrustdomains.yaml";
const CLUSTER_STATIC_ENTRIES: &str = "spire.spiffe.io_clusterstaticentries.yaml";
const SPIFFE_IDS: &str = "spiffeid.spiffe.io_spiffeids.yaml";

/// The template of Istio's sample ClusterSPIFFEID.
const ISTIO_TEMPLATE: &str =
    "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}";

// === loading ===

fn ours(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/crds")
        .join(file)
}

/// The one object of a YAML file (empty documents, such as a leading `---`, are ignored).
fn single_object(path: &Path) -> Value {
    let mut objects: Vec<Value> = spire_test::manifest_objects(path)
        .into_iter()
        .filter(|o| !o.is_null())
        .collect();
    assert_eq!(objects.len(), 1, "{} holds one object", path.display());
    objects.remove(0)
}

fn from_yaml<T: DeserializeOwned>(text: &str) -> T {
    serde_saphyr::from_str(text).expect("sample YAML decodes")
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes to JSON")
}

// === structural diff ===

/// What must match upstream: the CRD without its `status`, its `metadata.annotations` and every
/// `description`.
fn structural(mut crd: Value) -> Value {
    if let Some(object) = crd.as_object_mut() {
        object.remove("status");
    }
    if let Some(metadata) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("annotations");
    }
    strip_descriptions(&mut crd);
    crd
}

/// Removes the `description` keyword everywhere, but not a property that happens to be named
/// `description` (the keys of a `properties` map are names, not keywords).
fn strip_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("description");
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("properties", Value::Object(properties)) => {
                        properties.values_mut().for_each(strip_descriptions);
                    }
                    (_, child) => strip_descriptions(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Appends one line per JSON path where `a` and `b` differ; `names` says what each side is.
fn differences(path: &str, a: &Value, b: &Value, names: [&str; 2], out: &mut Vec<String>) {
    let [a_name, b_name] = names;
    match (a, b) {
        (Value::Object(a_map), Value::Object(b_map)) => {
            for (key, av) in a_map {
                let at = format!("{path}.{key}");
                match b_map.get(key) {
                    Some(bv) => differences(&at, av, bv, names, out),
                    None => out.push(format!("{at}: only in {a_name}: {av}")),
                }
            }
            for (key, bv) in b_map {
                if !a_map.contains_key(key) {
                    out.push(format!("{path}.{key}: only in {b_name}: {bv}"));
                }
            }
        }
        (Value::Array(a_items), Value::Array(b_items)) => {
            for i in 0..a_items.len().max(b_items.len()) {
                let at = format!("{path}[{i}]");
                match (a_items.get(i), b_items.get(i)) {
                    (Some(av), Some(bv)) => differences(&at, av, bv, names, out),
                    (Some(av), None) => out.push(format!("{at}: only in {a_name}: {av}")),
                    (None, Some(bv)) => out.push(format!("{at}: only in {b_name}: {bv}")),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {a_name} {a}, {b_name} {b}")),
    }
}

fn assert_same_structure_as_upstream(file: &str) {
    let Some(dir) = spire_test::shared_testdata("upstream-crds") else {
        return;
    };
    let ours = structural(single_object(&ours(file)));
    let upstream = structural(single_object(&dir.join(file)));
    let mut diffs = Vec::new();
    differences("$", &ours, &upstream, ["ours", "upstream"], &mut diffs);
    assert!(
        diffs.is_empty(),
        "deploy/crds/{file} differs from upstream at {} path(s):\n  {}",
        diffs.len(),
        diffs.join("\n  ")
    );
}

#[test]
fn cluster_spiffe_ids_crd_matches_upstream() {
    assert_same_structure_as_upstream(CLUSTER_SPIFFE_IDS);
}

#[test]
fn cluster_federated_trust_domains_crd_matches_upstream() {
    assert_same_structure_as_upstream(CLUSTER_FEDERATED_TRUST_DOMAINS);
}

#[test]
fn cluster_static_entries_crd_matches_upstream() {
    assert_same_structure_as_upstream(CLUSTER_STATIC_ENTRIES);
}

#[test]
fn spiffe_ids_crd_matches_upstream() {
    assert_same_structure_as_upstream(SPIFFE_IDS);
}

#[test]
fn structural_view_ignores_prose_and_annotations_only() {
    let crd = serde_json::json!({
        "metadata": {"name": "x", "annotations": {"a": "b"}},
        "spec": {"properties": {"description": {"type": "string", "description": "prose"}}},
        "status": {"storedVersions": []},
    });
    let expected = serde_json::json!({
        "metadata": {"name": "x"},
        "spec": {"properties": {"description": {"type": "string"}}},
    });
    assert_eq!(structural(crd), expected);
}

#[test]
fn differences_name_every_differing_path() {
    let ours = serde_json::json!({"a": {"type": "string", "x": 1}, "r": ["k", "o"]});
    let upstream = serde_json::json!({"a": {"type": "integer", "y": 2}, "r": ["k"]});
    let mut diffs = Vec::new();
    differences("$", &ours, &upstream, ["ours", "upstream"], &mut diffs);
    assert_eq!(
        diffs,
        [
            r#"$.a.type: ours "string", upstream "integer""#,
            "$.a.x: only in ours: 1",
            "$.a.y: only in upstream: 2",
            r#"$.r[1]: only in ours: "o""#,
        ]
    );
}

// === our CRDs are valid and name the Rust types ===

/// Parses `file` as a typed CRD and checks it serves `T` (group, version, kind, plural, scope)
/// with a status subresource; also that the typed form keeps every key we wrote (a misspelt
/// schema keyword would be dropped by the typed decoder and show up here).
fn assert_crd_serves<T>(file: &str)
where
    T: kube::Resource<DynamicType = ()>,
    T::Scope: 'static,
{
    let raw = single_object(&ours(file));
    let crd: CustomResourceDefinition =
        serde_json::from_value(raw.clone()).expect("a valid CustomResourceDefinition");
    let mut unknown = Vec::new();
    differences(
        "$",
        &raw,
        &to_json(&crd),
        ["the file", "the typed CRD"],
        &mut unknown,
    );
    assert!(
        unknown.is_empty(),
        "{file}: not kept by the typed CustomResourceDefinition (misspelt keyword?):\n  {}",
        unknown.join("\n  ")
    );

    let (group, version, kind, plural) =
        (T::group(&()), T::version(&()), T::kind(&()), T::plural(&()));
    assert_eq!(crd.metadata.name, Some(format!("{plural}.{group}")));
    assert_eq!(crd.spec.group, group);
    assert_eq!(crd.spec.names.kind, kind);
    assert_eq!(crd.spec.names.list_kind, Some(format!("{kind}List")));
    assert_eq!(crd.spec.names.plural, plural);
    assert_eq!(crd.spec.names.singular, Some(kind.to_lowercase()));
    let scope = if TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>() {
        "Namespaced"
    } else {
        assert_eq!(
            TypeId::of::<T::Scope>(),
            TypeId::of::<ClusterResourceScope>()
        );
        "Cluster"
    };
    assert_eq!(crd.spec.scope, scope);

    let [served] = crd.spec.versions.as_slice() else {
        panic!("{file}: one version expected");
    };
    assert_eq!(served.name, version);
    assert!(served.served && served.storage);
    let status = served.subresources.as_ref().and_then(|s| s.status.as_ref());
    assert!(status.is_some(), "{file}: status subresource");
    let schema = served
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    assert!(schema.is_some(), "{file}: openAPIV3Schema");
}

#[test]
fn our_crds_are_valid_and_serve_the_rust_types() {
    assert_crd_serves::<ClusterSpiffeId>(CLUSTER_SPIFFE_IDS);
    assert_crd_serves::<ClusterFederatedTrustDomain>(CLUSTER_FEDERATED_TRUST_DOMAINS);
    assert_crd_serves::<ClusterStaticEntry>(CLUSTER_STATIC_ENTRIES);
    assert_crd_serves::<SpiffeId>(SPIFFE_IDS);
}

#[test]
fn every_schema_property_of_our_crds_has_a_description() {
    fn walk(path: &str, schema: &Value, out: &mut Vec<String>) {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            if let Some(items) = schema.get("items") {
                walk(&format!("{path}[]"), items, out);
            }
            return;
        };
        for (name, property) in properties {
            let at = format!("{path}.{name}");
            if property.get("description").is_none() {
                out.push(at.clone());
            }
            walk(&at, property, out);
        }
    }
    for file in [
        CLUSTER_SPIFFE_IDS,
        CLUSTER_FEDERATED_TRUST_DOMAINS,
        CLUSTER_STATIC_ENTRIES,
        SPIFFE_IDS,
    ] {
        let crd = single_object(&ours(file));
        let schema = &open_api_schema(&crd)["properties"];
        let mut missing = Vec::new();
        for part in ["spec", "status"] {
            walk(part, &schema[part], &mut missing);
        }
        assert!(missing.is_empty(), "{file}: no description at {missing:?}");
    }
}

// === the YAML and crd.rs in lockstep ===

fn open_api_schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

/// Wherever the schema lists `properties`, compares their names with the keys `value` has there;
/// descends into array items (every element) and stops at maps (`additionalProperties`).
fn lockstep_gaps(path: &str, schema: &Value, value: &Value, out: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let Some(object) = value.as_object() else {
            out.push(format!(
                "{path}: the CRD describes an object, Rust serialized {value}"
            ));
            return;
        };
        for (name, property) in properties {
            let at = format!("{path}.{name}");
            match object.get(name) {
                Some(child) => lockstep_gaps(&at, property, child, out),
                None => out.push(format!("{at}: in the CRD, not serialized by the Rust type")),
            }
        }
        for name in object.keys().filter(|k| !properties.contains_key(*k)) {
            out.push(format!(
                "{path}.{name}: serialized by the Rust type, not in the CRD (the apiserver prunes it)"
            ));
        }
    } else if let Some(items) = schema.get("items") {
        match value.as_array() {
            Some(elements) if !elements.is_empty() => {
                for element in elements {
                    lockstep_gaps(&format!("{path}[]"), items, element, out);
                }
            }
            _ => out.push(format!("{path}: populate this array to check its items")),
        }
    }
}

/// Checks a fully populated `value` serializes exactly the CRD's `spec` and `status` properties.
fn assert_lockstep<T: Serialize>(file: &str, value: &T) {
    let crd = single_object(&ours(file));
    let top = &open_api_schema(&crd)["properties"];
    let serialized = to_json(value);
    let mut gaps = Vec::new();
    for part in ["spec", "status"] {
        lockstep_gaps(part, &top[part], &serialized[part], &mut gaps);
    }
    // `apiVersion` and `kind` are not fields of the crd.rs structs; everything else must be
    // described by the CRD.
    for key in serialized.as_object().expect("an object").keys() {
        if top.get(key).is_none() {
            gaps.push(format!(
                "{key}: serialized by the Rust type, not in the CRD"
            ));
        }
    }
    assert!(
        gaps.is_empty(),
        "{file} and crd.rs disagree:\n  {}",
        gaps.join("\n  ")
    );
}

fn full_selector() -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["web".into()]),
        }]),
        match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
    }
}

fn full_cluster_spiffe_id() -> ClusterSpiffeId {
    ClusterSpiffeId {
        metadata: ObjectMeta {
            name: Some("full".into()),
            ..ObjectMeta::default()
        },
        spec: ClusterSpiffeIdSpec {
            spiffe_id_template: ISTIO_TEMPLATE.into(),
            pod_selector: Some(full_selector()),
            namespace_selector: Some(full_selector()),
            dns_name_templates: vec!["{{ .PodMeta.Name }}".into()],
            workload_selector_templates: vec!["k8s:container-name:app".into()],
            ttl: Some("1h".into()),
            jwt_ttl: Some("5m".into()),
            federates_with: vec!["example.org".into()],
            admin: true,
            downstream: true,
            auto_populate_dns_names: true,
            class_name: "spire-rs".into(),
            fallback: true,
            hint: "web".into(),
        },
        status: Some(ClusterSpiffeIdStatus {
            stats: ClusterSpiffeIdStats {
                namespaces_selected: 1,
                namespaces_ignored: 2,
                pods_selected: 3,
                pod_entry_render_failures: 4,
                entries_masked: 5,
                entries_to_set: 6,
                entry_failures: 7,
            },
        }),
    }
}

fn full_cluster_federated_trust_domain() -> ClusterFederatedTrustDomain {
    ClusterFederatedTrustDomain {
        metadata: ObjectMeta {
            name: Some("full".into()),
            ..ObjectMeta::default()
        },
        spec: ClusterFederatedTrustDomainSpec {
            trust_domain: "example.org".into(),
            bundle_endpoint_url: "https://bundle.example.org:8443".into(),
            bundle_endpoint_profile: BundleEndpointProfile {
                kind: "https_spiffe".into(),
                endpoint_spiffe_id: "spiffe://example.org/spire/server".into(),
            },
            trust_domain_bundle: r#"{"keys":[]}"#.into(),
            class_name: "spire-rs".into(),
        },
    }
}

fn full_cluster_static_entry() -> ClusterStaticEntry {
    ClusterStaticEntry {
        metadata: ObjectMeta {
            name: Some("full".into()),
            ..ObjectMeta::default()
        },
        spec: ClusterStaticEntrySpec {
            spiffe_id: "spiffe://example.org/db".into(),
            parent_id: "spiffe://example.org/spire/agent/x509pop/host".into(),
            selectors: vec!["unix:uid:1000".into()],
            federates_with: vec!["other.org".into()],
            x509_svid_ttl: Some("1h".into()),
            jwt_svid_ttl: Some("5m".into()),
            dns_names: vec!["db.example.org".into()],
            hint: "db".into(),
            admin: true,
            downstream: true,
            store_svid: true,
            class_name: "spire-rs".into(),
        },
        status: Some(ClusterStaticEntryStatus {
            rendered: true,
            masked: true,
            set: true,
        }),
    }
}

fn full_spiffe_id() -> SpiffeId {
    SpiffeId {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: SpiffeIdSpec {
            spiffe_id: "spiffe://example.org/ns/default/sa/web".into(),
            parent_id: "spiffe://example.org/k8s-workload-registrar/demo/node/n1".into(),
            selector: SpiffeIdSelector {
                pod_label: BTreeMap::from([("app".into(), "web".into())]),
                pod_name: "web-0".into(),
                pod_uid: "0b5c2f0e-0000-4000-8000-000000000001".into(),
                namespace: "default".into(),
                service_account: "web".into(),
                container_image: "nginx:1.25".into(),
                container_name: "nginx".into(),
                node_name: "n1".into(),
                arbitrary: vec!["pod-image-count:1".into()],
                cluster: "demo".into(),
                agent_node_uid: "0b5c2f0e-0000-4000-8000-000000000002".into(),
            },
            dns_names: vec!["web-0".into()],
            federates_with: vec!["other.org".into()],
            downstream: true,
        },
        status: Some(SpiffeIdStatus {
            entry_id: "5f4a".into(),
        }),
    }
}

#[test]
fn cluster_spiffe_id_type_and_crd_have_the_same_properties() {
    assert_lockstep(CLUSTER_SPIFFE_IDS, &full_cluster_spiffe_id());
}

#[test]
fn cluster_federated_trust_domain_type_and_crd_have_the_same_properties() {
    assert_lockstep(
        CLUSTER_FEDERATED_TRUST_DOMAINS,
        &full_cluster_federated_trust_domain(),
    );
}

#[test]
fn cluster_static_entry_type_and_crd_have_the_same_properties() {
    assert_lockstep(CLUSTER_STATIC_ENTRIES, &full_cluster_static_entry());
}

#[test]
fn spiffe_id_type_and_crd_have_the_same_properties() {
    assert_lockstep(SPIFFE_IDS, &full_spiffe_id());
}

#[test]
fn fully_populated_objects_round_trip_through_json() {
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
        let back: T = serde_json::from_value(to_json(&value)).expect("decodes what it encoded");
        assert_eq!(back, value);
    }
    round_trip(full_cluster_spiffe_id());
    round_trip(full_cluster_federated_trust_domain());
    round_trip(full_cluster_static_entry());
    round_trip(full_spiffe_id());
}

// === users' objects decode, and re-encode to the same spec ===

/// Decodes `yaml` into `T` and checks that re-encoding gives back the same `metadata.name`,
/// `spec` and `status` (nothing dropped, renamed or invented).
fn decode_losslessly<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let original: Value = from_yaml(yaml);
    let decoded: T = serde_json::from_value(original.clone()).expect("decodes into the Rust type");
    let encoded = to_json(&decoded);
    assert_eq!(encoded["metadata"]["name"], original["metadata"]["name"]);
    assert_eq!(encoded["spec"], original["spec"]);
    assert_eq!(encoded["status"], original["status"]);
    decoded
}

const ISTIO_CLUSTER_SPIFFE_ID: &str = r#"
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: example
spec:
  spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"
  podSelector:
    matchLabels:
      spiffe.io/spire-managed-identity: "true"
"#;

fn assert_is_istio_example(object: &ClusterSpiffeId) {
    assert_eq!(object.metadata.name.as_deref(), Some("example"));
    assert_eq!(object.spec.spiffe_id_template, ISTIO_TEMPLATE);
    let labels = object
        .spec
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref());
    assert_eq!(
        labels,
        Some(&BTreeMap::from([(
            "spiffe.io/spire-managed-identity".into(),
            "true".into()
        )]))
    );
    assert_eq!(object.spec.namespace_selector, None);
    assert!(object.spec.dns_name_templates.is_empty());
    assert_eq!(object.status, None);
}

#[test]
fn istio_style_cluster_spiffe_id_decodes() {
    let object: ClusterSpiffeId = decode_losslessly(ISTIO_CLUSTER_SPIFFE_ID);
    assert_is_istio_example(&object);
}

#[test]
fn istio_sample_cluster_spiffe_id_file_decodes_verbatim() {
    let Some(dir) = spire_test::shared_testdata("istio-samples") else {
        return;
    };
    let path = dir.join("clusterspiffeid.yaml");
    let raw = single_object(&path);
    assert_eq!(raw["kind"], "ClusterSPIFFEID");
    let text = std::fs::read_to_string(&path).expect("reading the Istio sample");
    let object: ClusterSpiffeId = decode_losslessly(&text);
    assert_is_istio_example(&object);
}

#[test]
fn spiffe_id_with_every_selector_field_decodes() {
    let object: SpiffeId = decode_losslessly(
        r#"
apiVersion: spiffeid.spiffe.io/v1beta1
kind: SpiffeID
metadata:
  name: web-0
  namespace: default
spec:
  spiffeId: spiffe://example.org/ns/default/sa/web
  parentId: spiffe://example.org/k8s-workload-registrar/demo/node/n1
  dnsNames: [web-0, web.default.svc]
  federatesWith: [other.org]
  downstream: true
  selector:
    podLabel: {app: web, tier: front}
    podName: web-0
    podUid: 0b5c2f0e-0000-4000-8000-000000000001
    namespace: default
    serviceAccount: web
    containerImage: nginx:1.25
    containerName: nginx
    nodeName: n1
    arbitrary: ["pod-image-count:1"]
    cluster: demo
    agent_node_uid: 0b5c2f0e-0000-4000-8000-000000000002
status:
  entryId: 5f4a
"#,
    );
    let selector = &object.spec.selector;
    assert_eq!(
        selector.pod_label.get("tier").map(String::as_str),
        Some("front")
    );
    assert_eq!(selector.pod_name, "web-0");
    assert_eq!(selector.pod_uid, "0b5c2f0e-0000-4000-8000-000000000001");
    assert_eq!(selector.namespace, "default");
    assert_eq!(selector.service_account, "web");
    assert_eq!(selector.container_image, "nginx:1.25");
    assert_eq!(selector.container_name, "nginx");
    assert_eq!(selector.node_name, "n1");
    assert_eq!(selector.arbitrary, ["pod-image-count:1"]);
    assert_eq!(selector.cluster, "demo");
    assert_eq!(
        selector.agent_node_uid,
        "0b5c2f0e-0000-4000-8000-000000000002"
    );
    assert_eq!(object.spec.dns_names, ["web-0", "web.default.svc"]);
    assert!(object.spec.downstream);
    assert_eq!(object.status.map(|s| s.entry_id).as_deref(), Some("5f4a"));
}

#[test]
fn cluster_federated_trust_domain_decodes() {
    let object: ClusterFederatedTrustDomain = decode_losslessly(
        r#"
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterFederatedTrustDomain
metadata:
  name: backend
spec:
  trustDomain: backend.example.org
  bundleEndpointURL: https://spire.backend.example.org:8443
  bundleEndpointProfile:
    type: https_spiffe
    endpointSPIFFEID: spiffe://backend.example.org/spire/server
  className: spire-rs
"#,
    );
    let spec = &object.spec;
    assert_eq!(spec.trust_domain, "backend.example.org");
    assert_eq!(
        spec.bundle_endpoint_url,
        "https://spire.backend.example.org:8443"
    );
    assert_eq!(spec.bundle_endpoint_profile.kind, "https_spiffe");
    assert_eq!(
        spec.bundle_endpoint_profile.endpoint_spiffe_id,
        "spiffe://backend.example.org/spire/server"
    );
    assert_eq!(spec.trust_domain_bundle, "");
    assert_eq!(spec.class_name, "spire-rs");
}

#[test]
fn cluster_static_entry_decodes() {
    let object: ClusterStaticEntry = decode_losslessly(
        r#"
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterStaticEntry
metadata:
  name: database
spec:
  spiffeID: spiffe://example.org/db
  parentID: spiffe://example.org/spire/agent/x509pop/host
  selectors: ["unix:uid:1000", "unix:gid:1000"]
  x509SVIDTTL: 1h
  jwtSVIDTTL: 5m
  dnsNames: [db.example.org]
  storeSVID: true
status:
  rendered: true
  masked: false
  set: true
"#,
    );
    let spec = &object.spec;
    assert_eq!(spec.spiffe_id, "spiffe://example.org/db");
    assert_eq!(
        spec.parent_id,
        "spiffe://example.org/spire/agent/x509pop/host"
    );
    assert_eq!(spec.selectors, ["unix:uid:1000", "unix:gid:1000"]);
    assert_eq!(spec.x509_svid_ttl.as_deref(), Some("1h"));
    assert_eq!(spec.jwt_svid_ttl.as_deref(), Some("5m"));
    assert!(spec.store_svid && !spec.admin && !spec.downstream);
    assert_eq!(
        object.status,
        Some(ClusterStaticEntryStatus {
            rendered: true,
            masked: false,
            set: true
        })
    );
}
