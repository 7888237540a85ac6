//! The `SpiffeID` objects the registrar creates: one node alias per node (in the registrar's
//! namespace) and one per scheduled pod (in the pod's namespace), each owned by its source.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use spire_id::{SpiffeId, TrustDomain};

use super::config::{Registrar, node_alias_id};
use super::error::RegistrarError;
use super::{FEDERATES_WITH_ANNOTATION, NODE_UID_LABEL, POD_UID_LABEL};
use crate::crd::{self, SpiffeIdSelector, SpiffeIdSpec};

/// What to do with a pod's `SpiffeID` object given the one that exists under its name.
#[derive(Clone, Debug, PartialEq)]
pub enum PodObjectAction {
    /// No object has the name: create this one.
    Create(crd::SpiffeId),
    /// The existing object, with only `spec.spiffeId` changed: write it back.
    Update(crd::SpiffeId),
    /// The name belongs to an object of an earlier pod (different `spec.selector.podUid`)
    /// still being deleted: try again later.
    Requeue,
    /// The existing object is up to date (other drift is deliberately left alone).
    Nothing,
}

/// The node alias `SpiffeID` for `node`: name = node name, namespace = `own_namespace` (the
/// registrar's), label `nodeUid=<uid>`, controller owner reference to the node, SPIFFE ID
/// `spiffe://<td>/k8s-workload-registrar/<cluster>/node/<node>`, parent
/// `spiffe://<td>/spire/server`, selectors `k8s_psat:cluster` and `k8s_psat:agent_node_uid`.
pub fn node_spiffe_id(
    node: &Node,
    cluster: &str,
    trust_domain: &TrustDomain,
    own_namespace: &str,
) -> crd::SpiffeId {
    let name = node.metadata.name.clone().unwrap_or_default();
    let uid = node.metadata.uid.clone().unwrap_or_default();
    crd::SpiffeId {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(own_namespace.to_owned()),
            labels: Some(BTreeMap::from([(NODE_UID_LABEL.to_owned(), uid.clone())])),
            owner_references: Some(vec![controller_reference("Node", &name, &uid)]),
            ..ObjectMeta::default()
        },
        spec: SpiffeIdSpec {
            spiffe_id: node_alias_id(trust_domain, cluster, &name),
            parent_id: SpiffeId::server_id(trust_domain).to_string(),
            selector: SpiffeIdSelector {
                cluster: cluster.to_owned(),
                agent_node_uid: uid,
                ..SpiffeIdSelector::default()
            },
            ..SpiffeIdSpec::default()
        },
        status: None,
    }
}

/// The `SpiffeID` the pod should have, or `None` when the pod is skipped: namespace disabled,
/// no `spec.nodeName` yet, or no identity (label/annotation absent, template label not
/// `true`). Name = pod name, namespace = pod namespace, label `podUid=<uid>`, controller owner
/// reference to the pod with `blockOwnerDeletion: false`, parent = the node alias ID,
/// selectors `podUid`/`namespace`/`nodeName`, DNS names rendered from the templates,
/// `federatesWith` = annotation `spiffe.io/federatesWith` split on `,` (no trimming).
/// Fails only when a template fails to execute.
pub fn pod_spiffe_id(
    pod: &Pod,
    config: &Registrar,
) -> Result<Option<crd::SpiffeId>, RegistrarError> {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    if config.is_namespace_disabled(&namespace) {
        return Ok(None);
    }
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    if node_name.is_empty() {
        return Ok(None);
    }
    let Some(spiffe_id) = config.pod_identity(pod)? else {
        return Ok(None);
    };
    let federates_with = federation_domains(pod);
    let dns_names = config.pod_dns_names(pod)?;

    let name = meta.name.clone().unwrap_or_default();
    let uid = meta.uid.clone().unwrap_or_default();
    Ok(Some(crd::SpiffeId {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(BTreeMap::from([(POD_UID_LABEL.to_owned(), uid.clone())])),
            owner_references: Some(vec![controller_reference("Pod", &name, &uid)]),
            ..ObjectMeta::default()
        },
        spec: SpiffeIdSpec {
            spiffe_id,
            parent_id: config.node_alias_id(&node_name),
            selector: SpiffeIdSelector {
                pod_uid: uid,
                namespace,
                node_name,
                ..SpiffeIdSelector::default()
            },
            dns_names,
            federates_with,
            downstream: false,
        },
        status: None,
    }))
}

/// Upstream's pod update rule: create when absent; requeue when the existing object belongs to
/// another pod (its `spec.selector.podUid` differs); push only a changed `spec.spiffeId`
/// (DNS names, federation and parent of an existing object are not refreshed).
pub fn pod_object_action(
    desired: crd::SpiffeId,
    existing: Option<&crd::SpiffeId>,
) -> PodObjectAction {
    let Some(existing) = existing else {
        return PodObjectAction::Create(desired);
    };
    if existing.spec.selector.pod_uid != desired.spec.selector.pod_uid {
        return PodObjectAction::Requeue;
    }
    if existing.spec.spiffe_id != desired.spec.spiffe_id {
        let mut updated = existing.clone();
        updated.spec.spiffe_id = desired.spec.spiffe_id;
        return PodObjectAction::Update(updated);
    }
    PodObjectAction::Nothing
}

/// Upstream's node rule: the object to create when none exists under its name; an existing
/// object is never updated (`None`).
pub fn node_object_action(
    desired: crd::SpiffeId,
    existing: Option<&crd::SpiffeId>,
) -> Option<crd::SpiffeId> {
    existing.is_none().then_some(desired)
}

/// Annotation `spiffe.io/federatesWith` split on `,`, untrimmed (an empty annotation gives
/// `[""]`, as Go's `strings.Split` does); no annotation gives `[]`.
fn federation_domains(pod: &Pod) -> Vec<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FEDERATES_WITH_ANNOTATION))
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A core/v1 controller reference that does not block the owner's deletion, so objects can be
/// removed while the registrar is down.
fn controller_reference(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}

#[cfg(test)]
mod tests;
