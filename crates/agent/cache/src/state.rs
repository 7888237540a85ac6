//! The cache's state behind its lock: entries with their SVIDs, a selector index, the
//! subscription groups and the bundles. Every method runs under the lock and does no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use spire_id::{Selector, SelectorSet, TrustDomain};
use spire_svid::Bundle;
use tokio::sync::watch;

use crate::{Bundles, CacheConfig, Entry, Identity, IssuedSvid, WorkloadUpdate, rotation};

/// The mutable state of a [`crate::Cache`].
#[derive(Debug)]
pub(crate) struct State {
    config: CacheConfig,
    /// Authorized entries by entry ID, each with its SVID if one is held.
    slots: BTreeMap<String, Slot>,
    /// Entry IDs by the entry's first selector: a workload can only match an entry whose
    /// first selector it has, so a lookup visits only candidates.
    index: HashMap<Selector, BTreeSet<String>>,
    /// Entries without selectors (they match every workload).
    unconditional: BTreeSet<String>,
    /// Subscription groups by selector set.
    groups: HashMap<SelectorSet, Group>,
    bundles: Arc<Bundles>,
    /// Logical clock for LRU eviction.
    tick: u64,
}

/// One authorized entry.
#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    svid: Option<Held>,
    /// The entry as last handed out by `svids_to_mint`, until an SVID is stored: what the
    /// stored SVID was minted for.
    minting: Option<Arc<Entry>>,
}

/// A held SVID and what decides its replacement.
#[derive(Debug)]
struct Held {
    svid: Arc<IssuedSvid>,
    /// The entry the SVID was minted for (to notice stale SVIDs).
    minted_for: Arc<Entry>,
    rotate_at: SystemTime,
    last_used: u64,
}

/// The workloads that share one selector set.
#[derive(Debug)]
struct Group {
    tx: watch::Sender<Published>,
    subscribers: usize,
}

/// What a group publishes to its subscriptions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Published {
    /// The latest update; `None` until the group was first complete.
    pub(crate) update: Option<Arc<WorkloadUpdate>>,
    /// Every matching entry has an SVID.
    pub(crate) complete: bool,
}

// === impl State ===

impl State {
    pub(crate) fn new(config: CacheConfig, bundle: Bundle) -> Self {
        Self {
            config,
            slots: BTreeMap::new(),
            index: HashMap::new(),
            unconditional: BTreeSet::new(),
            groups: HashMap::new(),
            bundles: Arc::new(Bundles {
                own: Arc::new(bundle),
                federated: BTreeMap::new(),
            }),
            tick: 0,
        }
    }

    pub(crate) fn bundles(&self) -> &Arc<Bundles> {
        &self.bundles
    }

    pub(crate) fn svid_count(&self) -> usize {
        self.slots.values().filter(|s| s.svid.is_some()).count()
    }

    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.slots.values().map(|s| Arc::clone(&s.entry)).collect()
    }

    pub(crate) fn federated_trust_domains(&self) -> Vec<TrustDomain> {
        let tds: BTreeSet<&TrustDomain> = self
            .slots
            .values()
            .flat_map(|s| s.entry.federates_with.iter())
            .collect();
        tds.into_iter().cloned().collect()
    }

    /// Replaces the entry set; returns true when anything changed.
    pub(crate) fn update_entries(&mut self, entries: Vec<Entry>) -> bool {
        let mut old_slots = std::mem::take(&mut self.slots);
        let mut removed: Vec<Arc<Entry>> = Vec::new();
        let mut added: Vec<Arc<Entry>> = Vec::new();
        for entry in entries {
            let slot = match self.slots.remove(&entry.id) {
                // A duplicate ID in one sync: the later one wins.
                Some(slot) => Some(slot),
                None => old_slots.remove(&entry.id),
            };
            let slot = match slot {
                Some(mut slot) => {
                    if *slot.entry != entry {
                        removed.push(Arc::clone(&slot.entry));
                        slot.entry = Arc::new(entry);
                        added.push(Arc::clone(&slot.entry));
                    }
                    slot
                }
                None => {
                    let entry = Arc::new(entry);
                    added.push(Arc::clone(&entry));
                    Slot {
                        entry,
                        svid: None,
                        minting: None,
                    }
                }
            };
            self.slots.insert(slot.entry.id.clone(), slot);
        }
        removed.extend(old_slots.into_values().map(|s| s.entry));
        if removed.is_empty() && added.is_empty() {
            return false;
        }
        for entry in &removed {
            self.unindex(entry);
        }
        for entry in &added {
            self.index_entry(entry);
        }
        let mut changed = removed;
        changed.extend(added);
        self.refresh_groups(|key, _| concerns(&changed, key));
        true
    }

    /// Stores minted SVIDs and refreshes the groups they concern.
    pub(crate) fn store_svids(&mut self, svids: Vec<(String, IssuedSvid)>) {
        let mut stored: Vec<Arc<Entry>> = Vec::new();
        for (id, svid) in svids {
            let Some(slot) = self.slots.get_mut(&id) else {
                tracing::debug!(entry_id = %id, "ignoring SVID for an unknown entry");
                continue;
            };
            self.tick += 1;
            let minted_for = slot
                .minting
                .take()
                .unwrap_or_else(|| Arc::clone(&slot.entry));
            slot.svid = Some(Held {
                rotate_at: rotation::deadline(&svid),
                svid: Arc::new(svid),
                minted_for,
                last_used: self.tick,
            });
            stored.push(Arc::clone(&slot.entry));
        }
        if stored.is_empty() {
            return;
        }
        self.refresh_groups(|key, _| concerns(&stored, key));
        self.evict();
    }

    /// Replaces the bundles; returns the new set when anything changed.
    pub(crate) fn update_bundles(
        &mut self,
        own: Bundle,
        federated: BTreeMap<TrustDomain, Bundle>,
    ) -> Option<Arc<Bundles>> {
        let old = Arc::clone(&self.bundles);
        let own_changed = *old.own != own;
        let own = if own_changed {
            Arc::new(own)
        } else {
            Arc::clone(&old.own)
        };
        let mut changed_tds: BTreeSet<TrustDomain> = old
            .federated
            .keys()
            .filter(|td| !federated.contains_key(*td))
            .cloned()
            .collect();
        let federated: BTreeMap<TrustDomain, Arc<Bundle>> = federated
            .into_iter()
            .map(|(td, bundle)| {
                let bundle = match old.federated.get(&td) {
                    Some(held) if **held == bundle => Arc::clone(held),
                    _ => {
                        changed_tds.insert(td.clone());
                        Arc::new(bundle)
                    }
                };
                (td, bundle)
            })
            .collect();
        if !own_changed && changed_tds.is_empty() {
            return None;
        }
        self.bundles = Arc::new(Bundles { own, federated });
        self.refresh_groups(|_, published| {
            own_changed
                || published.update.as_ref().is_some_and(|u| {
                    u.identities.iter().any(|i| {
                        i.entry
                            .federates_with
                            .iter()
                            .any(|td| changed_tds.contains(td))
                    })
                })
        });
        Some(Arc::clone(&self.bundles))
    }

    /// The entries to mint now (see [`crate::Cache::svids_to_mint`]).
    /// Makes every held SVID that a tainted X.509 authority of the own bundle signed due at
    /// once (SPIRE's forced rotation after `localauthority x509 taint`); returns how many.
    pub(crate) fn rotate_tainted(&mut self) -> usize {
        let tainted = crate::taint::TaintedAuthorities::of(&self.bundles.own);
        if tainted.is_empty() {
            return 0;
        }
        let mut marked = 0;
        for slot in self.slots.values_mut() {
            if let Some(held) = &mut slot.svid
                && held.rotate_at > SystemTime::UNIX_EPOCH
                && tainted.signed(&held.svid.chain)
            {
                held.rotate_at = SystemTime::UNIX_EPOCH;
                marked += 1;
            }
        }
        marked
    }

    pub(crate) fn svids_to_mint(&mut self, now: SystemTime) -> Vec<Arc<Entry>> {
        let due_ids: Vec<String> = {
            let subscribed = self.subscribed_ids();
            let held = self.slots.values().filter(|s| s.svid.is_some()).count();
            // Subscribed entries waiting for an SVID take their room first, so a prefetch is
            // never evicted as soon as it is stored.
            let waiting = subscribed
                .iter()
                .filter(|id| self.slots.get(**id).is_some_and(|s| s.svid.is_none()))
                .count();
            let mut budget = self
                .config
                .x509_svid_cache_max_size
                .saturating_sub(held + waiting);
            self.slots
                .iter()
                .filter(|(_, slot)| !slot.entry.store_svid)
                .filter(|(id, slot)| match &slot.svid {
                    None if subscribed.contains(id.as_str()) => true,
                    None if budget > 0 => {
                        budget -= 1;
                        true
                    }
                    None => false,
                    Some(held) => is_stale(&held.minted_for, &slot.entry) || now >= held.rotate_at,
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        let mut due = Vec::with_capacity(due_ids.len());
        for id in due_ids {
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.minting = Some(Arc::clone(&slot.entry));
                due.push(Arc::clone(&slot.entry));
            }
        }
        due
    }

    pub(crate) fn next_rotation(&self) -> Option<SystemTime> {
        self.slots
            .values()
            .filter(|s| !s.entry.store_svid)
            .filter_map(|s| s.svid.as_ref().map(|h| h.rotate_at))
            .min()
    }

    /// Joins (or creates) the group of `selectors`; the flag is true when the group waits for
    /// SVIDs that are not held.
    pub(crate) fn subscribe(
        &mut self,
        selectors: &SelectorSet,
    ) -> (watch::Receiver<Published>, bool) {
        if !self.groups.contains_key(selectors) {
            let (tx, _) = watch::channel(Published::default());
            let (update, complete) = self.build(selectors);
            publish(&tx, update, complete);
            self.groups
                .insert(selectors.clone(), Group { tx, subscribers: 0 });
        }
        let group = self
            .groups
            .get_mut(selectors)
            .expect("the group was inserted above");
        group.subscribers += 1;
        let rx = group.tx.subscribe();
        let waiting = !rx.borrow().complete;
        (rx, waiting)
    }

    /// Leaves the group of `selectors`, dropping it with its last subscriber.
    pub(crate) fn unsubscribe(&mut self, selectors: &SelectorSet) {
        let Some(group) = self.groups.get_mut(selectors) else {
            return;
        };
        group.subscribers = group.subscribers.saturating_sub(1);
        if group.subscribers > 0 {
            return;
        }
        self.groups.remove(selectors);
        // Its SVIDs were in use until now: the most recently used of the unsubscribed.
        self.tick += 1;
        let tick = self.tick;
        let ids: Vec<String> = self
            .matching(selectors)
            .iter()
            .map(|s| s.entry.id.clone())
            .collect();
        for id in ids {
            if let Some(held) = self.slots.get_mut(&id).and_then(|s| s.svid.as_mut()) {
                held.last_used = tick;
            }
        }
        self.evict();
    }

    /// The identities of a workload with `selectors` right now.
    pub(crate) fn identities(&mut self, selectors: &SelectorSet) -> Vec<Identity> {
        self.tick += 1;
        let tick = self.tick;
        let ids: Vec<String> = self
            .matching(selectors)
            .iter()
            .map(|s| s.entry.id.clone())
            .collect();
        let mut identities = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            if let Some(held) = slot.svid.as_mut() {
                held.last_used = tick;
                identities.push(Identity {
                    entry: Arc::clone(&slot.entry),
                    svid: Arc::clone(&held.svid),
                });
            }
        }
        identities
    }

    /// The entries matching `selectors`, by entry ID.
    pub(crate) fn matching_entries(&self, selectors: &SelectorSet) -> Vec<Arc<Entry>> {
        self.matching(selectors)
            .into_iter()
            .map(|s| Arc::clone(&s.entry))
            .collect()
    }

    /// The update of `selectors` as it stands.
    pub(crate) fn workload_update(&self, selectors: &SelectorSet) -> WorkloadUpdate {
        self.build(selectors).0
    }

    /// Number of subscription groups (tests).
    #[cfg(test)]
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of held SVIDs (tests).
    #[cfg(test)]
    pub(crate) fn held_count(&self) -> usize {
        self.slots.values().filter(|s| s.svid.is_some()).count()
    }

    // --- internals ---

    /// The non-store_svid entries whose selectors are a subset of `selectors`, by entry ID.
    fn matching(&self, selectors: &SelectorSet) -> Vec<&Slot> {
        let mut ids: Vec<&String> = selectors
            .iter()
            .filter_map(|s| self.index.get(s))
            .flatten()
            .chain(&self.unconditional)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.slots.get(id))
            .filter(|s| !s.entry.store_svid && s.entry.selectors.is_subset(selectors))
            .collect()
    }

    /// The update of a group with `selectors` and whether every matching entry has an SVID.
    fn build(&self, selectors: &SelectorSet) -> (WorkloadUpdate, bool) {
        let mut complete = true;
        let mut identities = Vec::new();
        for slot in self.matching(selectors) {
            match &slot.svid {
                Some(held) => identities.push(Identity {
                    entry: Arc::clone(&slot.entry),
                    svid: Arc::clone(&held.svid),
                }),
                None => complete = false,
            }
        }
        let mut federated = BTreeMap::new();
        for identity in &identities {
            for td in &identity.entry.federates_with {
                if let Some(bundle) = self.bundles.federated.get(td) {
                    federated.insert(td.clone(), Arc::clone(bundle));
                }
            }
        }
        let update = WorkloadUpdate::new(identities, Arc::clone(&self.bundles.own), federated);
        (update, complete)
    }

    /// Recomputes the groups selected by `affected` and publishes those whose content changed.
    fn refresh_groups(&self, affected: impl Fn(&SelectorSet, &Published) -> bool) {
        for (selectors, group) in &self.groups {
            if !affected(selectors, &group.tx.borrow()) {
                continue;
            }
            let (update, complete) = self.build(selectors);
            publish(&group.tx, update, complete);
        }
    }

    /// Entry IDs that some subscription group matches.
    fn subscribed_ids(&self) -> HashSet<&str> {
        self.groups
            .keys()
            .flat_map(|selectors| self.matching(selectors))
            .map(|s| s.entry.id.as_str())
            .collect()
    }

    /// Drops least recently used SVIDs of unsubscribed entries while more than
    /// `x509_svid_cache_max_size` are held.
    fn evict(&mut self) {
        let max = self.config.x509_svid_cache_max_size;
        let held = self.slots.values().filter(|s| s.svid.is_some()).count();
        if held <= max {
            return;
        }
        let subscribed = self.subscribed_ids();
        let mut candidates: Vec<(u64, String)> = self
            .slots
            .iter()
            .filter(|(id, _)| !subscribed.contains(id.as_str()))
            .filter_map(|(id, s)| s.svid.as_ref().map(|h| (h.last_used, id.clone())))
            .collect();
        candidates.sort_unstable();
        let excess = held - max;
        for (_, id) in candidates.into_iter().take(excess) {
            if let Some(slot) = self.slots.get_mut(&id) {
                tracing::debug!(entry_id = %id, "evicting cached SVID");
                slot.svid = None;
            }
        }
    }

    fn index_entry(&mut self, entry: &Entry) {
        match entry.selectors.iter().next() {
            Some(first) => {
                self.index
                    .entry(first.clone())
                    .or_default()
                    .insert(entry.id.clone());
            }
            None => {
                self.unconditional.insert(entry.id.clone());
            }
        }
    }

    fn unindex(&mut self, entry: &Entry) {
        match entry.selectors.iter().next() {
            Some(first) => {
                if let Some(ids) = self.index.get_mut(first) {
                    ids.remove(&entry.id);
                    if ids.is_empty() {
                        self.index.remove(first);
                    }
                }
            }
            None => {
                self.unconditional.remove(&entry.id);
            }
        }
    }
}

/// Above this many changed entries every group is rebuilt rather than tested entry by entry
/// (a rebuild visits only the group's candidates; an unchanged result is not published).
const REBUILD_ALL_ABOVE: usize = 32;

/// True when a change of `entries` may concern the group of `selectors`.
fn concerns(entries: &[Arc<Entry>], selectors: &SelectorSet) -> bool {
    entries.len() > REBUILD_ALL_ABOVE || entries.iter().any(|e| e.selectors.is_subset(selectors))
}

/// An SVID minted for `minted_for` no longer fits `current`.
fn is_stale(minted_for: &Entry, current: &Entry) -> bool {
    minted_for.spiffe_id != current.spiffe_id
        || minted_for.dns_names != current.dns_names
        || minted_for.x509_svid_ttl != current.x509_svid_ttl
        || minted_for.revision_number != current.revision_number
        || minted_for.created_at != current.created_at
}

/// Publishes `update` unless it equals the current one. Nothing is published before the
/// group is first complete; the flip to complete always wakes (first `next()` waits for it).
fn publish(tx: &watch::Sender<Published>, update: WorkloadUpdate, complete: bool) {
    tx.send_if_modified(|published| {
        let became_complete = complete && !published.complete;
        published.complete = complete;
        match &published.update {
            Some(current) if current.same_content(&update) => became_complete,
            None if !complete => false,
            _ => {
                published.update = Some(Arc::new(update));
                true
            }
        }
    });
}
