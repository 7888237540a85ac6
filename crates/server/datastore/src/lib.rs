//! The server's `DataStore` trait, grouped by aggregate, and the records it keeps.
//!
//! Every write that changes an entry, a node, a bundle or a federation relationship records a
//! [`ChangeEvent`] in the same transaction. Revisions are gap-free and follow commit order, so
//! any number of servers sharing one database can follow each other's changes by asking for
//! the events after the last revision they saw.
#![forbid(unsafe_code)]

mod model;

use async_trait::async_trait;
use spire_id::{SelectorSet, SpiffeId, TrustDomain};
use spire_svid::Bundle;

pub use model::{
    Aggregate, AttestedNode, BundleDeleteMode, BundleEndpointProfile, CaJournal, ChangeEvent,
    ChangeOp, EntryMask, FederationRelationship, JoinToken, ListAttestedNodes, ListEntries,
    MatchBehavior, NodeMask, Page, Pagination, RegistrationEntry, SelectorMatch, TrustDomainMatch,
};

/// A datastore failure. Item-level variants (`NotFound`, `AlreadyExists`, …) map one-to-one to
/// gRPC codes at the API edge; `Backend` is a database or I/O failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A record with the same identity exists. For entries this is "similar entry already
    /// exists" (same parent, SPIFFE ID and selectors) and carries the existing entry.
    #[error("{message}")]
    AlreadyExists {
        /// SPIRE's message.
        message: String,
        /// The entry that already exists, when the conflict is an entry.
        existing: Option<Box<RegistrationEntry>>,
    },
    /// The request is malformed for the store (e.g. an unparseable page token).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request conflicts with current state (e.g. deleting a bundle still federated with).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed.
    #[error("datastore error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias for datastore calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A change to one stored bundle, run by [`DataStore::edit_bundle`] on the locked row: it
/// edits the bundle in place, or refuses with the error the caller gets (nothing is written).
pub type BundleEdit = Box<dyn FnOnce(&mut Bundle) -> Result<()> + Send>;

/// The server's persistent state. Implementations must be safe to share between tasks and
/// between servers (PostgreSQL): all invariants are kept by the database, not by memory.
#[async_trait]
pub trait DataStore: Send + Sync + std::fmt::Debug + 'static {
    // --- bundles ---

    /// Stores a new bundle; `AlreadyExists "bundle already exists"` when the trust domain has one.
    async fn create_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    /// The bundle of `trust_domain`, if any.
    async fn fetch_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<Bundle>>;
    /// Bundles ordered by trust domain, one page at a time.
    async fn list_bundles(&self, page: Option<Pagination>) -> Result<Page<Bundle>>;
    /// Number of stored bundles.
    async fn count_bundles(&self) -> Result<u64>;
    /// Replaces the stored bundle (`NotFound "bundle not found"` when absent); bumps the sequence.
    async fn update_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    /// Creates or replaces the bundle of its trust domain; bumps the sequence when it changed.
    async fn set_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    /// Adds the authorities the stored bundle lacks (creating it if absent); bumps the sequence
    /// when anything was added. Safe under concurrent appends from several servers.
    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    /// Deletes a bundle; `mode` decides what happens to entries that federate with it.
    async fn delete_bundle(&self, trust_domain: &TrustDomain, mode: BundleDeleteMode)
    -> Result<()>;
    /// Removes X.509 authorities and JWT keys that expired before `expires_before` (unix
    /// seconds), never the last X.509 authority; returns whether the bundle changed.
    async fn prune_bundle(&self, trust_domain: &TrustDomain, expires_before: i64) -> Result<bool>;
    /// Runs `edit` on the bundle of `trust_domain` in one transaction under the row lock
    /// (tainting or revoking an authority); when the content changed the sequence goes up and
    /// the change is recorded. `NotFound "bundle not found"` when the trust domain has none.
    async fn edit_bundle(&self, trust_domain: &TrustDomain, edit: BundleEdit) -> Result<Bundle>;

    // --- registration entries ---

    /// Creates entries in one transaction and reports per item: an item that is invalid for
    /// the store or already exists fails alone. Empty IDs get a fresh UUIDv4. Results are in
    /// input order.
    async fn create_registration_entries(
        &self,
        entries: Vec<RegistrationEntry>,
    ) -> Result<Vec<Result<RegistrationEntry>>>;
    /// One entry by ID.
    async fn fetch_registration_entry(&self, id: &str) -> Result<Option<RegistrationEntry>>;
    /// Entries by ID, in the order asked; missing IDs are skipped.
    async fn fetch_registration_entries(&self, ids: &[String]) -> Result<Vec<RegistrationEntry>>;
    /// Entries matching every given filter, in creation order, one page at a time.
    async fn list_registration_entries(
        &self,
        request: &ListEntries,
    ) -> Result<Page<RegistrationEntry>>;
    /// Number of entries matching the filters (pagination ignored).
    async fn count_registration_entries(&self, request: &ListEntries) -> Result<u64>;
    /// Updates entries (the fields in each mask; `None` = all fields) in one transaction, per
    /// item. Each updated entry's `revision_number` goes up by one.
    async fn update_registration_entries(
        &self,
        updates: Vec<(RegistrationEntry, Option<EntryMask>)>,
    ) -> Result<Vec<Result<RegistrationEntry>>>;
    /// Deletes entries by ID in one transaction, per item (`NotFound` for unknown IDs),
    /// returning what was deleted.
    async fn delete_registration_entries(
        &self,
        ids: &[String],
    ) -> Result<Vec<Result<RegistrationEntry>>>;
    /// Deletes entries whose `expires_at` is non-zero and before `expires_before`; returns how many.
    async fn prune_registration_entries(&self, expires_before: i64) -> Result<u64>;

    // --- change events ---

    /// Events with revision greater than `after_revision`, oldest first, at most `limit`.
    async fn list_change_events(&self, after_revision: i64, limit: u32)
    -> Result<Vec<ChangeEvent>>;
    /// The newest revision written (0 when none).
    async fn latest_revision(&self) -> Result<i64>;
    /// Deletes events created before `before` (unix seconds); returns how many.
    async fn prune_change_events(&self, before: i64) -> Result<u64>;

    // --- attested nodes ---

    /// Records a newly attested node; `AlreadyExists` when its ID is taken.
    async fn create_attested_node(&self, node: AttestedNode) -> Result<AttestedNode>;
    /// One node with its selectors.
    async fn fetch_attested_node(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedNode>>;
    /// Nodes matching the filters, ordered by ID, with their selectors.
    async fn list_attested_nodes(&self, request: &ListAttestedNodes) -> Result<Page<AttestedNode>>;
    /// Number of nodes matching the filters.
    async fn count_attested_nodes(&self, request: &ListAttestedNodes) -> Result<u64>;
    /// Updates the masked fields of a node (`None` = all but selectors).
    async fn update_attested_node(
        &self,
        node: AttestedNode,
        mask: Option<NodeMask>,
    ) -> Result<AttestedNode>;
    /// Makes the node's new SVID its current one (`cert_*` ← `new_cert_*`, `new_cert_*`
    /// cleared) in one conditional write: only while its current serial is still
    /// `expected_current` (non-empty, so not banned) and its new serial is `new_serial`. A
    /// ban, an eviction or a renewal landing after the caller read the node is never undone.
    /// Returns whether it wrote (then with an `Updated` change event); a missing node is
    /// `false`, not an error.
    async fn promote_node_serial(
        &self,
        spiffe_id: &SpiffeId,
        expected_current: &str,
        new_serial: &str,
    ) -> Result<bool>;
    /// Deletes a node and its selectors, returning it.
    async fn delete_attested_node(&self, spiffe_id: &SpiffeId) -> Result<AttestedNode>;
    /// Deletes the attested nodes whose SVID expired before `expired_before` (unix seconds),
    /// with their selectors, `batch_size` nodes per transaction (0: 1 000) until none is
    /// left. Banned nodes are never pruned, nodes that cannot re-attest only with
    /// `include_non_reattestable`, and a node holding an unexpired new SVID is kept. A pruned
    /// join-token node's alias entries (parented by its ID and selecting `spiffe_id:<its ID>`)
    /// are deleted with it. Returns the pruned nodes' IDs.
    async fn prune_attested_nodes(
        &self,
        expired_before: i64,
        include_non_reattestable: bool,
        batch_size: u32,
    ) -> Result<Vec<SpiffeId>>;
    /// Replaces the selectors of a node (which need not exist yet, as in SPIRE).
    async fn set_node_selectors(&self, spiffe_id: &SpiffeId, selectors: &SelectorSet)
    -> Result<()>;

    // --- join tokens ---

    /// Stores a join token; `AlreadyExists` when the value is taken.
    async fn create_join_token(&self, token: JoinToken) -> Result<()>;
    /// Looks a token up without consuming it.
    async fn fetch_join_token(&self, token: &str) -> Result<Option<JoinToken>>;
    /// Atomically deletes and returns the token: of any number of concurrent callers with one
    /// token, exactly one gets `Some`.
    async fn take_join_token(&self, token: &str) -> Result<Option<JoinToken>>;
    /// Deletes tokens that expired before `expires_before`; returns how many.
    async fn prune_join_tokens(&self, expires_before: i64) -> Result<u64>;

    // --- federation relationships ---

    /// Stores a relationship; `AlreadyExists` for a trust domain that has one.
    async fn create_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> Result<FederationRelationship>;
    /// One relationship by trust domain.
    async fn fetch_federation_relationship(
        &self,
        trust_domain: &TrustDomain,
    ) -> Result<Option<FederationRelationship>>;
    /// Relationships ordered by trust domain, one page at a time.
    async fn list_federation_relationships(
        &self,
        page: Option<Pagination>,
    ) -> Result<Page<FederationRelationship>>;
    /// Replaces a relationship (`NotFound` when absent).
    async fn update_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> Result<FederationRelationship>;
    /// Deletes a relationship (its bundle stays: trust is removed with `delete_bundle`).
    async fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<()>;

    // --- CA journal ---

    /// Inserts (`id == 0`) or updates a CA journal, returning it with its ID.
    async fn set_ca_journal(&self, journal: CaJournal) -> Result<CaJournal>;
    /// The journal whose active X.509 authority has this ID (hex SKI).
    async fn fetch_ca_journal(&self, active_x509_authority_id: &str) -> Result<Option<CaJournal>>;
    /// Deletes journals last written before `before` (unix seconds); returns how many.
    async fn prune_ca_journals(&self, before: i64) -> Result<u64>;
}
