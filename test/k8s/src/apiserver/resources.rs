//! The resources the server knows: kind, scope, subresources and strategy details, for the
//! built-in ones, SPIRE's CRDs, those registered by tests and those a stored
//! CustomResourceDefinition declares.

use std::collections::HashMap;

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
}

/// One built-in resource: (group, plural, kind, namespaced, traits).
type Builtin = (&'static str, &'static str, &'static str, bool, u8);

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
        }
    }

    fn builtin(kind: &str, namespaced: bool, traits: u8) -> Self {
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
        }
    }
}

// === impl Resources ===

impl Resources {
    /// The built-in resources and SPIRE's CRDs.
    pub(crate) fn new() -> Self {
        let mut resources = Self {
            by_resource: HashMap::new(),
        };
        for (group, resource, kind, namespaced, traits) in BUILTINS.iter().chain(SPIRE_CRDS) {
            resources.insert(
                group,
                resource,
                ResourceInfo::builtin(kind, *namespaced, *traits),
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
                ResourceInfo::builtin(kind, *namespaced, *traits),
            );
        }
    }

    pub(crate) fn insert(&mut self, group: &str, resource: &str, info: ResourceInfo) {
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
        self.insert(
            group,
            plural,
            ResourceInfo::custom(kind, namespaced, status),
        );
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
        assert_eq!(info, &ResourceInfo::custom("Widget", false, true));
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
