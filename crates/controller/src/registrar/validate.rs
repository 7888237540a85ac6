//! The checks of the registrar's optional validating webhook, with upstream's messages; the
//! reconcile loop may also use them to skip objects it cannot sync.

use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::types::Entry;

use super::error::RegistrarError;
use crate::crd;

/// RFC 5280 §4.2.1.6 as SPIRE (≤ 1.5) applies it to DNS names: at most 255 bytes.
const MAX_DNS_NAME_LEN: usize = 255;

/// At most 63 bytes per label.
const MAX_DNS_LABEL_LEN: usize = 63;

/// Why a DNS name is invalid (SPIRE `x509util.ValidateDNS`, the check the registrar used).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsNameError {
    /// Empty after trimming whitespace.
    #[error("empty or only whitespace")]
    Empty,
    /// Longer than 255 bytes after trimming.
    #[error("length exceeded")]
    TooLong,
    /// Two consecutive dots, or a leading or trailing dot.
    #[error("label is empty")]
    EmptyLabel,
    /// A label longer than 63 bytes.
    #[error("label length exceeded: {0}")]
    LabelTooLong(String),
    /// A label that is not `^[a-zA-Z0-9]([-]*[a-zA-Z0-9])+$` (note: at least two characters,
    /// and no `*` wildcards).
    #[error("label does not match regex: {0}")]
    BadLabel(String),
}

/// Validates a DNS name as SPIRE ≤ 1.5 does: whitespace trimmed, non-empty, ≤ 255 bytes, each
/// dot-separated label ≤ 63 bytes of letters, digits and inner hyphens, at least two long.
pub fn validate_dns_name(name: &str) -> Result<(), DnsNameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DnsNameError::Empty);
    }
    if name.len() > MAX_DNS_NAME_LEN {
        return Err(DnsNameError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DnsNameError::EmptyLabel);
        }
        if label.len() > MAX_DNS_LABEL_LEN {
            return Err(DnsNameError::LabelTooLong(label.to_owned()));
        }
        if !is_dns_label(label) {
            return Err(DnsNameError::BadLabel(label.to_owned()));
        }
    }
    Ok(())
}

/// `^[a-zA-Z0-9]([-]*[a-zA-Z0-9])+$`: alphanumeric at both ends, hyphens inside, ≥ 2 bytes.
fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() >= 2
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// The webhook's create/update checks, in upstream's order: `spec.parentId` and
/// `spec.spiffeId` start with `spiffe://<td>` (a plain prefix test); `k8s_psat` selectors
/// (`cluster`, `agent_node_uid`) only on objects in `registrar_namespace`, otherwise
/// `spec.selector.namespace` must equal the object's namespace; every DNS name valid.
pub fn validate_spiffe_id_object(
    object: &crd::SpiffeId,
    trust_domain: &TrustDomain,
    registrar_namespace: &str,
) -> Result<(), RegistrarError> {
    let spec = &object.spec;
    let prefix = format!("spiffe://{}", trust_domain.name());
    if !spec.parent_id.starts_with(&prefix) {
        return Err(RegistrarError::ParentIdOutsideTrustDomain { prefix });
    }
    if !spec.spiffe_id.starts_with(&prefix) {
        return Err(RegistrarError::SpiffeIdOutsideTrustDomain { prefix });
    }
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let selector = &spec.selector;
    if !selector.cluster.is_empty() || !selector.agent_node_uid.is_empty() {
        if namespace != registrar_namespace {
            return Err(RegistrarError::PsatSelectorOutsideRegistrar);
        }
    } else if namespace != selector.namespace {
        return Err(RegistrarError::NamespaceMismatch);
    }
    for name in &spec.dns_names {
        validate_dns_name(name).map_err(|source| RegistrarError::InvalidDnsName {
            name: name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The webhook's extra create check. `entries` are those spire-server lists with exactly the
/// object's selectors (`ListEntries` by selectors [`super::selectors`], `MATCH_EXACT`): one with
/// the same SPIFFE ID that is not the object's own entry (`status.entryId`) is a duplicate.
pub fn check_duplicate(object: &crd::SpiffeId, entries: &[Entry]) -> Result<(), RegistrarError> {
    let own_id = super::sync::status_entry_id(object);
    for entry in entries {
        let id = entry_spiffe_id(entry).map_err(RegistrarError::MalformedEntrySpiffeId)?;
        if object.spec.spiffe_id == id.to_string() && own_id != Some(entry.id.as_str()) {
            return Err(RegistrarError::Duplicate);
        }
    }
    Ok(())
}

fn entry_spiffe_id(entry: &Entry) -> Result<SpiffeId, spire_id::IdError> {
    let id = entry.spiffe_id.as_ref().ok_or(spire_id::IdError::Empty)?;
    SpiffeId::from_path(TrustDomain::parse(&id.trust_domain)?, &id.path)
}

#[cfg(test)]
mod tests;
