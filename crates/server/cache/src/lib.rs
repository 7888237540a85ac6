//! The server's in-memory authorized-entry index, fed by the datastore's change events.
//!
//! [`AuthorizedEntryCache::load`] reads every registration entry and the node selectors of
//! every attested agent, remembering the change-event revision it is current to. The latest
//! revision is read *before* listing, so a write that commits during the load is either in
//! the lists or after that revision, never lost; a write seen both ways is applied twice,
//! which is harmless because applying an event re-reads the record's current state.
//!
//! [`AuthorizedEntryCache::authorized_entries`] answers from memory (compat §1.3): the
//! entries parented by the agent ID, the node-alias entries of its trust domain (parent
//! `spiffe://<td>/spire/server`) whose selectors are all among the agent's node selectors, and
//! then, repeatedly, the entries parented by any SPIFFE ID already reached. The crawl is
//! iterative with a set of expanded parents, so a self-parented entry or a parent cycle
//! (A→B→A) ends it (security §5); the result is deduplicated and ordered by entry ID.
//!
//! # Keeping up
//!
//! A follower calls [`AuthorizedEntryCache::catch_up`], which reads the change events after
//! the cache's revision (written by this server or by any other server on the same database),
//! re-fetches the entries and nodes they name (or drops deleted ones) and advances the
//! revision. Call it whenever a local write is known to have committed, and on a short interval
//! for other servers' writes: [`AuthorizedEntryCache::run`] is that loop. Catch-ups are
//! serialized; readers are never blocked for longer than the in-memory apply of one batch.
//!
//! Events are pruned by age. A follower that falls behind the pruned window can no longer
//! learn what changed, so [`AuthorizedEntryCache::catch_up`] returns [`Error::Lagged`] when the
//! next revision it needs is gone (revisions are gap-free, so a missing one means pruned);
//! the caller must then [`AuthorizedEntryCache::reload`] (which `run` does). The cache is never
//! silently left stale.
//!
//! # Design
//!
//! The index lives behind a [`std::sync::RwLock`] and is updated in place. An immutable
//! snapshot swapped with `arc-swap` would give lock-free reads, but every catch-up would then
//! copy the whole index (O(entries), megabytes at 100k entries) to change a few records; here
//! an update costs O(records changed) under a write lock held only for the in-memory apply
//! (records are fetched before the lock is taken), and lookups take an uncontended read lock.
#![forbid(unsafe_code)]

mod feed;
mod index;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use spire_id::SpiffeId;
use spire_server_datastore::{
    Aggregate, ChangeEvent, ChangeOp, DataStore, ListAttestedNodes, ListEntries, Pagination,
    RegistrationEntry,
};
use tokio::sync::{Mutex, watch};

use crate::index::Index;

pub use feed::{ChangeFeed, FeedState};

/// Change events read per datastore call while catching up.
const EVENT_PAGE: u32 = 1_000;
/// Entries or nodes read per datastore call while loading.
const LOAD_PAGE: u32 = 10_000;

/// A cache failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The datastore failed; the cache is unchanged and the call may be retried.
    #[error(transparent)]
    Datastore(#[from] spire_server_datastore::Error),
    /// Events the cache had not applied were pruned; it must be reloaded.
    #[error(
        "authorized-entry cache lagged: at revision {revision}, next available event is {}",
        next_available.map_or_else(|| "none".to_owned(), |r| r.to_string())
    )]
    Lagged {
        /// The revision the cache is current to.
        revision: i64,
        /// The oldest revision still available after it, if any.
        next_available: Option<i64>,
    },
}

/// Result alias for cache calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one [`AuthorizedEntryCache::catch_up_changes`] applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatchUp {
    /// Events consumed.
    pub events: usize,
    /// The newest revision among events about registration entries or attested nodes.
    pub entries_revision: Option<i64>,
    /// `(trust domain name, newest revision)` of every bundle an event was about.
    pub bundles: Vec<(String, i64)>,
    /// The newest revision among events about federation relationships.
    pub relationships_revision: Option<i64>,
}

/// The authorized-entry index. Cheap to clone; clones share the index and the datastore.
#[derive(Clone, Debug)]
pub struct AuthorizedEntryCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    datastore: Arc<dyn DataStore>,
    index: RwLock<Index>,
    /// Serializes catch-ups and reloads, so events are applied once and in order.
    updating: Mutex<()>,
}

// === impl AuthorizedEntryCache ===

impl AuthorizedEntryCache {
    /// Builds the cache from every entry and attested node in `datastore`.
    pub async fn load(datastore: Arc<dyn DataStore>) -> Result<Self> {
        let index = build(datastore.as_ref()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                datastore,
                index: RwLock::new(index),
                updating: Mutex::new(()),
            }),
        })
    }

    /// Rebuilds the index from the datastore (after [`Error::Lagged`]) and swaps it in.
    pub async fn reload(&self) -> Result<()> {
        let _updating = self.inner.updating.lock().await;
        let index = build(self.inner.datastore.as_ref()).await?;
        *self.write() = index;
        Ok(())
    }

    /// The change-event revision the cache reflects.
    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// Number of registration entries held.
    pub fn entry_count(&self) -> usize {
        self.read().entry_count()
    }

    /// Number of agents whose node selectors are held.
    pub fn node_count(&self) -> usize {
        self.read().node_count()
    }

    /// Applies every change event after [`Self::revision`] and returns how many events it
    /// consumed (events about bundles and federation relationships are consumed without
    /// effect). On an error the events of the failing batch are not applied.
    pub async fn catch_up(&self) -> Result<usize> {
        Ok(self.catch_up_changes().await?.events)
    }

    /// [`Self::catch_up`], reporting what the applied events were about. On an error, earlier
    /// batches of the same call may have been applied (see [`Self::revision`]) without being
    /// reported.
    pub async fn catch_up_changes(&self) -> Result<CatchUp> {
        let _updating = self.inner.updating.lock().await;
        let datastore = self.inner.datastore.as_ref();
        let mut caught = CatchUp::default();
        loop {
            let revision = self.revision();
            let events = next_events(datastore, revision).await?;
            let Some(last) = events.last().map(|e| e.revision) else {
                return Ok(caught);
            };
            let changes = fetch_changes(datastore, &events).await?;
            let mut index = self.write();
            changes.apply(&mut index);
            index.revision = last;
            drop(index);
            caught.record(&events);
            if events.len() < EVENT_PAGE as usize {
                return Ok(caught);
            }
        }
    }

    /// The entries the agent `agent_id` is authorized for, ordered by entry ID (compat §1.3;
    /// see the crate docs).
    pub fn authorized_entries(&self, agent_id: &SpiffeId) -> Vec<Arc<RegistrationEntry>> {
        self.read().authorized_entries(agent_id)
    }

    /// Catches up every `interval` until `stop` turns `true` (or its sender is dropped),
    /// reloading after [`Error::Lagged`] and logging other failures (the next tick retries).
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            match self.catch_up().await {
                Ok(_) => {}
                Err(error @ Error::Lagged { .. }) => {
                    tracing::warn!(%error, "reloading the authorized-entry cache");
                    if let Err(error) = self.reload().await {
                        tracing::warn!(%error, "authorized-entry cache reload failed");
                    }
                }
                Err(error) => tracing::warn!(%error, "authorized-entry cache catch-up failed"),
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // The index is only written by in-memory code that does not panic midway; a poisoned
        // lock still holds a consistent index.
        self.inner
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the revision, then every node and entry.
async fn build(datastore: &dyn DataStore) -> Result<Index> {
    let mut index = Index::default();
    index.revision = datastore.latest_revision().await?;
    let mut token = String::new();
    loop {
        let request = ListAttestedNodes {
            pagination: Some(Pagination {
                token,
                page_size: LOAD_PAGE,
            }),
            ..ListAttestedNodes::default()
        };
        let page = datastore.list_attested_nodes(&request).await?;
        for node in page.items {
            index.set_node(node.spiffe_id, Some(node.selectors));
        }
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    let mut token = String::new();
    loop {
        let request = ListEntries {
            pagination: Some(Pagination {
                token,
                page_size: LOAD_PAGE,
            }),
            ..ListEntries::default()
        };
        let page = datastore.list_registration_entries(&request).await?;
        for entry in page.items {
            index.upsert_entry(entry);
        }
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    Ok(index)
}

/// The events after `revision`, checked to be contiguous from `revision + 1`.
async fn next_events(datastore: &dyn DataStore, revision: i64) -> Result<Vec<ChangeEvent>> {
    let mut events = datastore.list_change_events(revision, EVENT_PAGE).await?;
    if events.is_empty() {
        // Idle (one query), or everything after us was pruned: the counter tells. It is read
        // before listing again so that a commit in between is not mistaken for a gap.
        if datastore.latest_revision().await? <= revision {
            return Ok(events);
        }
        events = datastore.list_change_events(revision, EVENT_PAGE).await?;
    }
    for (expected, event) in (revision + 1..).zip(&events) {
        if event.revision != expected {
            return Err(Error::Lagged {
                revision,
                next_available: Some(event.revision),
            });
        }
    }
    if events.is_empty() {
        return Err(Error::Lagged {
            revision,
            next_available: None,
        });
    }
    Ok(events)
}

/// The current state of the records a batch of events names.
#[derive(Debug, Default)]
struct Changes {
    removed_entries: Vec<String>,
    entries: Vec<RegistrationEntry>,
    nodes: Vec<(SpiffeId, Option<spire_id::SelectorSet>)>,
}

async fn fetch_changes(datastore: &dyn DataStore, events: &[ChangeEvent]) -> Result<Changes> {
    let mut entry_ids: Vec<String> = Vec::new();
    let mut node_ids: Vec<SpiffeId> = Vec::new();
    let mut deleted_entries: Vec<String> = Vec::new();
    for event in events {
        match event.aggregate {
            Aggregate::RegistrationEntry => match event.op {
                ChangeOp::Deleted => deleted_entries.push(event.key.clone()),
                ChangeOp::Created | ChangeOp::Updated => entry_ids.push(event.key.clone()),
            },
            Aggregate::AttestedNode => match SpiffeId::parse(&event.key) {
                Ok(id) => node_ids.push(id),
                Err(error) => {
                    tracing::warn!(key = %event.key, %error, "change event names an invalid agent ID");
                }
            },
            Aggregate::Bundle | Aggregate::FederationRelationship => {}
        }
    }
    entry_ids.sort_unstable();
    entry_ids.dedup();
    node_ids.sort_unstable();
    node_ids.dedup();

    let mut changes = Changes {
        entries: datastore.fetch_registration_entries(&entry_ids).await?,
        ..Changes::default()
    };
    // An entry named by a create/update but gone now was deleted later (its delete event
    // follows); drop it now.
    let fetched: std::collections::HashSet<&str> =
        changes.entries.iter().map(|e| e.id.as_str()).collect();
    deleted_entries.extend(
        entry_ids
            .iter()
            .filter(|id| !fetched.contains(id.as_str()))
            .cloned(),
    );
    // A delete followed by a re-create under the same ID is applied as the fetched entry.
    deleted_entries.retain(|id| !fetched.contains(id.as_str()));
    changes.removed_entries = deleted_entries;
    for id in node_ids {
        let node = datastore.fetch_attested_node(&id).await?;
        changes.nodes.push((id, node.map(|n| n.selectors)));
    }
    Ok(changes)
}

// === impl CatchUp ===

impl CatchUp {
    fn record(&mut self, events: &[ChangeEvent]) {
        self.events += events.len();
        for event in events {
            match event.aggregate {
                Aggregate::RegistrationEntry | Aggregate::AttestedNode => {
                    self.entries_revision = Some(event.revision);
                }
                Aggregate::Bundle => {
                    match self.bundles.iter_mut().find(|(td, _)| *td == event.key) {
                        Some((_, revision)) => *revision = event.revision,
                        None => self.bundles.push((event.key.clone(), event.revision)),
                    }
                }
                Aggregate::FederationRelationship => {
                    self.relationships_revision = Some(event.revision);
                }
            }
        }
    }
}

// === impl Changes ===

impl Changes {
    fn apply(self, index: &mut Index) {
        for id in &self.removed_entries {
            index.remove_entry(id);
        }
        for entry in self.entries {
            index.upsert_entry(entry);
        }
        for (id, selectors) in self.nodes {
            index.set_node(id, selectors);
        }
    }
}
