//! Proto ⇄ domain conversion at the API edge, with SPIRE's checks and messages.
//!
//! Everything a client sends passes through here before it reaches the datastore or the CA:
//! SPIFFE IDs (`SPIFFEID{trust_domain, path}`), selectors, entries, bundles, federation
//! relationships (with the bundle endpoint URL checked as Go's `net/url` parses it). Messages are the
//! ones SPIRE's server API returns, so clients and scripts that match on them keep working.

mod agent;
mod bundle;
mod entry;
mod federation;
mod url;

use spire_id::{IdError, Selector, SelectorError, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::types;

use crate::dns::DnsError;

pub use agent::{agent_to_proto, apply_agent_mask};
pub use bundle::{
    apply_bundle_mask, bundle_from_proto, bundle_to_proto, jwt_authorities_from_proto,
    x509_authorities_from_proto,
};
pub use entry::{
    HINT_MAX_LEN, apply_entry_mask, entry_from_proto, entry_mask_from_proto, entry_to_proto,
};
pub use federation::{
    ALL_RELATIONSHIP_FIELDS, RelationshipError, profile_to_proto, relationship_from_proto,
    relationship_to_proto,
};

/// Why a client's message could not become a domain value. The `Display` text is SPIRE's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required `SPIFFEID` message is absent.
    #[error("request must specify SPIFFE ID")]
    MissingId,
    /// The trust domain or path is malformed (go-spiffe's message).
    #[error(transparent)]
    Id(#[from] IdError),
    /// The ID belongs to another trust domain.
    #[error("\"{id}\" is not a member of trust domain \"{trust_domain}\"")]
    NotMember {
        /// The offending ID.
        id: SpiffeId,
        /// The server's trust domain.
        trust_domain: TrustDomain,
    },
    /// A member ID with an empty path (the trust domain's own ID).
    #[error("\"{id}\" is not a member of trust domain \"{trust_domain}\"; path is empty")]
    MemberPathEmpty {
        /// The offending ID.
        id: SpiffeId,
        /// The server's trust domain.
        trust_domain: TrustDomain,
    },
    /// A workload ID with an empty path.
    #[error("\"{id}\" is not a workload in trust domain \"{trust_domain}\"; path is empty")]
    WorkloadPathEmpty {
        /// The offending ID.
        id: SpiffeId,
        /// The server's trust domain.
        trust_domain: TrustDomain,
    },
    /// A workload ID under `/spire`, which is reserved for agents and servers.
    #[error(
        "\"{id}\" is not a workload in trust domain \"{trust_domain}\"; path is in the reserved namespace"
    )]
    ReservedPath {
        /// The offending ID.
        id: SpiffeId,
        /// The server's trust domain.
        trust_domain: TrustDomain,
    },
    /// An agent ID with an empty path.
    #[error("\"{id}\" is not an agent in trust domain \"{trust_domain}\"; path is empty")]
    AgentPathEmpty {
        /// The offending ID.
        id: SpiffeId,
        /// The server's trust domain.
        trust_domain: TrustDomain,
    },
    /// An agent ID outside `/spire/agent/`.
    #[error(
        "\"{id}\" is not an agent in trust domain \"{trust_domain}\"; path is not in the agent namespace"
    )]
    NotAgentPath {
        /// The offending ID.
        id: SpiffeId,
        /// The server's trust domain.
        trust_domain: TrustDomain,
    },
    /// A selector (or the selector list) is malformed.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// An entry's parent ID is unusable.
    #[error("invalid parent ID: {0}")]
    ParentId(Box<Error>),
    /// An entry's SPIFFE ID is unusable.
    #[error("invalid spiffe ID: {0}")]
    SpiffeId(Box<Error>),
    /// An entry DNS name is unusable.
    #[error("invalid DNS name: {0}")]
    DnsName(DnsError),
    /// An entry's `federates_with` names no trust domain.
    #[error("invalid federated trust domain: {0}")]
    FederatedTrustDomain(IdError),
    /// An entry hint is longer than [`HINT_MAX_LEN`].
    #[error("hint is too long, max length is {HINT_MAX_LEN} characters")]
    HintTooLong,
    /// A bundle's trust domain is malformed.
    #[error("invalid trust domain: {0}")]
    BundleTrustDomain(IdError),
    /// A bundle X.509 authority is not a DER certificate.
    #[error("unable to parse X.509 authority: {0}")]
    X509Authority(String),
    /// A bundle JWT authority has no key ID or no parseable public key.
    #[error("unable to parse JWT authority: {0}")]
    JwtAuthority(String),
}

/// Result alias for conversions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// --- SPIFFE IDs ---

/// `SPIFFEID{trust_domain, path}` → [`SpiffeId`], checked as go-spiffe checks it (no leading
/// slash added, no lowercasing). `None` is "request must specify SPIFFE ID".
pub fn id_from_proto(id: Option<&types::Spiffeid>) -> Result<SpiffeId> {
    let id = id.ok_or(Error::MissingId)?;
    let trust_domain = TrustDomain::parse(&id.trust_domain)?;
    Ok(SpiffeId::from_path(trust_domain, &id.path)?)
}

/// [`SpiffeId`] → `SPIFFEID{trust_domain, path}`.
pub fn id_to_proto(id: &SpiffeId) -> types::Spiffeid {
    types::Spiffeid {
        trust_domain: id.trust_domain().name().to_owned(),
        path: id.path().to_owned(),
    }
}

/// Any non-root ID in `td` (parents, filters).
pub fn member_id_from_proto(td: &TrustDomain, id: Option<&types::Spiffeid>) -> Result<SpiffeId> {
    let id = id_from_proto(id)?;
    verify_member_id(td, &id)?;
    Ok(id)
}

/// A workload ID in `td`: non-root and outside the reserved `/spire` namespace.
pub fn workload_id_from_proto(td: &TrustDomain, id: Option<&types::Spiffeid>) -> Result<SpiffeId> {
    let id = id_from_proto(id)?;
    verify_workload_id(td, &id)?;
    Ok(id)
}

/// An agent ID in `td`: under `/spire/agent/`.
pub fn agent_id_from_proto(td: &TrustDomain, id: Option<&types::Spiffeid>) -> Result<SpiffeId> {
    let id = id_from_proto(id)?;
    verify_agent_id(td, &id)?;
    Ok(id)
}

/// Checks that `id` is a non-root member of `td`.
pub fn verify_member_id(td: &TrustDomain, id: &SpiffeId) -> Result<()> {
    check_member(td, id)?;
    if id.path().is_empty() {
        return Err(Error::MemberPathEmpty {
            id: id.clone(),
            trust_domain: td.clone(),
        });
    }
    Ok(())
}

/// Checks that `id` is a workload of `td` (non-root, not `/spire` or `/spire/...`).
pub fn verify_workload_id(td: &TrustDomain, id: &SpiffeId) -> Result<()> {
    check_member(td, id)?;
    let (id, trust_domain) = (id.clone(), td.clone());
    if id.path().is_empty() {
        return Err(Error::WorkloadPathEmpty { id, trust_domain });
    }
    if is_reserved_path(id.path()) {
        return Err(Error::ReservedPath { id, trust_domain });
    }
    Ok(())
}

/// Checks that `id` is an agent of `td` (under `/spire/agent/`).
pub fn verify_agent_id(td: &TrustDomain, id: &SpiffeId) -> Result<()> {
    check_member(td, id)?;
    let (id, trust_domain) = (id.clone(), td.clone());
    if id.path().is_empty() {
        return Err(Error::AgentPathEmpty { id, trust_domain });
    }
    if !is_agent_path(id.path()) {
        return Err(Error::NotAgentPath { id, trust_domain });
    }
    Ok(())
}

/// `/spire` and everything under it belongs to servers and agents.
pub fn is_reserved_path(path: &str) -> bool {
    path == "/spire" || path.starts_with("/spire/")
}

/// Agent IDs live under `/spire/agent/`.
pub fn is_agent_path(path: &str) -> bool {
    path.starts_with("/spire/agent/")
}

fn check_member(td: &TrustDomain, id: &SpiffeId) -> Result<()> {
    if id.is_member_of(td) {
        Ok(())
    } else {
        Err(Error::NotMember {
            id: id.clone(),
            trust_domain: td.clone(),
        })
    }
}

// --- selectors ---

/// Proto selectors → a set, each checked ("missing selector type", "selector type contains
/// ':'", "missing selector value"). An empty list is allowed here; entries check it themselves.
pub fn selectors_from_proto(selectors: &[types::Selector]) -> Result<SelectorSet> {
    selectors
        .iter()
        .map(|s| Selector::new(&s.r#type, &s.value).map_err(Error::from))
        .collect()
}

/// A selector set → proto selectors, in canonical order.
pub fn selectors_to_proto(selectors: &SelectorSet) -> Vec<types::Selector> {
    selectors
        .iter()
        .map(|s| types::Selector {
            r#type: s.selector_type().to_owned(),
            value: s.value().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
