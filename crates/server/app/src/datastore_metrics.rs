//! SPIRE's datastore call series: every [`DataStore`] call counted and timed under
//! `datastore_<record>_<operation>` (with `_elapsed_time`), labelled with the call's status as
//! a gRPC code name, by a wrapper around the store the server opened.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use spire_id::{SelectorSet, SpiffeId, TrustDomain};
use spire_metrics::{CallCounter, Code, Registry};
use spire_server_datastore::{
    AttestedNode, BundleDeleteMode, BundleEdit, CaJournal, ChangeEvent, DataStore, EntryMask,
    Error, FederationRelationship, JoinToken, ListAttestedNodes, ListEntries, NodeMask, Page,
    Pagination, RegistrationEntry, Result,
};
use spire_svid::Bundle;

/// A [`DataStore`] that records each call's count, duration and status.
#[derive(Debug)]
pub(crate) struct Metered {
    inner: Arc<dyn DataStore>,
    /// One per method, in [`Method`] order.
    calls: Vec<CallCounter>,
}

impl Metered {
    pub(crate) fn new(inner: Arc<dyn DataStore>, metrics: &Registry) -> Self {
        let calls = KEYS.iter().map(|key| metrics.call(key, &[])).collect();
        Self { inner, calls }
    }

    async fn timed<T>(&self, method: Method, call: impl Future<Output = Result<T>>) -> Result<T> {
        let timer = self.calls[method as usize].start();
        let result = call.await;
        timer.finish(result.as_ref().map_or_else(code, |_| Code::Ok));
        result
    }
}

/// Declares each method with its key (after `datastore`): the [`Method`] index, the key
/// table and the delegating implementation, from one list.
macro_rules! metered {
    ($( [$($key:literal),+] fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        #[allow(non_camel_case_types, clippy::enum_variant_names)]
        #[derive(Clone, Copy)]
        enum Method { $($name),* }

        const KEYS: &[&[&str]] = &[$(&["datastore", $($key),+]),*];

        #[async_trait]
        impl DataStore for Metered {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.timed(Method::$name, self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

// SPIRE's keys where SPIRE has the call (`bundle.fetch`, `node.selectors.set`, …); ours for
// what is ours (`bundle.edit` for taint and revoke, `change_event.*`). A take of a join token
// is SPIRE's delete; a serial promotion is a node update.
metered! {
    ["bundle", "create"] fn create_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    ["bundle", "fetch"] fn fetch_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<Bundle>>;
    ["bundle", "list"] fn list_bundles(&self, page: Option<Pagination>) -> Result<Page<Bundle>>;
    ["bundle", "count"] fn count_bundles(&self) -> Result<u64>;
    ["bundle", "update"] fn update_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    ["bundle", "set"] fn set_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    ["bundle", "append"] fn append_bundle(&self, bundle: Bundle) -> Result<Bundle>;
    ["bundle", "delete"] fn delete_bundle(&self, trust_domain: &TrustDomain, mode: BundleDeleteMode) -> Result<()>;
    ["bundle", "prune"] fn prune_bundle(&self, trust_domain: &TrustDomain, expires_before: i64) -> Result<bool>;
    ["bundle", "edit"] fn edit_bundle(&self, trust_domain: &TrustDomain, edit: BundleEdit) -> Result<Bundle>;
    ["registration_entry", "create"] fn create_registration_entries(&self, entries: Vec<RegistrationEntry>) -> Result<Vec<Result<RegistrationEntry>>>;
    ["registration_entry", "fetch"] fn fetch_registration_entry(&self, id: &str) -> Result<Option<RegistrationEntry>>;
    ["registration_entry", "fetch"] fn fetch_registration_entries(&self, ids: &[String]) -> Result<Vec<RegistrationEntry>>;
    ["registration_entry", "list"] fn list_registration_entries(&self, request: &ListEntries) -> Result<Page<RegistrationEntry>>;
    ["registration_entry", "count"] fn count_registration_entries(&self, request: &ListEntries) -> Result<u64>;
    ["registration_entry", "update"] fn update_registration_entries(&self, updates: Vec<(RegistrationEntry, Option<EntryMask>)>) -> Result<Vec<Result<RegistrationEntry>>>;
    ["registration_entry", "delete"] fn delete_registration_entries(&self, ids: &[String]) -> Result<Vec<Result<RegistrationEntry>>>;
    ["registration_entry", "prune"] fn prune_registration_entries(&self, expires_before: i64) -> Result<u64>;
    ["change_event", "list"] fn list_change_events(&self, after_revision: i64, limit: u32) -> Result<Vec<ChangeEvent>>;
    ["change_event", "latest"] fn latest_revision(&self) -> Result<i64>;
    ["change_event", "prune"] fn prune_change_events(&self, before: i64) -> Result<u64>;
    ["node", "create"] fn create_attested_node(&self, node: AttestedNode) -> Result<AttestedNode>;
    ["node", "fetch"] fn fetch_attested_node(&self, spiffe_id: &SpiffeId) -> Result<Option<AttestedNode>>;
    ["node", "list"] fn list_attested_nodes(&self, request: &ListAttestedNodes) -> Result<Page<AttestedNode>>;
    ["node", "count"] fn count_attested_nodes(&self, request: &ListAttestedNodes) -> Result<u64>;
    ["node", "update"] fn update_attested_node(&self, node: AttestedNode, mask: Option<NodeMask>) -> Result<AttestedNode>;
    ["node", "update"] fn promote_node_serial(&self, spiffe_id: &SpiffeId, expected_current: &str, new_serial: &str) -> Result<bool>;
    ["node", "delete"] fn delete_attested_node(&self, spiffe_id: &SpiffeId) -> Result<AttestedNode>;
    ["node", "prune"] fn prune_attested_nodes(&self, expired_before: i64, include_non_reattestable: bool, batch_size: u32) -> Result<Vec<SpiffeId>>;
    ["node", "selectors", "set"] fn set_node_selectors(&self, spiffe_id: &SpiffeId, selectors: &SelectorSet) -> Result<()>;
    ["join_token", "create"] fn create_join_token(&self, token: JoinToken) -> Result<()>;
    ["join_token", "fetch"] fn fetch_join_token(&self, token: &str) -> Result<Option<JoinToken>>;
    ["join_token", "delete"] fn take_join_token(&self, token: &str) -> Result<Option<JoinToken>>;
    ["join_token", "prune"] fn prune_join_tokens(&self, expires_before: i64) -> Result<u64>;
    ["federation_relationship", "create"] fn create_federation_relationship(&self, relationship: FederationRelationship) -> Result<FederationRelationship>;
    ["federation_relationship", "fetch"] fn fetch_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<Option<FederationRelationship>>;
    ["federation_relationship", "list"] fn list_federation_relationships(&self, page: Option<Pagination>) -> Result<Page<FederationRelationship>>;
    ["federation_relationship", "update"] fn update_federation_relationship(&self, relationship: FederationRelationship) -> Result<FederationRelationship>;
    ["federation_relationship", "delete"] fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> Result<()>;
    ["ca_journal", "set"] fn set_ca_journal(&self, journal: CaJournal) -> Result<CaJournal>;
    ["ca_journal", "fetch"] fn fetch_ca_journal(&self, active_x509_authority_id: &str) -> Result<Option<CaJournal>>;
    ["ca_journal", "prune"] fn prune_ca_journals(&self, before: i64) -> Result<u64>;
}

/// A datastore error as the gRPC status SPIRE's wrapper labels it with: the store's own
/// status codes, `Unknown` for a database failure.
fn code(error: &Error) -> Code {
    match error {
        Error::NotFound(_) => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        _ => Code::Unknown,
    }
}
