//! The authorized-entry cache against a real SQLite store: the crawl of compat §1.3, cycles
//! (security §5), following change events from this and another store handle, and `Lagged`
//! after pruning.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_cache::{AuthorizedEntryCache, Error};
use spire_server_datastore::{AttestedNode, DataStore, EntryMask, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_time::{Clock as _, ManualClock, to_unix_seconds};

const AGENT: &str = "spiffe://example.org/spire/agent/x509pop/node-1";
const SERVER: &str = "spiffe://example.org/spire/server";

struct Fixture {
    store: SqlStore,
    clock: ManualClock,
    config: SqlConfig,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = SqlConfig::sqlite(dir.path().join("datastore.sqlite3"));
    let clock = ManualClock::at_fixed_instant();
    let store = SqlStore::open_with_clock(&config, Arc::new(clock.clone()))
        .await
        .unwrap();
    Fixture {
        store,
        clock,
        config,
        _dir: dir,
    }
}

impl Fixture {
    fn datastore(&self) -> Arc<dyn DataStore> {
        Arc::new(self.store.clone())
    }

    async fn cache(&self) -> AuthorizedEntryCache {
        AuthorizedEntryCache::load(self.datastore()).await.unwrap()
    }
}

fn sid(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn selectors(list: &[&str]) -> SelectorSet {
    list.iter().map(|s| Selector::parse(s).unwrap()).collect()
}

fn entry(id: &str, parent: &str, spiffe: &str, sel: &[&str]) -> RegistrationEntry {
    RegistrationEntry {
        id: id.to_owned(),
        spiffe_id: sid(spiffe),
        parent_id: sid(parent),
        selectors: selectors(sel),
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
        created_at: 1_767_225_600,
    }
}

fn node(id: &str, sel: &[&str]) -> AttestedNode {
    AttestedNode {
        spiffe_id: sid(id),
        attestation_type: "x509pop".to_owned(),
        cert_serial_number: "1".to_owned(),
        cert_not_after: 2_000_000_000,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: true,
        selectors: selectors(sel),
    }
}

async fn create(store: &SqlStore, entries: Vec<RegistrationEntry>) {
    for result in store.create_registration_entries(entries).await.unwrap() {
        result.unwrap();
    }
}

fn ids(cache: &AuthorizedEntryCache, agent: &str) -> Vec<String> {
    cache
        .authorized_entries(&sid(agent))
        .iter()
        .map(|e| e.id.clone())
        .collect()
}

#[tokio::test]
async fn direct_children_and_descendants_through_workloads() {
    let f = fixture().await;
    create(
        &f.store,
        vec![
            entry("e-2", AGENT, "spiffe://example.org/w2", &["unix:uid:2"]),
            entry("e-1", AGENT, "spiffe://example.org/w1", &["unix:uid:1"]),
            // Grandchild and great-grandchild through workload parents.
            entry(
                "g-1",
                "spiffe://example.org/w1",
                "spiffe://example.org/g1",
                &["unix:uid:3"],
            ),
            entry(
                "g-2",
                "spiffe://example.org/g1",
                "spiffe://example.org/g2",
                &["unix:uid:4"],
            ),
            // Another agent's entry and a child of it: not ours.
            entry(
                "o-1",
                "spiffe://example.org/spire/agent/x509pop/node-2",
                "spiffe://example.org/o1",
                &["unix:uid:5"],
            ),
            entry(
                "o-2",
                "spiffe://example.org/o1",
                "spiffe://example.org/o2",
                &["unix:uid:6"],
            ),
        ],
    )
    .await;
    let cache = f.cache().await;
    assert_eq!(ids(&cache, AGENT), ["e-1", "e-2", "g-1", "g-2"]);
    assert_eq!(
        ids(&cache, "spiffe://example.org/spire/agent/x509pop/node-2"),
        ["o-1", "o-2"]
    );
    assert!(ids(&cache, "spiffe://example.org/spire/agent/x509pop/none").is_empty());
    assert_eq!(cache.revision(), f.store.latest_revision().await.unwrap());
    assert_eq!(cache.entry_count(), 6);
}

#[tokio::test]
async fn node_alias_by_selector_subset() {
    let f = fixture().await;
    f.store
        .create_attested_node(node(
            AGENT,
            &["x509pop:ca:a", "x509pop:subject:cn:n1", "x:z:1"],
        ))
        .await
        .unwrap();
    f.store
        .create_attested_node(node(
            "spiffe://example.org/spire/agent/x509pop/node-2",
            &["x509pop:ca:a"],
        ))
        .await
        .unwrap();
    create(
        &f.store,
        vec![
            entry(
                "alias-ab",
                SERVER,
                "spiffe://example.org/cluster/ab",
                &["x509pop:ca:a", "x509pop:subject:cn:n1"],
            ),
            entry(
                "alias-a",
                SERVER,
                "spiffe://example.org/cluster/a",
                &["x509pop:ca:a"],
            ),
            // Needs a selector neither agent has.
            entry(
                "alias-ac",
                SERVER,
                "spiffe://example.org/cluster/ac",
                &["x509pop:ca:a", "x509pop:ca:c"],
            ),
            // Same selectors, another trust domain's server: not an alias here.
            entry(
                "alias-other-td",
                "spiffe://other.org/spire/server",
                "spiffe://other.org/cluster/a",
                &["x509pop:ca:a"],
            ),
            entry(
                "c-ab",
                "spiffe://example.org/cluster/ab",
                "spiffe://example.org/d1",
                &["unix:uid:1"],
            ),
            entry(
                "c-a",
                "spiffe://example.org/cluster/a",
                "spiffe://example.org/d2",
                &["unix:uid:2"],
            ),
            entry(
                "c-ac",
                "spiffe://example.org/cluster/ac",
                "spiffe://example.org/d3",
                &["unix:uid:3"],
            ),
            entry(
                "c-a-child",
                "spiffe://example.org/d2",
                "spiffe://example.org/d4",
                &["unix:uid:4"],
            ),
        ],
    )
    .await;
    let cache = f.cache().await;
    assert_eq!(
        ids(&cache, AGENT),
        ["alias-a", "alias-ab", "c-a", "c-a-child", "c-ab"]
    );
    // node-2 lacks `subject:cn:n1`: only the single-selector alias.
    assert_eq!(
        ids(&cache, "spiffe://example.org/spire/agent/x509pop/node-2"),
        ["alias-a", "c-a", "c-a-child"]
    );
    assert_eq!(cache.node_count(), 2);
}

#[tokio::test]
async fn self_parent_and_cycles_terminate() {
    let f = fixture().await;
    let a = "spiffe://example.org/a";
    let b = "spiffe://example.org/b";
    create(
        &f.store,
        vec![
            entry("1-a", AGENT, a, &["unix:uid:1"]),
            // A → B → A.
            entry("2-b", a, b, &["unix:uid:2"]),
            entry("3-a-again", b, a, &["unix:uid:3"]),
            // parent == SPIFFE ID.
            entry("4-self", b, b, &["unix:uid:4"]),
            entry(
                "5-self-only",
                "spiffe://example.org/s",
                "spiffe://example.org/s",
                &["unix:uid:5"],
            ),
            // An entry whose SPIFFE ID is the agent's own ID cycles back to the start.
            entry("6-agent", a, AGENT, &["unix:uid:6"]),
        ],
    )
    .await;
    let cache = f.cache().await;
    assert_eq!(
        ids(&cache, AGENT),
        ["1-a", "2-b", "3-a-again", "4-self", "6-agent"]
    );
    // Unreachable self-parented entry: only from its own ID.
    assert_eq!(ids(&cache, "spiffe://example.org/s"), ["5-self-only"]);
}

#[tokio::test]
async fn catch_up_applies_updates_deletes_and_node_changes() {
    let f = fixture().await;
    f.store
        .create_attested_node(node(AGENT, &["x:cluster:a"]))
        .await
        .unwrap();
    create(
        &f.store,
        vec![
            entry("e-1", AGENT, "spiffe://example.org/w1", &["unix:uid:1"]),
            entry(
                "alias",
                SERVER,
                "spiffe://example.org/cluster/a",
                &["x:cluster:a"],
            ),
        ],
    )
    .await;
    let cache = f.cache().await;
    assert_eq!(ids(&cache, AGENT), ["alias", "e-1"]);
    assert_eq!(cache.catch_up().await.unwrap(), 0, "idle");

    // Create, then move e-1 under another agent, delete the alias, add a child of the
    // alias ID (reachable once the alias is back).
    create(
        &f.store,
        vec![
            entry("e-2", AGENT, "spiffe://example.org/w2", &["unix:uid:2"]),
            entry(
                "c-1",
                "spiffe://example.org/cluster/a",
                "spiffe://example.org/c1",
                &["unix:uid:3"],
            ),
        ],
    )
    .await;
    let mut moved = entry(
        "e-1",
        "spiffe://example.org/spire/agent/x509pop/node-2",
        "spiffe://example.org/w1",
        &["unix:uid:1"],
    );
    moved.revision_number = 0;
    for r in f
        .store
        .update_registration_entries(vec![(
            moved,
            Some(EntryMask {
                parent_id: true,
                ..EntryMask::NONE
            }),
        )])
        .await
        .unwrap()
    {
        r.unwrap();
    }
    for r in f
        .store
        .delete_registration_entries(&["alias".to_owned()])
        .await
        .unwrap()
    {
        r.unwrap();
    }
    // Not visible before catching up.
    assert_eq!(ids(&cache, AGENT), ["alias", "e-1"]);
    assert_eq!(cache.catch_up().await.unwrap(), 4);
    assert_eq!(cache.revision(), f.store.latest_revision().await.unwrap());
    assert_eq!(ids(&cache, AGENT), ["e-2"]);
    assert_eq!(
        ids(&cache, "spiffe://example.org/spire/agent/x509pop/node-2"),
        ["e-1"]
    );

    // The alias comes back but needs a selector the node lacks; then the node gains it.
    create(
        &f.store,
        vec![entry(
            "alias-2",
            SERVER,
            "spiffe://example.org/cluster/a",
            &["x:cluster:a", "x:zone:1"],
        )],
    )
    .await;
    cache.catch_up().await.unwrap();
    assert_eq!(ids(&cache, AGENT), ["e-2"]);
    f.store
        .set_node_selectors(&sid(AGENT), &selectors(&["x:cluster:a", "x:zone:1"]))
        .await
        .unwrap();
    assert_eq!(cache.catch_up().await.unwrap(), 1);
    assert_eq!(ids(&cache, AGENT), ["alias-2", "c-1", "e-2"]);

    // Node deleted: its selectors go, its own entries stay (they are keyed by parent).
    f.store.delete_attested_node(&sid(AGENT)).await.unwrap();
    cache.catch_up().await.unwrap();
    assert_eq!(ids(&cache, AGENT), ["e-2"]);
    assert_eq!(cache.node_count(), 0);
}

#[tokio::test]
async fn follows_writes_of_another_store_handle() {
    let f = fixture().await;
    let cache = f.cache().await;
    let other = SqlStore::open_with_clock(&f.config, Arc::new(f.clock.clone()))
        .await
        .unwrap();
    create(
        &other,
        vec![entry(
            "e-1",
            AGENT,
            "spiffe://example.org/w1",
            &["unix:uid:1"],
        )],
    )
    .await;
    assert!(ids(&cache, AGENT).is_empty());
    assert_eq!(cache.catch_up().await.unwrap(), 1);
    assert_eq!(ids(&cache, AGENT), ["e-1"]);

    // The background loop picks up the next write, and stops when told.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(cache.clone().run(Duration::from_millis(10), stop_rx));
    create(
        &other,
        vec![entry(
            "e-2",
            AGENT,
            "spiffe://example.org/w2",
            &["unix:uid:2"],
        )],
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ids(&cache, AGENT).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "run loop did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn lagged_after_prune_then_reload() {
    let f = fixture().await;
    let cache = f.cache().await;
    let start = cache.revision();
    create(
        &f.store,
        vec![entry(
            "e-1",
            AGENT,
            "spiffe://example.org/w1",
            &["unix:uid:1"],
        )],
    )
    .await;
    f.clock.advance(Duration::from_secs(100));
    let now = to_unix_seconds(f.clock.now());
    // Everything after our revision is pruned, nothing newer exists.
    assert_eq!(f.store.prune_change_events(now).await.unwrap(), 1);
    match cache.catch_up().await {
        Err(Error::Lagged {
            revision,
            next_available: None,
        }) => assert_eq!(revision, start),
        other => panic!("expected Lagged, got {other:?}"),
    }
    // A newer event exists, but not the next one.
    create(
        &f.store,
        vec![entry(
            "e-2",
            AGENT,
            "spiffe://example.org/w2",
            &["unix:uid:2"],
        )],
    )
    .await;
    match cache.catch_up().await {
        Err(Error::Lagged {
            revision,
            next_available: Some(next),
        }) => {
            assert_eq!(revision, start);
            assert_eq!(next, start + 2);
        }
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert!(ids(&cache, AGENT).is_empty(), "nothing applied");
    cache.reload().await.unwrap();
    assert_eq!(ids(&cache, AGENT).len(), 2);
    assert_eq!(cache.revision(), start + 2);
    assert_eq!(cache.catch_up().await.unwrap(), 0);
}
