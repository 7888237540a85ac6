use serde::{Deserialize, Serialize};
use spire_id::{SelectorSet, SpiffeId, TrustDomain};
use spire_svid::Bundle;

/// A registration entry: who (selectors, under which parent) gets which SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationEntry {
    /// Entry ID; UUIDv4 unless the creator chose one. Empty on create = generate.
    pub id: String,
    /// The identity issued.
    pub spiffe_id: SpiffeId,
    /// The agent (or node-alias / parent workload) allowed to obtain it.
    pub parent_id: SpiffeId,
    /// Selectors the caller must present; never empty.
    pub selectors: SelectorSet,
    /// X509-SVID TTL in seconds; 0 = the server default.
    pub x509_svid_ttl: i32,
    /// JWT-SVID TTL in seconds; 0 = the server default.
    pub jwt_svid_ttl: i32,
    /// Foreign trust domains whose bundles the workload receives; sorted, no duplicates.
    pub federates_with: Vec<TrustDomain>,
    /// The workload may call admin APIs.
    pub admin: bool,
    /// The workload is a downstream SPIRE server.
    pub downstream: bool,
    /// Unix seconds after which the entry is pruned; 0 = never.
    pub expires_at: i64,
    /// DNS SANs in the order given; the first becomes the certificate CN.
    pub dns_names: Vec<String>,
    /// Bumped by one on every update; 0 after create.
    pub revision_number: i64,
    /// The SVID is pushed to an SVIDStore plugin rather than served.
    pub store_svid: bool,
    /// Free-form hint for workloads with several identities (≤ 1024 bytes).
    pub hint: String,
    /// Unix seconds of creation, set by the caller's clock.
    pub created_at: i64,
}

/// Which fields of a [`RegistrationEntry`] an update writes. `id`, `created_at` and
/// `revision_number` are never written from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // one flag per entry field of the same name
pub struct EntryMask {
    pub spiffe_id: bool,
    pub parent_id: bool,
    pub selectors: bool,
    pub x509_svid_ttl: bool,
    pub jwt_svid_ttl: bool,
    pub federates_with: bool,
    pub admin: bool,
    pub downstream: bool,
    pub expires_at: bool,
    pub dns_names: bool,
    pub store_svid: bool,
    pub hint: bool,
}

/// How a selector (or trust-domain) filter matches an entry's set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatchBehavior {
    /// The entry's set equals the given set.
    #[default]
    Exact,
    /// The entry's set is a subset of the given set (how workloads match).
    Subset,
    /// The entry's set contains the given set.
    Superset,
    /// The entry's set shares at least one element with the given set.
    Any,
}

/// Filter on selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorMatch {
    /// The selectors to compare with.
    pub selectors: SelectorSet,
    /// How to compare.
    pub behavior: MatchBehavior,
}

/// Filter on `federates_with`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustDomainMatch {
    /// The trust domains to compare with.
    pub trust_domains: Vec<TrustDomain>,
    /// How to compare.
    pub behavior: MatchBehavior,
}

/// Paging: `token` is opaque and empty for the first page; `page_size` 0 = everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pagination {
    /// The `next_token` of the previous page, or empty.
    pub token: String,
    /// At most this many items; 0 = no limit.
    pub page_size: u32,
}

/// One page of results and the token of the next, if there may be more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass back in [`Pagination::token`] for the next page; `None` at the end.
    pub next_token: Option<String>,
}

/// Filters for listing or counting entries; every `Some` must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each field filters on the entry field of the same name
pub struct ListEntries {
    pub by_spiffe_id: Option<SpiffeId>,
    pub by_parent_id: Option<SpiffeId>,
    pub by_selectors: Option<SelectorMatch>,
    pub by_federates_with: Option<TrustDomainMatch>,
    pub by_hint: Option<String>,
    pub by_downstream: Option<bool>,
    pub pagination: Option<Pagination>,
}

/// A node (agent) that passed node attestation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedNode {
    /// The agent ID, `spiffe://<td>/spire/agent/...`.
    pub spiffe_id: SpiffeId,
    /// The node attestor that vouched for it, e.g. `join_token`.
    pub attestation_type: String,
    /// Serial (decimal) of the agent's current SVID; empty once banned.
    pub cert_serial_number: String,
    /// Unix seconds when the current SVID expires.
    pub cert_not_after: i64,
    /// Serial of an SVID issued by a renewal but not yet used; empty if none.
    pub new_cert_serial_number: String,
    /// Expiry of that new SVID.
    pub new_cert_not_after: i64,
    /// The agent may attest again (instead of renewing).
    pub can_reattest: bool,
    /// Selectors from node attestation.
    pub selectors: SelectorSet,
}

/// Which fields of an [`AttestedNode`] an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // one flag per node field of the same name
pub struct NodeMask {
    pub attestation_type: bool,
    pub cert_serial_number: bool,
    pub cert_not_after: bool,
    pub new_cert_serial_number: bool,
    pub new_cert_not_after: bool,
    pub can_reattest: bool,
}

/// Filters for listing or counting nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each field filters on the node field it names
pub struct ListAttestedNodes {
    pub by_attestation_type: Option<String>,
    /// `true` = only banned (empty serial), `false` = only not banned.
    pub by_banned: Option<bool>,
    pub by_can_reattest: Option<bool>,
    /// Nodes whose `cert_not_after` is before this (unix seconds).
    pub by_expires_before: Option<i64>,
    pub by_selectors: Option<SelectorMatch>,
    pub pagination: Option<Pagination>,
}

/// A one-time join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The secret value (also the last segment of the agent ID).
    pub token: String,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

/// How a federation bundle endpoint is authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BundleEndpointProfile {
    /// Web PKI.
    HttpsWeb,
    /// The endpoint presents this SPIFFE ID, checked against that ID's trust-domain bundle.
    HttpsSpiffe {
        /// The endpoint's expected SPIFFE ID.
        endpoint_spiffe_id: SpiffeId,
    },
}

/// A federation relationship with another trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationRelationship {
    /// The federated trust domain.
    pub trust_domain: TrustDomain,
    /// Where its bundle is fetched.
    pub bundle_endpoint_url: String,
    /// How the endpoint is authenticated.
    pub profile: BundleEndpointProfile,
    /// The bundle of that trust domain as last stored (filled on fetch, written with `set_bundle`).
    pub trust_domain_bundle: Option<Bundle>,
}

/// What `delete_bundle` does with entries federating with the deleted trust domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BundleDeleteMode {
    /// Refuse with `FailedPrecondition` while any entry federates with it.
    #[default]
    Restrict,
    /// Delete those entries too.
    Delete,
    /// Remove the trust domain from those entries' `federates_with`.
    Dissociate,
}

/// The CA manager's journal of authority slots, opaque to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaJournal {
    /// Row ID; 0 for a journal not yet stored.
    pub id: i64,
    /// Hex ID of the X.509 authority active when the journal was written (the lookup key).
    pub active_x509_authority_id: String,
    /// Serialized journal (the CA crate owns the format).
    pub data: Vec<u8>,
    /// Unix seconds of the last write (set by the store from the caller's value).
    pub updated_at: i64,
}

/// The kind of record a change event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Aggregate {
    /// Key = entry ID.
    RegistrationEntry,
    /// Key = agent SPIFFE ID.
    AttestedNode,
    /// Key = trust domain name.
    Bundle,
    /// Key = trust domain name.
    FederationRelationship,
}

/// What happened to the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeOp {
    /// It was created.
    Created,
    /// It was changed.
    Updated,
    /// It was deleted.
    Deleted,
}

/// One committed change, numbered in commit order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Gap-free, strictly increasing across every server sharing the database.
    pub revision: i64,
    /// The kind of record.
    pub aggregate: Aggregate,
    /// Which record (see [`Aggregate`]).
    pub key: String,
    /// What happened.
    pub op: ChangeOp,
    /// Unix seconds when it was written.
    pub created_at: i64,
}

// === impl EntryMask ===

impl EntryMask {
    /// Every field.
    pub const ALL: Self = Self {
        spiffe_id: true,
        parent_id: true,
        selectors: true,
        x509_svid_ttl: true,
        jwt_svid_ttl: true,
        federates_with: true,
        admin: true,
        downstream: true,
        expires_at: true,
        dns_names: true,
        store_svid: true,
        hint: true,
    };

    /// No field.
    pub const NONE: Self = Self {
        spiffe_id: false,
        parent_id: false,
        selectors: false,
        x509_svid_ttl: false,
        jwt_svid_ttl: false,
        federates_with: false,
        admin: false,
        downstream: false,
        expires_at: false,
        dns_names: false,
        store_svid: false,
        hint: false,
    };
}

// === impl NodeMask ===

impl NodeMask {
    /// Every field.
    pub const ALL: Self = Self {
        attestation_type: true,
        cert_serial_number: true,
        cert_not_after: true,
        new_cert_serial_number: true,
        new_cert_not_after: true,
        can_reattest: true,
    };
}

// === impl Aggregate ===

impl Aggregate {
    /// The name stored in the events table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegistrationEntry => "registration_entry",
            Self::AttestedNode => "attested_node",
            Self::Bundle => "bundle",
            Self::FederationRelationship => "federation_relationship",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "registration_entry" => Self::RegistrationEntry,
            "attested_node" => Self::AttestedNode,
            "bundle" => Self::Bundle,
            "federation_relationship" => Self::FederationRelationship,
            _ => return None,
        })
    }
}

// === impl ChangeOp ===

impl ChangeOp {
    /// The name stored in the events table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => Self::Created,
            "updated" => Self::Updated,
            "deleted" => Self::Deleted,
            _ => return None,
        })
    }
}
