//! The agent's cache: the entries the server authorized for this agent, the workload X509-SVIDs
//! minted for them, the trust bundles, and the workload subscriptions that stream them.
//!
//! The cache holds state and decides; it does no I/O. The agent manager feeds it (entries and
//! bundles after each sync, SVIDs after each mint) and asks it what to mint next; the Workload
//! API and SDS endpoints subscribe with a caller's selectors and receive a [`WorkloadUpdate`]
//! on every change that concerns them.
//!
//! JWT-SVIDs are minted on demand rather than prefetched; [`JwtSvidCache`] keeps them (see
//! [`jwt`]).
//!
//! Choices: an SVID past its `notAfter` keeps being served (as SPIRE does) until the manager
//! replaces it; store_svid entries are neither minted nor served (no SVIDStore support yet).
#![forbid(unsafe_code)]

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::SystemTime;

use spire_id::{SelectorSet, SpiffeId, TrustDomain};
use spire_svid::Bundle;
use tokio::sync::{Notify, watch};

pub mod jwt;
mod rotation;
mod state;
pub mod taint;
mod update;

pub use jwt::{
    DEFAULT_JWT_SVID_CACHE_MAX_SIZE, JwtSvid, JwtSvidCache, JwtSvidError, JwtSvidKey,
    JwtSvidMinter, JwtSvidSource,
};
use state::{Published, State};

/// A registration entry as the agent knows it (what SyncAuthorizedEntries returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Entry ID; identities are ordered by it.
    pub id: String,
    /// The identity issued.
    pub spiffe_id: SpiffeId,
    /// The parent (this agent, a node alias or another entry).
    pub parent_id: SpiffeId,
    /// A workload matches when these are a subset of its selectors.
    pub selectors: SelectorSet,
    /// Trust domains whose bundles a matching workload receives.
    pub federates_with: Vec<TrustDomain>,
    /// DNS SANs of the SVID (the server sets them; kept to notice changes).
    pub dns_names: Vec<String>,
    /// Free-form hint passed to workloads.
    pub hint: String,
    /// Bumped by the server on every update.
    pub revision_number: i64,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// X509-SVID TTL in seconds (0 = server default).
    pub x509_svid_ttl: i32,
    /// The SVID goes to an SVIDStore plugin rather than to workloads.
    pub store_svid: bool,
    /// Admin workload.
    pub admin: bool,
    /// Downstream server.
    pub downstream: bool,
}

/// A minted workload X509-SVID and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedSvid {
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key.
    pub private_key: Vec<u8>,
    /// Leaf `notBefore`.
    pub not_before: SystemTime,
    /// Leaf `notAfter`.
    pub not_after: SystemTime,
}

/// One identity of a workload: an entry it matches and that entry's current SVID.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The entry.
    pub entry: Arc<Entry>,
    /// Its SVID.
    pub svid: Arc<IssuedSvid>,
}

/// The trust bundles the agent holds.
#[derive(Clone, Debug)]
pub struct Bundles {
    /// The agent's own trust domain.
    pub own: Arc<Bundle>,
    /// Federated trust domains (those its entries federate with and the server had).
    pub federated: BTreeMap<TrustDomain, Arc<Bundle>>,
}

/// What one workload (one selector set) is entitled to right now.
#[derive(Debug)]
pub struct WorkloadUpdate {
    /// Its identities, ordered by entry ID; every one has an SVID.
    pub identities: Vec<Identity>,
    /// The own trust domain's bundle.
    pub bundle: Arc<Bundle>,
    /// Bundles of the trust domains its identities federate with (those the agent holds).
    pub federated_bundles: BTreeMap<TrustDomain, Arc<Bundle>>,
    /// Per-update memo for derived values (an encoded response), built once and shared by
    /// every stream that sends this update. See [`WorkloadUpdate::memo`].
    memo: Memo,
}

/// Type-keyed, build-once storage attached to a [`WorkloadUpdate`].
#[derive(Debug, Default)]
struct Memo {
    slots: std::sync::Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

/// Cache settings.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// The agent's trust domain.
    pub trust_domain: TrustDomain,
    /// `x509_svid_cache_max_size`: SVIDs prefetched without a subscriber (default 1000, soft:
    /// SVIDs of entries with an active subscriber are never evicted).
    pub x509_svid_cache_max_size: usize,
}

/// The cache. Cheap to clone; all clones share state.
#[derive(Clone, Debug)]
pub struct Cache {
    inner: Arc<Inner>,
}

/// A workload's subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    selectors: SelectorSet,
    rx: watch::Receiver<Published>,
    cache: Weak<Inner>,
    /// The update last returned by [`Subscription::next`].
    last: Option<Arc<WorkloadUpdate>>,
}

/// Shared by every [`Cache`] clone and (weakly) by subscriptions.
struct Inner {
    state: Mutex<State>,
    bundles: watch::Sender<Arc<Bundles>>,
    work: Notify,
}

// === impl Cache ===

impl Cache {
    /// An empty cache holding `bundle` as the own trust domain's bundle.
    pub fn new(config: CacheConfig, bundle: Bundle) -> Self {
        let state = State::new(config, bundle);
        let (bundles, _) = watch::channel(Arc::clone(state.bundles()));
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                bundles,
                work: Notify::new(),
            }),
        }
    }

    // --- fed by the manager ---

    /// Replaces the authorized entries with the full set from a sync. SVIDs of removed
    /// entries are dropped; an entry whose revision, created_at, SPIFFE ID, DNS names or TTL
    /// changed needs a new SVID. Subscribers whose identities changed are notified.
    ///
    /// Until it is replaced, a stale SVID keeps being served with the new entry. Wakes
    /// [`Cache::work_available`] when the set changed.
    pub fn update_entries(&self, entries: Vec<Entry>) {
        let changed = self.inner.lock().update_entries(entries);
        if changed {
            self.inner.work.notify_one();
        }
    }

    /// The authorized entries, ordered by entry ID.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.inner.lock().entries()
    }

    /// How many X509-SVIDs the cache holds (Debug API's `svids_count`).
    pub fn svid_count(&self) -> usize {
        self.inner.lock().svid_count()
    }

    /// The trust domains any authorized entry federates with (what to fetch from the server).
    pub fn federated_trust_domains(&self) -> Vec<TrustDomain> {
        self.inner.lock().federated_trust_domains()
    }

    /// Replaces the bundles; subscribers see the change if it concerns them. SVIDs signed by
    /// an X.509 authority the own bundle marks tainted become due at once (and the minting
    /// loop is woken).
    pub fn update_bundles(&self, own: Bundle, federated: BTreeMap<TrustDomain, Bundle>) {
        let mut state = self.inner.lock();
        if let Some(bundles) = state.update_bundles(own, federated) {
            self.inner.bundles.send_replace(bundles);
            let marked = state.rotate_tainted();
            if marked > 0 {
                tracing::info!(
                    count = marked,
                    "X.509 SVIDs signed by a tainted authority are due for rotation"
                );
                self.inner.work.notify_one();
            }
        }
    }

    /// The current bundles, and every later change.
    pub fn bundles(&self) -> tokio::sync::watch::Receiver<Arc<Bundles>> {
        self.inner.bundles.subscribe()
    }

    /// The entries that need an SVID minted now: no SVID yet (up to the prefetch limit, plus
    /// every entry an active subscriber is waiting for), stale after an entry change, or due
    /// for rotation at `now` (half of the lifetime ± 10 % jitter, fixed per SVID).
    ///
    /// A pure decision: asking again before [`Cache::store_svids`] returns the same entries.
    /// store_svid entries are never returned.
    pub fn svids_to_mint(&self, now: SystemTime) -> Vec<Arc<Entry>> {
        self.inner.lock().svids_to_mint(now)
    }

    /// Stores freshly minted SVIDs by entry ID (unknown IDs are ignored) and notifies the
    /// subscribers they concern.
    pub fn store_svids(&self, svids: Vec<(String, IssuedSvid)>) {
        self.inner.lock().store_svids(svids);
    }

    /// The earliest time [`Cache::svids_to_mint`] will return a rotation, if any SVID is held.
    pub fn next_rotation(&self) -> Option<SystemTime> {
        self.inner.lock().next_rotation()
    }

    /// Resolves when there may be new minting work: entries changed, or a new subscriber waits
    /// for SVIDs that are not cached. A wakeup given while nobody waits is kept for the next
    /// call (one permit, as [`Notify::notify_one`]).
    pub async fn work_available(&self) {
        self.inner.work.notified().await;
    }

    // --- used by the workload endpoints ---

    /// Subscribes a workload with these selectors. Workloads with equal selector sets share
    /// one subscription group and one update per change.
    pub fn subscribe(&self, selectors: SelectorSet) -> Subscription {
        let (rx, waiting) = self.inner.lock().subscribe(&selectors);
        if waiting {
            self.inner.work.notify_one();
        }
        Subscription {
            selectors,
            rx,
            cache: Arc::downgrade(&self.inner),
            last: None,
        }
    }

    /// The identities of a workload with these selectors right now (entries without an SVID
    /// are left out), ordered by entry ID.
    pub fn identities(&self, selectors: &SelectorSet) -> Vec<Identity> {
        self.inner.lock().identities(selectors)
    }

    /// The entries a workload with these selectors matches right now, with or without an
    /// X509-SVID (JWT-SVIDs are minted per request), ordered by entry ID.
    pub fn matching_entries(&self, selectors: &SelectorSet) -> Vec<Arc<Entry>> {
        self.inner.lock().matching_entries(selectors)
    }

    /// What a workload with these selectors is entitled to right now, without subscribing:
    /// the update a subscription would receive (entries still waiting for an SVID left out).
    pub fn workload_update(&self, selectors: &SelectorSet) -> WorkloadUpdate {
        self.inner.lock().workload_update(selectors)
    }

    #[cfg(test)]
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }
}

// === impl Inner ===

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

// === impl Subscription ===

impl Subscription {
    /// The next update to send. The first call returns once every matching entry has an SVID
    /// (at once when no entry matches: empty identities); later calls return on each change
    /// that concerns this selector set, the latest state only. `None` once the cache is gone.
    ///
    /// Cancel-safe: an update is consumed only when it is returned.
    pub async fn next(&mut self) -> Option<Arc<WorkloadUpdate>> {
        loop {
            {
                let published = self.rx.borrow_and_update();
                if let Some(update) = &published.update {
                    let fresh = self
                        .last
                        .as_ref()
                        .is_none_or(|last| !Arc::ptr_eq(last, update));
                    let ready = self.last.is_some() || published.complete;
                    if fresh && ready {
                        let update = Arc::clone(update);
                        drop(published);
                        self.last = Some(Arc::clone(&update));
                        return Some(update);
                    }
                }
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The selectors this subscription was made with.
    pub fn selectors(&self) -> &SelectorSet {
        &self.selectors
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.cache.upgrade() {
            inner.lock().unsubscribe(&self.selectors);
        }
    }
}

// === impl IssuedSvid ===

impl std::fmt::Debug for IssuedSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSvid")
            .field("chain_len", &self.chain.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
