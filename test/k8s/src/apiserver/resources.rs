//! The resources the server knows: kind, scope, subresources and strategy details, for the
//! built-in ones, SPIRE's CRDs, those registered by tests and those a stored
//! CustomResourceDefinition declares.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

/// How the apiserver treats the objects of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceInfo {
    /// `Pod`, `ClusterSPIFFEID`, ...
    pub(crate) kind: String,
    /// Namespaced or cluster-scoped.
    pub(crate) namespaced: bool,
    /// Has the `status` subresource: writes to the object keep the stored `.status`, writes
    /// to `<object>/status` change only `.status`.
    pub(crate) status: bool,
    /// Maintains `metadata.generation` (1 on create, +1 on each change outside metadata
    /// and, with the status subresource, status).
    pub(crate) generation: bool,
    /// A custom resource: status dropped on create (with the status subresource), PUT needs
    /// `metadata.resourceVersion`, and DELETE answers with the object.
    pub(crate) custom: bool,
    /// DELETE answers with the deleted object rather than a `Success` status.
    pub(crate) returns_deleted_object: bool,
    /// The versions discovery and the OpenAPI documents list the resource under (a CRD's
    /// served versions, with their schemas). Empty: served at any version in its paths but
    /// not discoverable (a test's registration, or SPIRE's CRDs before a CRD object for
    /// them is stored).
    pub(crate) versions: Vec<ServedVersion>,
    /// `names.singular` (discovery's `singularName`), lower case.
    pub(crate) singular: String,
    /// `names.shortNames` (`ds`, `cm`, ...).
    pub(crate) short_names: Vec<String>,
}

/// A version a resource is discoverable under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServedVersion {
    /// `v1`, `v1alpha1`, ...
    pub(crate) name: String,
    /// A CRD version's `schema.openAPIV3Schema` (strict field validation walks it); none for
    /// the built-in resources, whose fields are Kubernetes' own types (`fields`).
    pub(crate) schema: Option<Value>,
}

/// One built-in resource: (group, plural, kind, namespaced, traits).
type Builtin = (&'static str, &'static str, &'static str, bool, u8);

/// The short names kubectl resolves for the built-in resources, by plural.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("pods", "po"),
    ("nodes", "no"),
    ("namespaces", "ns"),
    ("configmaps", "cm"),
    ("serviceaccounts", "sa"),
    ("services", "svc"),
    ("endpoints", "ep"),
    ("events", "ev"),
    ("persistentvolumeclaims", "pvc"),
    ("persistentvolumes", "pv"),
    ("deployments", "deploy"),
    ("daemonsets", "ds"),
    ("replicasets", "rs"),
    ("statefulsets", "sts"),
    ("cronjobs", "cj"),
    ("storageclasses", "sc"),
    ("networkpolicies", "netpol"),
    ("ingresses", "ing"),
    ("poddisruptionbudgets", "pdb"),
    ("customresourcedefinitions", "crd"),
];

const STATUS: u8 = 1;
const GENERATION: u8 = 2;
const RETURNS_OBJECT: u8 = 4;
const CUSTOM: u8 = 8;

/// The SPIRE CRDs: spire-controller-manager's (cluster-scoped) and the legacy registrar's
/// SpiffeID (namespaced), all with the status subresource.
const SPIRE_CRDS: &[Builtin] = &[
    (
        "spire.spiffe.io",
        "clusterspiffeids",
        "ClusterSPIFFEID",
        false,
        CUSTOM,
    ),
    (
        "spire.spiffe.io",
        "clusterfederatedtrustdomains",
        "ClusterFederatedTrustDomain",
        false,
        CUSTOM,
    ),
    (
        "spire.spiffe.io",
        "clusterstaticentries",
        "ClusterStaticEntry",
        false,
        CUSTOM,
    ),
    ("spiffeid.spiffe.io", "spiffeids", "SpiffeID", true, CUSTOM),
];

const BUILTINS: &[Builtin] = &[
    ("", "pods", "Pod", true, STATUS | RETURNS_OBJECT),
    ("", "nodes", "Node", false, STATUS),
    (
        "",
        "namespaces",
        "Namespace",
        false,
        STATUS | RETURNS_OBJECT,
    ),
    ("", "configmaps", "ConfigMap", true, 0),
    ("", "secrets", "Secret", true, 0),
    (
        "",
        "serviceaccounts",
        "ServiceAccount",
        true,
        RETURNS_OBJECT,
    ),
    ("", "services", "Service", true, STATUS),
    ("", "endpoints", "Endpoints", true, 0),
    ("", "events", "Event", true, 0),
    (
        "",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        STATUS,
    ),
    ("", "persistentvolumes", "PersistentVolume", false, STATUS),
    (
        "apps",
        "deployments",
        "Deployment",
        true,
        STATUS | GENERATION,
    ),
    ("apps", "daemonsets", "DaemonSet", true, STATUS | GENERATION),
    (
        "apps",
        "replicasets",
        "ReplicaSet",
        true,
        STATUS | GENERATION,
    ),
    (
        "apps",
        "statefulsets",
        "StatefulSet",
        true,
        STATUS | GENERATION,
    ),
    ("batch", "jobs", "Job", true, STATUS | GENERATION),
    ("batch", "cronjobs", "CronJob", true, STATUS | GENERATION),
    ("coordination.k8s.io", "leases", "Lease", true, 0),
    ("events.k8s.io", "events", "Event", true, 0),
    (
        "discovery.k8s.io",
        "endpointslices",
        "EndpointSlice",
        true,
        0,
    ),
    ("storage.k8s.io", "csidrivers", "CSIDriver", false, 0),
    (
        "storage.k8s.io",
        "storageclasses",
        "StorageClass",
        false,
        RETURNS_OBJECT,
    ),
    ("rbac.authorization.k8s.io", "roles", "Role", true, 0),
    (
        "rbac.authorization.k8s.io",
        "rolebindings",
        "RoleBinding",
        true,
        0,
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterroles",
        "ClusterRole",
        false,
        0,
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        0,
    ),
    (
        "networking.k8s.io",
        "networkpolicies",
        "NetworkPolicy",
        true,
        GENERATION,
    ),
    (
        "networking.k8s.io",
        "ingresses",
        "Ingress",
        true,
        STATUS | GENERATION,
    ),
    (
        "policy",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        STATUS | GENERATION,
    ),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        STATUS | GENERATION | RETURNS_OBJECT,
    ),
    (
        "apiregistration.k8s.io",
        "apiservices",
        "APIService",
        false,
        STATUS,
    ),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        GENERATION,
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        GENERATION,
    ),
];

/// The resources of the server, by (group, plural).
#[derive(Clone, Debug)]
pub(crate) struct Resources {
    by_resource: HashMap<(String, String), ResourceInfo>,
    /// Resources whose CRD was removed: not served (404) until declared again. Any other
    /// unknown resource is served in the scope its path uses.
    withdrawn: HashSet<(String, String)>,
}

// === impl ResourceInfo ===

impl ResourceInfo {
    /// A resource registered by a test or declared by a CRD.
    pub(crate) fn custom(kind: &str, namespaced: bool, status: bool) -> Self {
        Self {
            kind: kind.to_owned(),
            namespaced,
            status,
            generation: true,
            custom: true,
            returns_deleted_object: true,
            versions: Vec::new(),
            singular: kind.to_lowercase(),
            short_names: Vec::new(),
        }
    }

    fn builtin(resource: &str, kind: &str, namespaced: bool, traits: u8) -> Self {
        if traits & CUSTOM != 0 {
            return Self::custom(kind, namespaced, true);
        }
        Self {
            kind: kind.to_owned(),
            namespaced,
            status: traits & STATUS != 0,
            generation: traits & GENERATION != 0,
            custom: false,
            returns_deleted_object: traits & RETURNS_OBJECT != 0,
            versions: vec![ServedVersion {
                name: "v1".to_owned(),
                schema: None,
            }],
            singular: kind.to_lowercase(),
            short_names: SHORT_NAMES
                .iter()
                .filter(|(plural, _)| *plural == resource)
                .map(|(_, short)| (*short).to_owned())
                .collect(),
        }
    }
}

// === impl Resources ===

impl Resources {
    /// The built-in resources and SPIRE's CRDs.
    pub(crate) fn new() -> Self {
        let mut resources = Self {
            by_resource: HashMap::new(),
            withdrawn: HashSet::new(),
        };
        for (group, resource, kind, namespaced, traits) in BUILTINS.iter().chain(SPIRE_CRDS) {
            resources.insert(
                group,
                resource,
                ResourceInfo::builtin(resource, kind, *namespaced, *traits),
            );
        }
        resources
    }

    /// (Re-)declares SPIRE's CRDs.
    pub(crate) fn register_spire_crds(&mut self) {
        for (group, resource, kind, namespaced, traits) in SPIRE_CRDS {
            self.insert(
                group,
                resource,
                ResourceInfo::builtin(resource, kind, *namespaced, *traits),
            );
        }
    }

    /// Every resource, by (group, plural).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&(String, String), &ResourceInfo)> {
        self.by_resource.iter()
    }

    /// The resource a removed CustomResourceDefinition declared is no longer served (SPIRE's
    /// too, whose preset [`register_spire_crds`](Self::register_spire_crds) restores).
    pub(crate) fn forget_crd(&mut self, crd: &Value) {
        let spec = &crd["spec"];
        if let (Some(group), Some(plural)) =
            (spec["group"].as_str(), spec["names"]["plural"].as_str())
        {
            let key = (group.to_owned(), plural.to_owned());
            self.by_resource.remove(&key);
            self.withdrawn.insert(key);
        }
    }

    /// Whether the resource's CRD was removed (and nothing declared it since).
    pub(crate) fn is_withdrawn(&self, group: &str, resource: &str) -> bool {
        self.withdrawn
            .contains(&(group.to_owned(), resource.to_owned()))
    }

    pub(crate) fn insert(&mut self, group: &str, resource: &str, info: ResourceInfo) {
        self.withdrawn
            .remove(&(group.to_owned(), resource.to_owned()));
        self.by_resource
            .insert((group.to_owned(), resource.to_owned()), info);
    }

    pub(crate) fn get(&self, group: &str, resource: &str) -> Option<&ResourceInfo> {
        self.by_resource
            .get(&(group.to_owned(), resource.to_owned()))
    }

    /// The plural and info of `kind` in `group`, when known.
    pub(crate) fn by_kind(&self, group: &str, kind: &str) -> Option<(String, ResourceInfo)> {
        self.by_resource
            .iter()
            .filter(|((g, _), info)| g == group && info.kind == kind)
            .map(|((_, resource), info)| (resource.clone(), info.clone()))
            .min_by(|a, b| a.0.cmp(&b.0))
    }

    /// Registers the resource a CustomResourceDefinition declares and fills in the status a
    /// real apiserver gives an accepted CRD (`acceptedNames`, `NamesAccepted` and
    /// `Established` conditions) when it has none.
    pub(crate) fn observe_crd(&mut self, crd: &mut Value, now: &str) {
        let spec = &crd["spec"];
        let (Some(group), Some(plural), Some(kind)) = (
            spec["group"].as_str(),
            spec["names"]["plural"].as_str(),
            spec["names"]["kind"].as_str(),
        ) else {
            return;
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let status = spec["versions"].as_array().is_some_and(|versions| {
            versions
                .iter()
                .any(|v| v["subresources"].get("status").is_some())
        }) || spec["subresources"].get("status").is_some();
        let mut info = ResourceInfo::custom(kind, namespaced, status);
        info.versions = spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["served"] != false)
            .filter_map(|v| {
                Some(ServedVersion {
                    name: v["name"].as_str()?.to_owned(),
                    schema: v["schema"].get("openAPIV3Schema").cloned(),
                })
            })
            .collect();
        if let Some(singular) = spec["names"]["singular"].as_str() {
            info.singular = singular.to_owned();
        }
        info.short_names = spec["names"]["shortNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        self.insert(group, plural, info);
        if crd["status"]["conditions"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            let names = spec["names"].clone();
            crd["status"] = json!({
                "conditions": [
                    condition("NamesAccepted", "NoConflicts", "no conflicts found", now),
                    condition("Established", "InitialNamesAccepted",
                              "the initial names have been accepted", now),
                ],
                "acceptedNames": names,
                "storedVersions": spec["versions"].as_array().map(|versions| {
                    versions
                        .iter()
                        .filter(|v| v["storage"] == true)
                        .filter_map(|v| v["name"].as_str())
                        .map(Value::from)
                        .collect::<Vec<_>>()
                }).unwrap_or_default(),
            });
        }
    }
}

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind,
        "status": "True",
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

/// The plural Kubernetes derives from a kind (`Ingress` → `ingresses`, `Policy` → `policies`).
pub(crate) fn guess_plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// The kind of objects of an unknown resource: the singular, capitalised.
pub(crate) fn guess_kind(resource: &str) -> String {
    let singular = resource
        .strip_suffix("ies")
        .map(|stem| format!("{stem}y"))
        .or_else(|| {
            ["sses", "xes", "ches", "shes"]
                .iter()
                .find(|suffix| resource.ends_with(*suffix))
                .map(|_| resource[..resource.len() - 2].to_owned())
        })
        .unwrap_or_else(|| resource.strip_suffix('s').unwrap_or(resource).to_owned());
    let mut chars = singular.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_and_kinds_are_guessed_like_kubernetes() {
        for (kind, plural) in [
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("Gateway", "gateways"),
            ("IstioOperator", "istiooperators"),
            ("Box", "boxes"),
        ] {
            assert_eq!(guess_plural(kind), plural);
        }
        assert_eq!(guess_kind("widgets"), "Widget");
        assert_eq!(guess_kind("policies"), "Policy");
    }

    #[test]
    fn crds_register_their_resource() {
        let mut resources = Resources::new();
        let mut crd = json!({"spec": {
            "group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "subresources": {"status": {}}}],
        }});
        resources.observe_crd(&mut crd, "t");
        let info = resources.get("example.com", "widgets").unwrap();
        assert_eq!(info.kind, "Widget");
        assert!(!info.namespaced && info.status && info.custom);
        assert_eq!(info.versions.len(), 1);
        assert_eq!(info.versions[0].name, "v1");
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(
            resources
                .by_kind("spire.spiffe.io", "ClusterSPIFFEID")
                .unwrap()
                .0,
            "clusterspiffeids"
        );
    }
}
