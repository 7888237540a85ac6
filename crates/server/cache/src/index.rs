//! The index itself: plain data, no I/O, no locks. [`crate::AuthorizedEntryCache`] owns one
//! behind a lock and feeds it.
//!
//! SPIFFE IDs that appear as an entry's SPIFFE ID or parent are interned into small integers
//! ("ID slots"), and each ID slot lists the entries whose parent it is. The crawl then follows
//! integers through vectors, hashing nothing but the agent ID and its node selectors; that is
//! what keeps a 300-entry lookup within a few microseconds.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_datastore::RegistrationEntry;

/// The path of a server ID; entries under it are node aliases.
const SERVER_PATH: &str = "/spire/server";

/// The in-memory state at one revision.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// The newest change-event revision reflected.
    pub(crate) revision: i64,
    /// Entry slots; `None` = free.
    entries: Vec<Option<EntrySlot>>,
    free_entries: Vec<u32>,
    by_entry_id: HashMap<String, u32>,
    ids: IdTable,
    /// Node-alias entry slots, by each of their selectors.
    aliases_by_selector: HashMap<Selector, Vec<u32>>,
    /// Agent ID → the selectors its node attestation produced.
    node_selectors: HashMap<SpiffeId, SelectorSet>,
}

#[derive(Debug)]
struct EntrySlot {
    entry: Arc<RegistrationEntry>,
    /// The first 16 bytes of the entry ID, big-endian: orders like the ID for a cheap sort.
    sort_key: u128,
    spiffe: u32,
    parent: u32,
    alias: bool,
}

/// Interned SPIFFE IDs, reference-counted by the entries that name them.
#[derive(Debug, Default)]
struct IdTable {
    by_id: HashMap<SpiffeId, u32>,
    slots: Vec<IdSlot>,
    free: Vec<u32>,
}

#[derive(Debug, Default)]
struct IdSlot {
    id: Option<SpiffeId>,
    refs: u32,
    /// Entry slots whose parent is this ID.
    children: Vec<u32>,
}

// === impl Index ===

impl Index {
    /// Number of entries held.
    pub(crate) fn entry_count(&self) -> usize {
        self.by_entry_id.len()
    }

    /// Number of agents with node selectors held.
    pub(crate) fn node_count(&self) -> usize {
        self.node_selectors.len()
    }

    /// Adds or replaces an entry (matched by ID).
    pub(crate) fn upsert_entry(&mut self, entry: RegistrationEntry) {
        self.remove_entry(&entry.id);
        let spiffe = self.ids.acquire(&entry.spiffe_id);
        let parent = self.ids.acquire(&entry.parent_id);
        let alias = entry.parent_id.path() == SERVER_PATH;
        let slot = match self.free_entries.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(None);
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 entries")
            }
        };
        if alias {
            for selector in &entry.selectors {
                self.aliases_by_selector
                    .entry(selector.clone())
                    .or_default()
                    .push(slot);
            }
        }
        let key = sort_key(&entry.id);
        // Children stay sorted by entry ID, so a crawl collects sorted runs that the final
        // (run-detecting, stable) sort merges in about linear time.
        let children = &self.ids.slots[parent as usize].children;
        let at = children.partition_point(|&other| {
            let other = self.entries[other as usize]
                .as_ref()
                .expect("index lists only live entry slots");
            (other.sort_key, other.entry.id.as_str()) < (key, entry.id.as_str())
        });
        self.ids.slots[parent as usize].children.insert(at, slot);
        self.by_entry_id.insert(entry.id.clone(), slot);
        self.entries[slot as usize] = Some(EntrySlot {
            sort_key: key,
            entry: Arc::new(entry),
            spiffe,
            parent,
            alias,
        });
    }

    /// Removes an entry by ID; a no-op when it is not held.
    pub(crate) fn remove_entry(&mut self, id: &str) {
        let Some(slot) = self.by_entry_id.remove(id) else {
            return;
        };
        let Some(old) = self.entries[slot as usize].take() else {
            return;
        };
        if old.alias {
            for selector in &old.entry.selectors {
                if let Some(list) = self.aliases_by_selector.get_mut(selector) {
                    list.retain(|&s| s != slot);
                    if list.is_empty() {
                        self.aliases_by_selector.remove(selector);
                    }
                }
            }
        }
        let children = &mut self.ids.slots[old.parent as usize].children;
        if let Some(at) = children.iter().position(|&s| s == slot) {
            children.remove(at);
        }
        self.ids.release(old.spiffe);
        self.ids.release(old.parent);
        self.free_entries.push(slot);
    }

    /// Sets (or, with `None`, drops) the node selectors of an agent.
    pub(crate) fn set_node(&mut self, agent_id: SpiffeId, selectors: Option<SelectorSet>) {
        match selectors {
            Some(selectors) => {
                self.node_selectors.insert(agent_id, selectors);
            }
            None => {
                self.node_selectors.remove(&agent_id);
            }
        }
    }

    /// The crawl of compat §1.3; see [`crate::AuthorizedEntryCache::authorized_entries`].
    pub(crate) fn authorized_entries(&self, agent_id: &SpiffeId) -> Vec<Arc<RegistrationEntry>> {
        let mut found: Vec<(u128, u32)> = Vec::with_capacity(64);
        let mut stack: Vec<u32> = Vec::with_capacity(16);
        if let Some(&slot) = self.ids.by_id.get(agent_id) {
            stack.push(slot);
        }
        for alias in self.matching_aliases(agent_id) {
            let entry = self.slot(alias);
            found.push((entry.sort_key, alias));
            stack.push(entry.spiffe);
        }
        // Parents already expanded: each ID's children are listed once, so cycles and
        // self-parented entries end here.
        let mut seen: HashSet<u32, BuildHasherDefault<SlotHasher>> = HashSet::default();
        while let Some(parent) = stack.pop() {
            if !seen.insert(parent) {
                continue;
            }
            for &child in &self.ids.slots[parent as usize].children {
                let entry = self.slot(child);
                found.push((entry.sort_key, child));
                // Leaves (most workload entries) have nothing to expand: skip the seen-set.
                if !self.ids.slots[entry.spiffe as usize].children.is_empty() {
                    stack.push(entry.spiffe);
                }
            }
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.slot(a.1).entry.id.cmp(&self.slot(b.1).entry.id))
        });
        // An alias entry can also be reached as a child (when something parents the server
        // ID); equal slots are adjacent after the sort.
        found.dedup_by_key(|(_, slot)| *slot);
        found
            .iter()
            .map(|&(_, slot)| Arc::clone(&self.slot(slot).entry))
            .collect()
    }

    /// Node-alias entries of the agent's trust domain whose selectors are all among the
    /// agent's node selectors. Counts, per alias, how many of the agent's selectors list it.
    fn matching_aliases(&self, agent_id: &SpiffeId) -> Vec<u32> {
        let Some(node) = self.node_selectors.get(agent_id) else {
            return Vec::new();
        };
        let mut hits: Vec<(u32, usize)> = Vec::new();
        for selector in node {
            let Some(aliases) = self.aliases_by_selector.get(selector) else {
                continue;
            };
            for &alias in aliases {
                match hits.iter_mut().find(|(slot, _)| *slot == alias) {
                    Some((_, count)) => *count += 1,
                    None => hits.push((alias, 1)),
                }
            }
        }
        hits.into_iter()
            .filter(|&(slot, count)| {
                let entry = &self.slot(slot).entry;
                count == entry.selectors.len()
                    && entry.parent_id.trust_domain() == agent_id.trust_domain()
            })
            .map(|(slot, _)| slot)
            .collect()
    }

    fn slot(&self, slot: u32) -> &EntrySlot {
        self.entries[slot as usize]
            .as_ref()
            .expect("index lists only live entry slots")
    }
}

/// The first 16 bytes of `id` (zero-padded) as a big-endian integer: `a < b` as strings
/// implies `key(a) <= key(b)`, so sorting by key then by ID sorts by ID.
fn sort_key(id: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = id.len().min(16);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
}

// === impl IdTable ===

impl IdTable {
    fn acquire(&mut self, id: &SpiffeId) -> u32 {
        if let Some(&slot) = self.by_id.get(id) {
            self.slots[slot as usize].refs += 1;
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(IdSlot::default());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 IDs")
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.id = Some(id.clone());
        entry.refs = 1;
        self.by_id.insert(id.clone(), slot);
        slot
    }

    fn release(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        entry.refs -= 1;
        if entry.refs == 0 {
            if let Some(id) = entry.id.take() {
                self.by_id.remove(&id);
            }
            entry.children = Vec::new();
            self.free.push(slot);
        }
    }
}

/// Hashes the `u32` slot numbers of the crawl's seen-set with one multiply (Fibonacci
/// hashing) instead of SipHash: the keys are ours, not an attacker's.
#[derive(Debug, Default)]
struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(id: &str, parent: &str, spiffe: &str, selectors: &[&str]) -> RegistrationEntry {
        RegistrationEntry {
            id: id.to_owned(),
            spiffe_id: SpiffeId::parse(spiffe).unwrap(),
            parent_id: SpiffeId::parse(parent).unwrap(),
            selectors: selectors
                .iter()
                .map(|s| Selector::parse(s).unwrap())
                .collect(),
            x509_svid_ttl: 0,
            jwt_svid_ttl: 0,
            federates_with: Vec::new(),
            admin: false,
            downstream: false,
            expires_at: 0,
            dns_names: Vec::new(),
            revision_number: 0,
            store_svid: false,
            hint: String::new(),
            created_at: 0,
        }
    }

    fn ids(index: &Index, agent: &str) -> Vec<String> {
        index
            .authorized_entries(&SpiffeId::parse(agent).unwrap())
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }

    #[test]
    fn removal_frees_slots_and_ids() {
        let mut index = Index::default();
        let agent = "spiffe://td/spire/agent/a";
        index.upsert_entry(entry("b", agent, "spiffe://td/w", &["unix:uid:1"]));
        index.upsert_entry(entry(
            "a",
            "spiffe://td/w",
            "spiffe://td/x",
            &["unix:uid:2"],
        ));
        assert_eq!(ids(&index, agent), ["a", "b"]);
        index.remove_entry("b");
        assert!(ids(&index, agent).is_empty());
        index.remove_entry("a");
        assert!(index.ids.by_id.is_empty());
        assert_eq!(index.entry_count(), 0);
        // Slots are reused.
        index.upsert_entry(entry("c", agent, "spiffe://td/w", &["unix:uid:1"]));
        assert_eq!(index.entries.len(), 2);
        assert_eq!(ids(&index, agent), ["c"]);
    }

    #[test]
    fn alias_reachable_as_child_is_listed_once() {
        let mut index = Index::default();
        let agent = "spiffe://td/spire/agent/a";
        index.set_node(
            SpiffeId::parse(agent).unwrap(),
            Some([Selector::parse("x:a:1").unwrap()].into_iter().collect()),
        );
        index.upsert_entry(entry(
            "alias",
            "spiffe://td/spire/server",
            "spiffe://td/n",
            &["x:a:1"],
        ));
        index.upsert_entry(entry(
            "srv",
            agent,
            "spiffe://td/spire/server",
            &["unix:uid:0"],
        ));
        assert_eq!(ids(&index, agent), ["alias", "srv"]);
    }

    #[test]
    fn sort_key_orders_like_the_id() {
        let mut keys =
            ["b", "ab", "a", "abcdefghijklmnopq", "abcdefghijklmnop"].map(|s| (sort_key(s), s));
        keys.sort();
        assert_eq!(
            keys.map(|(_, s)| s),
            ["a", "ab", "abcdefghijklmnop", "abcdefghijklmnopq", "b"]
        );
    }
}
