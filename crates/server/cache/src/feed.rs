//! The change feed: one follower per server that keeps the [`AuthorizedEntryCache`] current
//! and tells everyone who cares that something changed.
//!
//! The follower ([`ChangeFeed::run`]) catches up at once when [`ChangeFeed::notify`] is
//! called (the API services call it after each write they commit) and on an interval (writes
//! made by other servers on the same database). Each catch-up that applies events publishes a
//! new [`FeedState`] through a [`tokio::sync::watch`]: a latest-value channel, so no
//! subscriber can lag or lose anything. A state only says "things may have changed up to
//! revision N"; subscribers re-read what they care about from the cache.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use spire_server_datastore::DataStore;
use tokio::sync::{Mutex, Notify, OnceCell, watch};

use crate::{AuthorizedEntryCache, Error, Result};

/// What the feed has published: revisions at which things last (may have) changed.
///
/// Every field only grows. A subscriber remembers the last state it acted on and compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedState {
    /// The change-event revision the cache reflects.
    pub revision: i64,
    /// The newest revision at which a registration entry or an attested node changed (or the
    /// cache was reloaded).
    pub entries_revision: i64,
    /// The newest revision at which a bundle changed (or the cache was reloaded).
    pub bundles_revision: i64,
    /// The newest revision at which a federation relationship changed (or the cache was
    /// reloaded).
    pub relationships_revision: i64,
    /// Full loads and reloads so far. After one, [`ChangeFeed::bundle_revision`] starts over
    /// (it only knows about bundle events seen since), so fingerprints should include this.
    pub loads: u64,
}

/// The server's change feed (see the module docs). Share it behind an [`Arc`].
#[derive(Debug)]
pub struct ChangeFeed {
    datastore: Arc<dyn DataStore>,
    /// Loaded on first use (by the follower or by a reader, whichever comes first).
    cache: OnceCell<AuthorizedEntryCache>,
    wake: Notify,
    state: watch::Sender<FeedState>,
    /// Trust domain name → newest revision of a bundle event seen since the last load.
    bundles: RwLock<HashMap<String, i64>>,
    /// Serializes catch-ups with their publication, so states are published in order.
    updating: Mutex<()>,
}

// === impl ChangeFeed ===

impl ChangeFeed {
    /// A feed over `datastore`. Nothing is read until the first [`Self::cache`],
    /// [`Self::refresh`] or [`Self::run`].
    pub fn new(datastore: Arc<dyn DataStore>) -> Self {
        Self {
            datastore,
            cache: OnceCell::new(),
            wake: Notify::new(),
            state: watch::Sender::new(FeedState::default()),
            bundles: RwLock::new(HashMap::new()),
            updating: Mutex::new(()),
        }
    }

    /// Asks the follower to catch up now (cheap; many calls before it wakes fold into one).
    /// Call it after a datastore write has committed.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// A receiver of every state published from now on (it starts at the current one).
    pub fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.state.subscribe()
    }

    /// The state published last.
    pub fn state(&self) -> FeedState {
        *self.state.borrow()
    }

    /// The newest revision of a bundle event for `trust_domain` seen since the last load
    /// (0 when none; see [`FeedState::loads`]).
    pub fn bundle_revision(&self, trust_domain: &str) -> i64 {
        self.bundles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(trust_domain)
            .copied()
            .unwrap_or_default()
    }

    /// The authorized-entry cache, loading it from the datastore on first use.
    pub async fn cache(&self) -> Result<&AuthorizedEntryCache> {
        self.cache
            .get_or_try_init(|| async {
                let cache = AuthorizedEntryCache::load(self.datastore.clone()).await?;
                self.published_load(cache.revision());
                Ok::<_, Error>(cache)
            })
            .await
    }

    /// Catches the cache up with the datastore now and publishes what changed; reloads it
    /// after [`Error::Lagged`]. Returns the state published last.
    pub async fn refresh(&self) -> Result<FeedState> {
        let _updating = self.updating.lock().await;
        let cache = self.cache().await?;
        let before = cache.revision();
        match cache.catch_up_changes().await {
            Ok(caught) => {
                if !caught.bundles.is_empty() {
                    let mut bundles = self.bundles.write().unwrap_or_else(PoisonError::into_inner);
                    for (trust_domain, revision) in &caught.bundles {
                        bundles.insert(trust_domain.clone(), *revision);
                    }
                }
                let bundles_revision = caught.bundles.iter().map(|&(_, r)| r).max();
                self.publish(
                    cache.revision(),
                    caught.entries_revision,
                    bundles_revision,
                    caught.relationships_revision,
                );
            }
            Err(error @ Error::Lagged { .. }) => {
                tracing::warn!(%error, "reloading the authorized-entry cache");
                cache.reload().await?;
                self.published_load(cache.revision());
            }
            Err(error) => {
                // Earlier batches of this catch-up may have been applied without being
                // reported: say that anything may have changed.
                if cache.revision() > before {
                    self.published_load(cache.revision());
                }
                return Err(error);
            }
        }
        Ok(self.state())
    }

    /// The follower: [`Self::refresh`] at once, then on every [`Self::notify`] and every
    /// `interval`, until `stop` turns `true` (or its sender is dropped). Failures are logged
    /// and retried on the next wake-up.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.wake.notified() => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "change feed catch-up failed");
            }
        }
    }

    fn publish(
        &self,
        revision: i64,
        entries: Option<i64>,
        bundles: Option<i64>,
        relationships: Option<i64>,
    ) {
        self.state.send_if_modified(|state| {
            let before = *state;
            state.revision = state.revision.max(revision);
            if let Some(entries) = entries {
                state.entries_revision = state.entries_revision.max(entries);
            }
            if let Some(bundles) = bundles {
                state.bundles_revision = state.bundles_revision.max(bundles);
            }
            if let Some(relationships) = relationships {
                state.relationships_revision = state.relationships_revision.max(relationships);
            }
            *state != before
        });
    }

    /// After a load: anything may have changed, and bundle revisions start over.
    fn published_load(&self, revision: i64) {
        self.bundles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.state.send_modify(|state| {
            state.revision = state.revision.max(revision);
            state.entries_revision = state.revision;
            state.bundles_revision = state.revision;
            state.relationships_revision = state.revision;
            state.loads += 1;
        });
    }
}
