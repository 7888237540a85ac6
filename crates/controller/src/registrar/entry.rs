//! One `SpiffeID` spec as one spire-server entry, and when an existing entry must be updated.

use std::collections::HashSet;

use spire_id::SpiffeId;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use super::error::RegistrarError;
use crate::crd::{SpiffeIdSelector, SpiffeIdSpec};

/// Selector type of the k8s_psat node attestor.
const K8S_PSAT: &str = "k8s_psat";

/// Selector type of the k8s workload attestor.
const K8S: &str = "k8s";

/// The spire-server selectors of a `SpiffeID` selector, in upstream's order: `cluster`,
/// `agent_node_uid` (type `k8s_psat`), then type `k8s`: each `podLabel` (`pod-label:<k>:<v>`,
/// keys sorted), `pod-name`, `pod-uid`, `ns`, `sa`, `container-name`, `container-image`,
/// `node-name`, and each `arbitrary` value verbatim. Empty fields are skipped.
pub fn selectors(selector: &SpiffeIdSelector) -> Vec<Selector> {
    let mut out = Vec::new();
    let mut push = |kind: &str, value: String| {
        out.push(Selector {
            r#type: kind.to_owned(),
            value,
        });
    };
    if !selector.cluster.is_empty() {
        push(K8S_PSAT, format!("cluster:{}", selector.cluster));
    }
    if !selector.agent_node_uid.is_empty() {
        push(
            K8S_PSAT,
            format!("agent_node_uid:{}", selector.agent_node_uid),
        );
    }
    for (key, value) in &selector.pod_label {
        push(K8S, format!("pod-label:{key}:{value}"));
    }
    let singles = [
        ("pod-name", &selector.pod_name),
        ("pod-uid", &selector.pod_uid),
        ("ns", &selector.namespace),
        ("sa", &selector.service_account),
        ("container-name", &selector.container_name),
        ("container-image", &selector.container_image),
        ("node-name", &selector.node_name),
    ];
    for (name, value) in singles {
        if !value.is_empty() {
            push(K8S, format!("{name}:{value}"));
        }
    }
    for value in &selector.arbitrary {
        push(K8S, value.clone());
    }
    out
}

/// The entry a `SpiffeID` spec declares: parent and SPIFFE ID parsed (parent first, errors
/// `malformed CRD parent ID: …` / `malformed CRD SPIFFE ID: …`), [`selectors`], DNS names,
/// `federatesWith` and `downstream`; no ID, no TTLs (server defaults).
pub fn spiffe_id_to_entry(spec: &SpiffeIdSpec) -> Result<Entry, RegistrarError> {
    let parent_id = SpiffeId::parse(&spec.parent_id).map_err(RegistrarError::MalformedParentId)?;
    let spiffe_id = SpiffeId::parse(&spec.spiffe_id).map_err(RegistrarError::MalformedSpiffeId)?;
    Ok(Entry {
        parent_id: Some(to_proto(&parent_id)),
        spiffe_id: Some(to_proto(&spiffe_id)),
        selectors: selectors(&spec.selector),
        dns_names: spec.dns_names.clone(),
        federates_with: spec.federates_with.clone(),
        downstream: spec.downstream,
        ..Entry::default()
    })
}

/// True when `existing` differs from `desired` in what upstream compares: DNS names (ordered),
/// selectors (as a set), SPIFFE ID, parent ID, downstream. `federatesWith` is NOT compared, so
/// a federation change alone never updates the entry.
pub fn entry_needs_update(existing: &Entry, desired: &Entry) -> bool {
    !(existing.dns_names == desired.dns_names
        && same_selector_set(&existing.selectors, &desired.selectors)
        && existing.spiffe_id == desired.spiffe_id
        && existing.parent_id == desired.parent_id
        && existing.downstream == desired.downstream)
}

/// Upstream's set comparison: equal lengths and every desired selector present in existing.
fn same_selector_set(existing: &[Selector], desired: &[Selector]) -> bool {
    if existing.len() != desired.len() {
        return false;
    }
    let set: HashSet<(&str, &str)> = existing
        .iter()
        .map(|s| (s.r#type.as_str(), s.value.as_str()))
        .collect();
    desired
        .iter()
        .all(|s| set.contains(&(s.r#type.as_str(), s.value.as_str())))
}

fn to_proto(id: &SpiffeId) -> Spiffeid {
    Spiffeid {
        trust_domain: id.trust_domain().name().to_owned(),
        path: id.path().to_owned(),
    }
}

#[cfg(test)]
mod tests;
