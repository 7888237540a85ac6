//! The custom resources users install: spire-controller-manager's three cluster-scoped kinds
//! (`spire.spiffe.io/v1alpha1`) and the legacy registrar's namespaced `SpiffeID`
//! (`spiffeid.spiffe.io/v1beta1`). Field names are the JSON names of upstream's CRDs; decoding
//! is lenient (unknown fields ignored, absent fields default) as the apiserver's pruning makes
//! it in practice. The YAML definitions we ship are in `deploy/crds/`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::{Deserialize, Serialize};

/// Implements `kube::Resource` for a custom resource with a static group/version/kind, and
/// `Serialize` with the `apiVersion` and `kind` an apiserver requires on create (the structs
/// carry no type fields; decoding ignores them).
macro_rules! custom_resource {
    (
        $ty:ty, $scope:ty, $group:literal, $version:literal, $kind:literal, $plural:literal,
        [$($field:ident),*], [$($optional:ident),*]
    ) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap as _;
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("apiVersion", concat!($group, "/", $version))?;
                map.serialize_entry("kind", $kind)?;
                $(map.serialize_entry(stringify!($field), &self.$field)?;)*
                $(if let Some(value) = &self.$optional {
                    map.serialize_entry(stringify!($optional), value)?;
                })*
                map.end()
            }
        }
    };
}

/// `ClusterSPIFFEID` (`spire.spiffe.io/v1alpha1`, cluster-scoped).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterSpiffeId {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the object declares.
    #[serde(default)]
    pub spec: ClusterSpiffeIdSpec,
    /// What the controller last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterSpiffeIdStatus>,
}
custom_resource!(
    ClusterSpiffeId,
    ClusterResourceScope,
    "spire.spiffe.io",
    "v1alpha1",
    "ClusterSPIFFEID",
    "clusterspiffeids",
    [metadata, spec],
    [status]
);

/// `ClusterSPIFFEID.spec`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterSpiffeIdSpec {
    /// Template of the SPIFFE ID (required).
    #[serde(rename = "spiffeIDTemplate")]
    pub spiffe_id_template: String,
    /// Pods selected by label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces selected by label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// DNS name templates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_name_templates: Vec<String>,
    /// Extra selector templates, rendered to `type:value`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workload_selector_templates: Vec<String>,
    /// X509-SVID TTL (Go duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// JWT-SVID TTL (Go duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_ttl: Option<String>,
    /// Trust domain names the entries federate with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
    /// Admin entries.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// Downstream entries.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub downstream: bool,
    /// Add the DNS names of the services whose endpoints target the pod.
    #[serde(
        rename = "autoPopulateDNSNames",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub auto_populate_dns_names: bool,
    /// The controller class that handles this object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class_name: String,
    /// Applies only to pods no other (non-fallback) object matched.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    /// The entry hint.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// `ClusterSPIFFEID.status`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClusterSpiffeIdStatus {
    /// Reconciliation counters.
    pub stats: ClusterSpiffeIdStats,
}

/// `ClusterSPIFFEID.status.stats`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterSpiffeIdStats {
    /// Namespaces the object selected.
    pub namespaces_selected: i64,
    /// Namespaces skipped by `ignoreNamespaces`.
    pub namespaces_ignored: i64,
    /// Pods the object selected.
    pub pods_selected: i64,
    /// Pods whose entry failed to render.
    pub pod_entry_render_failures: i64,
    /// Entries another object declared first.
    pub entries_masked: i64,
    /// Entries this object declares.
    pub entries_to_set: i64,
    /// Entries spire-server refused.
    pub entry_failures: i64,
}

/// `ClusterStaticEntry` (`spire.spiffe.io/v1alpha1`, cluster-scoped).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterStaticEntry {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The entry.
    #[serde(default)]
    pub spec: ClusterStaticEntrySpec,
    /// What the controller last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterStaticEntryStatus>,
}
custom_resource!(
    ClusterStaticEntry,
    ClusterResourceScope,
    "spire.spiffe.io",
    "v1alpha1",
    "ClusterStaticEntry",
    "clusterstaticentries",
    [metadata, spec],
    [status]
);

/// `ClusterStaticEntry.spec`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClusterStaticEntrySpec {
    /// SPIFFE ID (required).
    #[serde(rename = "spiffeID")]
    pub spiffe_id: String,
    /// Parent ID (required).
    #[serde(rename = "parentID")]
    pub parent_id: String,
    /// Selectors as `type:value` (required).
    pub selectors: Vec<String>,
    /// Federated trust domains.
    #[serde(rename = "federatesWith", skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
    /// X509-SVID TTL (Go duration).
    #[serde(rename = "x509SVIDTTL", skip_serializing_if = "Option::is_none")]
    pub x509_svid_ttl: Option<String>,
    /// JWT-SVID TTL (Go duration).
    #[serde(rename = "jwtSVIDTTL", skip_serializing_if = "Option::is_none")]
    pub jwt_svid_ttl: Option<String>,
    /// DNS names.
    #[serde(rename = "dnsNames", skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// The entry hint.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
    /// Admin entry.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// Downstream entry.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub downstream: bool,
    /// Store the SVID (SVIDStore plugins).
    #[serde(rename = "storeSVID", skip_serializing_if = "std::ops::Not::not")]
    pub store_svid: bool,
    /// The controller class that handles this object.
    #[serde(rename = "className", skip_serializing_if = "String::is_empty")]
    pub class_name: String,
}

/// `ClusterStaticEntry.status`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClusterStaticEntryStatus {
    /// The spec rendered into an entry.
    pub rendered: bool,
    /// Another object declared the same entry first.
    pub masked: bool,
    /// The entry is in spire-server.
    pub set: bool,
}

/// `ClusterFederatedTrustDomain` (`spire.spiffe.io/v1alpha1`, cluster-scoped).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterFederatedTrustDomain {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The federation relationship.
    #[serde(default)]
    pub spec: ClusterFederatedTrustDomainSpec,
}
custom_resource!(
    ClusterFederatedTrustDomain,
    ClusterResourceScope,
    "spire.spiffe.io",
    "v1alpha1",
    "ClusterFederatedTrustDomain",
    "clusterfederatedtrustdomains",
    [metadata, spec],
    []
);

/// `ClusterFederatedTrustDomain.spec`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClusterFederatedTrustDomainSpec {
    /// The federated trust domain's name (required).
    #[serde(rename = "trustDomain")]
    pub trust_domain: String,
    /// Its bundle endpoint (required, `https`).
    #[serde(rename = "bundleEndpointURL")]
    pub bundle_endpoint_url: String,
    /// How the endpoint authenticates (required).
    #[serde(rename = "bundleEndpointProfile")]
    pub bundle_endpoint_profile: BundleEndpointProfile,
    /// The trust domain's bundle as a SPIFFE bundle document (optional).
    #[serde(rename = "trustDomainBundle", skip_serializing_if = "String::is_empty")]
    pub trust_domain_bundle: String,
    /// The controller class that handles this object.
    #[serde(rename = "className", skip_serializing_if = "String::is_empty")]
    pub class_name: String,
}

/// `bundleEndpointProfile`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct BundleEndpointProfile {
    /// `https_web` or `https_spiffe`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint's SPIFFE ID (`https_spiffe` only).
    #[serde(rename = "endpointSPIFFEID", skip_serializing_if = "String::is_empty")]
    pub endpoint_spiffe_id: String,
}

/// `SpiffeID` (`spiffeid.spiffe.io/v1beta1`, namespaced): the legacy registrar's one object per
/// pod or node.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct SpiffeId {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The entry the object stands for.
    #[serde(default)]
    pub spec: SpiffeIdSpec,
    /// The entry's ID once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SpiffeIdStatus>,
}
custom_resource!(
    SpiffeId,
    NamespaceResourceScope,
    "spiffeid.spiffe.io",
    "v1beta1",
    "SpiffeID",
    "spiffeids",
    [metadata, spec],
    [status]
);

/// `SpiffeID.spec`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SpiffeIdSpec {
    /// SPIFFE ID (required).
    pub spiffe_id: String,
    /// Parent ID (required).
    pub parent_id: String,
    /// Selectors (required).
    pub selector: SpiffeIdSelector,
    /// DNS names; the first is the X509-SVID's CN.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Federated trust domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
    /// Downstream entry.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub downstream: bool,
}

/// `SpiffeID.spec.selector`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SpiffeIdSelector {
    /// `k8s:pod-label:<k>:<v>` each.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_label: BTreeMap<String, String>,
    /// `k8s:pod-name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    /// `k8s:pod-uid`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    /// `k8s:ns`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `k8s:sa`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// `k8s:container-image`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_image: String,
    /// `k8s:container-name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    /// `k8s:node-name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// `k8s:<value>` each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arbitrary: Vec<String>,
    /// `k8s_psat:cluster`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// `k8s_psat:agent_node_uid`.
    #[serde(rename = "agent_node_uid", skip_serializing_if = "String::is_empty")]
    pub agent_node_uid: String,
}

/// `SpiffeID.status`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SpiffeIdStatus {
    /// The entry's ID in spire-server.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub entry_id: String,
}
