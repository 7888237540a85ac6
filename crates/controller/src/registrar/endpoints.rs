//! Service DNS names from `Endpoints` (`add_svc_dns_name`): every pod an address targets gets
//! `<svc>.<ns>.svc` appended to its `SpiffeID`'s DNS names; when the `Endpoints` object goes
//! away the name is removed from every `SpiffeID` in the namespace.
//!
//! The caller's loop, as upstream's: skip disabled namespaces; on delete, [`remove_dns_name`]
//! on each `SpiffeID` of the namespace; otherwise for each [`TargetPod`] in order list the
//! `SpiffeID`s labelled [`pod_uid_label_selector`] — if there are none, stop and requeue iff
//! [`Registrar::waits_for_pod`] — else [`add_dns_name`] to each and write the changed ones.

use k8s_openapi::api::core::v1::{Endpoints, Pod};

use super::POD_UID_LABEL;
use super::config::{IdentitySource, Registrar};
use crate::crd;

/// A pod an `Endpoints` address points at (`subsets[].addresses[].targetRef`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPod {
    /// `targetRef.uid`.
    pub uid: String,
    /// `targetRef.name`.
    pub name: String,
    /// `targetRef.namespace`.
    pub namespace: String,
}

/// `<name>.<namespace>.svc`.
pub fn service_dns_name(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc")
}

/// `<svc>.<ns>.svc` for an `Endpoints` object (named after its service).
pub fn svc_dns_name(endpoints: &Endpoints) -> String {
    let meta = &endpoints.metadata;
    service_dns_name(
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
    )
}

/// The targets of `subsets[].addresses[]` (ready addresses only; `notReadyAddresses` are not
/// considered) that have a `targetRef`, in order, each UID once.
pub fn target_pods(endpoints: &Endpoints) -> Vec<TargetPod> {
    let mut pods: Vec<TargetPod> = Vec::new();
    let addresses = endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|subset| subset.addresses.iter().flatten());
    for address in addresses {
        let Some(target) = &address.target_ref else {
            continue;
        };
        let pod = TargetPod {
            uid: target.uid.clone().unwrap_or_default(),
            name: target.name.clone().unwrap_or_default(),
            namespace: target.namespace.clone().unwrap_or_default(),
        };
        if !pods.iter().any(|p| p.uid == pod.uid) {
            pods.push(pod);
        }
    }
    pods
}

/// The UIDs of [`target_pods`].
pub fn target_pod_uids(endpoints: &Endpoints) -> Vec<String> {
    target_pods(endpoints).into_iter().map(|p| p.uid).collect()
}

/// `podUid=<uid>`: the label selector of the `SpiffeID`s of one pod.
pub fn pod_uid_label_selector(uid: &str) -> String {
    format!("{POD_UID_LABEL}={uid}")
}

/// Appends `name` to `spec.dnsNames` unless present; true when the object changed.
pub fn add_dns_name(object: &mut crd::SpiffeId, name: &str) -> bool {
    let names = &mut object.spec.dns_names;
    if names.iter().any(|n| n == name) {
        return false;
    }
    names.push(name.to_owned());
    true
}

/// Removes every occurrence of `name` from `spec.dnsNames`; true when the object changed.
pub fn remove_dns_name(object: &mut crd::SpiffeId, name: &str) -> bool {
    let names = &mut object.spec.dns_names;
    let before = names.len();
    names.retain(|n| n != name);
    names.len() != before
}

// === impl Registrar ===

impl Registrar {
    /// Whether an `Endpoints` pass that found no `SpiffeID` for a target pod should be retried
    /// (the pod's object may not exist yet): yes when the pod could not be read (`None`); with
    /// `pod_label`/`pod_annotation`, only if the pod carries it; otherwise (templates) yes.
    pub fn waits_for_pod(&self, pod: Option<&Pod>) -> bool {
        let Some(pod) = pod else {
            return true;
        };
        let meta = &pod.metadata;
        match self.identity_source() {
            IdentitySource::PodLabel(key) => {
                meta.labels.as_ref().is_some_and(|l| l.contains_key(key))
            }
            IdentitySource::PodAnnotation(key) => meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(key)),
            IdentitySource::Template { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests;
