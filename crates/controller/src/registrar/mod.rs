//! The pure engine of the legacy k8s-workload-registrar in CRD mode (SPIRE ≤ 1.5, used by the
//! 2022 Istio quickstart): which `SpiffeID` objects the registrar derives from nodes, pods and
//! endpoints, how one `SpiffeID` maps to one spire-server entry, and the reconcile steps that
//! keep them in sync. Nothing here talks to the apiserver or to spire-server; the caller watches,
//! reads and writes, and asks this module what to do next.
//!
//! * [`config`]: the pod identity source (label, annotation or Go template), DNS name templates
//!   and their startup validation.
//! * [`objects`]: the node-alias and per-pod `SpiffeID` objects, and how an existing pod object
//!   is updated.
//! * [`endpoints`]: the `<svc>.<ns>.svc` DNS names added from `Endpoints`.
//! * [`entry`]: `SpiffeID` spec → `Entry`, and when an existing entry must be updated.
//! * [`sync`]: the finalizer and the per-object reconcile state machine.
//! * [`validate`]: the optional admission webhook's checks (also used to skip bad objects).

pub mod config;
pub mod endpoints;
pub mod entry;
mod error;
mod go_url;
pub mod objects;
pub mod sync;
pub mod validate;

#[cfg(test)]
mod fixtures;

pub use config::{IdentitySource, PodInfo, Registrar, RegistrarSettings};
pub use endpoints::{
    TargetPod, add_dns_name, pod_uid_label_selector, remove_dns_name, service_dns_name,
    svc_dns_name, target_pod_uids, target_pods,
};
pub use entry::{entry_needs_update, selectors, spiffe_id_to_entry};
pub use error::RegistrarError;
pub use objects::{
    PodObjectAction, node_object_action, node_spiffe_id, pod_object_action, pod_spiffe_id,
};
pub use sync::{
    FINALIZER, Observation, SyncAction, add_finalizer, has_finalizer, is_deleting, next_action,
    remove_finalizer, set_status_entry_id, status_entry_id,
};
pub use validate::{DnsNameError, check_duplicate, validate_dns_name, validate_spiffe_id_object};

/// Label on pod `SpiffeID` objects carrying the pod's UID (the endpoints controller selects by it).
pub const POD_UID_LABEL: &str = "podUid";

/// Label on node `SpiffeID` objects carrying the node's UID.
pub const NODE_UID_LABEL: &str = "nodeUid";

/// Pod annotation listing the trust domains the pod's entry federates with, comma separated.
pub const FEDERATES_WITH_ANNOTATION: &str = "spiffe.io/federatesWith";

/// Namespaces skipped when `disabled_namespaces` is not configured.
pub const DEFAULT_DISABLED_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];
