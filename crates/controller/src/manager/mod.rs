//! The pure engine of the spire-controller-manager mode: Kubernetes objects in, declared SPIRE
//! entries and federation relationships out, and from declared vs current state a write plan.
//!
//! Nothing here talks to Kubernetes or spire-server. The caller lists the objects (watch
//! caches), calls [`declare`] and [`plan`] (and [`declare_federation`] and [`plan_federation`]),
//! performs the writes, and writes back the statuses collected in [`Declared`].
//!
//! * [`selector`]: Kubernetes label selector matching (`namespaceSelector`, `podSelector`).
//! * [`data`]: pods and nodes as Go template data (Go field names: `.PodMeta.UID`).
//! * [`render`]: one ClusterSPIFFEID spec parsed once, rendered per pod; ClusterStaticEntry and
//!   ClusterFederatedTrustDomain specs to entries and relationships.
//! * [`declare`](mod@declare): the whole declared state: class and namespace filtering,
//!   fallback, masking, per-object statistics.
//! * [`plan`](mod@plan): declared vs current entries to creates, updates and deletes.
//! * [`federation`]: ClusterFederatedTrustDomains to relationships, and their write plan.

use std::fmt;

use spire_proto::spire::api::types::{Entry, Spiffeid};

pub mod data;
pub mod declare;
pub mod federation;
pub mod plan;
pub mod render;
pub mod selector;

pub use declare::{
    DeclareConfig, DeclareInputs, Declared, DeclaredEntry, EntryKey, ReconcileKinds, RenderFailure,
    declare,
};
pub use federation::{
    BundleParser, DeclaredFederation, DeclaredRelationship, FederationPlan, declare_federation,
    parse_federated_trust_domain, plan_federation,
};
pub use plan::{Plan, PlanOptions, SupportedFields, plan, unsupported_fields_probe_entry};
pub use render::{
    ParsedClusterSpiffeId, RenderContext, render_pod_entry, render_static_entry, service_dns_names,
};
pub use selector::LabelMatcher;

/// Why a spec, a configuration value or a rendering was refused. Messages are
/// spire-controller-manager's where it has one (they end up in logs and webhook answers).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A custom resource's spec does not parse (`empty SPIFFEID template`,
    /// `invalid federatesWith value: …`, a bad label selector, …).
    #[error("{0}")]
    InvalidSpec(String),
    /// A pod's entry could not be rendered (template execution, an invalid SPIFFE ID, a missing
    /// node, …).
    #[error("{0}")]
    Render(String),
    /// A controller configuration value is unusable (`parentIDTemplate`, entry ID prefixes).
    #[error("{0}")]
    InvalidConfig(String),
}

/// The kinds of object that declare entries or relationships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// `ClusterSPIFFEID`.
    ClusterSpiffeId,
    /// `ClusterStaticEntry`.
    ClusterStaticEntry,
    /// `ClusterFederatedTrustDomain`.
    ClusterFederatedTrustDomain,
}

/// The object that declared something: its kind and (cluster-scoped) name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// The object's kind.
    pub kind: ObjectKind,
    /// The object's `metadata.name`.
    pub name: String,
}

// === impl ObjectKind ===

impl ObjectKind {
    /// The Kubernetes kind, as logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterSpiffeId => "ClusterSPIFFEID",
            Self::ClusterStaticEntry => "ClusterStaticEntry",
            Self::ClusterFederatedTrustDomain => "ClusterFederatedTrustDomain",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Owner ===

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// `spiffe://<td><path>` of an API SPIFFE ID (empty for a missing one).
pub(crate) fn id_string(id: Option<&Spiffeid>) -> String {
    const SCHEME: &str = "spiffe://";
    match id {
        Some(id) => {
            let mut s = String::with_capacity(SCHEME.len() + id.trust_domain.len() + id.path.len());
            s.push_str(SCHEME);
            s.push_str(&id.trust_domain);
            s.push_str(&id.path);
            s
        }
        None => String::new(),
    }
}

/// The API form of a parsed SPIFFE ID.
pub(crate) fn id_to_proto(id: &spire_id::SpiffeId) -> Spiffeid {
    Spiffeid {
        trust_domain: id.trust_domain().name().to_owned(),
        path: id.path().to_owned(),
    }
}

/// One line describing an entry for logs: `spiffe://… (parent spiffe://…)`.
pub fn describe_entry(entry: &Entry) -> String {
    format!(
        "{} (parent {})",
        id_string(entry.spiffe_id.as_ref()),
        id_string(entry.parent_id.as_ref())
    )
}

#[cfg(test)]
pub(crate) mod testutil;
