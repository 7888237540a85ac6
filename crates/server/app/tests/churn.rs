//! A simulated week of churn on SQLite with the server's prune passes on their schedules:
//! registration entries created and deleted (some with an expiry), agents attesting, some
//! renewing once, all eventually lapsing. The row counts of events, entries and agents stay
//! within what the windows allow, and the SQLite file stops growing once its freed pages are
//! reused. A change-feed follower that only catches up once a simulated day falls behind the
//! event window each time and reloads, ending with every entry.
//!
//! CI runs a small week (15-minute steps); `SPIRE_CHURN_FULL=1` runs 5-minute steps with ten
//! times the writes. The figures are printed (`--nocapture`).
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_api::ChangeFeed;
use spire_server_app::NodePruning;
use spire_server_app::prune::{ENTRY_PRUNE_INTERVAL, Pruner};
use spire_server_datastore::{
    AttestedNode, DataStore, ListAttestedNodes, ListEntries, NodeMask, RegistrationEntry,
};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_time::{Clock as _, ManualClock};

const HOUR: i64 = 3600;
const EVENT_WINDOW: Duration = Duration::from_secs(12 * 3600);
const NODE_EXPIRED_FOR: Duration = Duration::from_secs(24 * 3600);

/// The size of the simulated load.
struct Load {
    /// Simulated time per step.
    step: i64,
    /// Entries created per step without an expiry; the oldest are deleted beyond `kept`.
    permanent: usize,
    kept: usize,
    /// Entries created per step that expire 1 to 3 hours later.
    expiring: usize,
    /// Agents attesting per step, with a 1 to 6 hour SVID; every other one renews once.
    agents: usize,
}

impl Load {
    fn from_env() -> Self {
        if std::env::var("SPIRE_CHURN_FULL").is_ok_and(|v| v == "1") {
            Self {
                step: 300,
                permanent: 20,
                kept: 5_000,
                expiring: 20,
                agents: 5,
            }
        } else {
            Self {
                step: 900,
                permanent: 2,
                kept: 100,
                expiring: 2,
                agents: 1,
            }
        }
    }
}

/// A tiny deterministic generator (the test must not depend on luck).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn entry(n: u64, expires_at: i64) -> RegistrationEntry {
    RegistrationEntry {
        id: String::new(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/workload/{n}")).unwrap(),
        parent_id: SpiffeId::parse(&format!(
            "spiffe://example.org/spire/agent/x509pop/{}",
            n % 50
        ))
        .unwrap(),
        selectors: [
            Selector::parse(&format!("k8s:pod-uid:{n:032x}")).unwrap(),
            Selector::parse("k8s:ns:default").unwrap(),
        ]
        .into_iter()
        .collect(),
        x509_svid_ttl: 3600,
        jwt_svid_ttl: 300,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at,
        dns_names: vec![format!("w{n}.default.svc")],
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: 0,
    }
}

fn agent(n: u64, not_after: i64) -> AttestedNode {
    AttestedNode {
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/spire/agent/x509pop/a{n}"))
            .unwrap(),
        attestation_type: "x509pop".to_owned(),
        cert_serial_number: format!("{n:040x}"),
        cert_not_after: not_after,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: true,
        selectors: [
            Selector::parse(&format!("x509pop:subject:cn:node-{n}")).unwrap(),
            Selector::parse("x509pop:ca:fingerprint:0123456789abcdef").unwrap(),
        ]
        .into_iter()
        .collect::<SelectorSet>(),
    }
}

/// Rows of each kind: (events, entries, agents).
async fn rows(store: &dyn DataStore) -> (u64, u64, u64) {
    let events = store.list_change_events(0, u32::MAX).await.unwrap().len() as u64;
    let entries = store
        .count_registration_entries(&ListEntries::default())
        .await
        .unwrap();
    let agents = store
        .count_attested_nodes(&ListAttestedNodes::default())
        .await
        .unwrap();
    (events, entries, agents)
}

/// The database's size on disk: closing the last connection checkpoints the WAL into the
/// file and removes it (whatever WAL is left is counted too).
async fn file_size(store: &SqlStore, path: &Path) -> u64 {
    store.close().await;
    let wal = std::fs::metadata(path.with_extension("sqlite3-wal")).map_or(0, |m| m.len());
    std::fs::metadata(path).unwrap().len() + wal
}

struct Sim {
    clock: ManualClock,
    config: SqlConfig,
    store: SqlStore,
    ds: Arc<dyn DataStore>,
    pruner: Pruner,
    feed: Arc<ChangeFeed>,
}

impl Sim {
    async fn open(clock: ManualClock, config: SqlConfig) -> Self {
        let store = SqlStore::open_with_clock(&config, Arc::new(clock.clone()))
            .await
            .unwrap();
        let ds: Arc<dyn DataStore> = Arc::new(store.clone());
        let pruner = Pruner::with_settings(
            ds.clone(),
            Arc::new(clock.clone()),
            EVENT_WINDOW,
            Some(NodePruning {
                expired_for: NODE_EXPIRED_FOR,
                batch_size: 1_000,
                tofu_nodes: false,
            }),
        );
        let feed = Arc::new(ChangeFeed::new(ds.clone()));
        Self {
            clock,
            config,
            store,
            ds,
            pruner,
            feed,
        }
    }

    fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_churn_keeps_the_datastore_bounded() {
    let load = Load::from_env();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    let mut sim = Sim::open(
        ManualClock::at_fixed_instant(),
        SqlConfig::sqlite(path.clone()),
    )
    .await;
    sim.feed.refresh().await.unwrap();

    let mut rng = Lcg(7);
    let mut next = 0u64;
    let mut permanent: VecDeque<String> = VecDeque::new();
    // Agents that will renew once, with the time they do.
    let mut renewals: VecDeque<(i64, AttestedNode)> = VecDeque::new();
    // (time, revision) after each step, to bound the events a window may hold.
    let mut revisions: VecDeque<(i64, i64)> = VecDeque::new();
    let start = sim.now();
    let (mut next_events, mut next_nodes) = (
        start + sim.pruner.event_interval().as_secs() as i64,
        start + sim.pruner.node_interval().unwrap().as_secs() as i64,
    );
    let mut next_entries = start + ENTRY_PRUNE_INTERVAL.as_secs() as i64;
    let (mut next_day, mut days) = (start + 24 * HOUR, 0);
    let (mut writes, mut reloads) = (0u64, 0u64);
    let mut warm = None;
    let week = 7 * 24 * HOUR;

    while sim.now() - start < week {
        let now = sim.now();
        // Registrations: a batch of permanent and expiring entries, and deletes of the oldest.
        let mut batch = Vec::new();
        for _ in 0..load.permanent {
            batch.push(entry(next, 0));
            next += 1;
        }
        for _ in 0..load.expiring {
            let expires_at = now + HOUR + rng.below(2 * HOUR as u64) as i64;
            batch.push(entry(next, expires_at));
            next += 1;
        }
        for (created, is_permanent) in sim
            .ds
            .create_registration_entries(batch)
            .await
            .unwrap()
            .into_iter()
            .zip(
                (0..load.permanent)
                    .map(|_| true)
                    .chain((0..load.expiring).map(|_| false)),
            )
        {
            if is_permanent {
                permanent.push_back(created.unwrap().id);
            }
        }
        writes += 1;
        let excess = permanent.len().saturating_sub(load.kept);
        if excess > 0 {
            let ids: Vec<String> = permanent.drain(..excess).collect();
            for result in sim.ds.delete_registration_entries(&ids).await.unwrap() {
                result.unwrap();
            }
            writes += 1;
        }
        // Agents: attest with a 1-6h SVID; every other one renews once, halfway.
        for _ in 0..load.agents {
            let lifetime = HOUR + rng.below(5 * HOUR as u64) as i64;
            let node = agent(next, now + lifetime);
            next += 1;
            sim.ds.create_attested_node(node.clone()).await.unwrap();
            writes += 1;
            if next.is_multiple_of(2) {
                renewals.push_back((now + lifetime / 2, node));
            }
        }
        while renewals.front().is_some_and(|(at, _)| *at <= now) {
            let (_, mut node) = renewals.pop_front().unwrap();
            node.cert_serial_number.push('r');
            node.cert_not_after += HOUR;
            let mask = NodeMask {
                attestation_type: false,
                cert_serial_number: true,
                cert_not_after: true,
                new_cert_serial_number: false,
                new_cert_not_after: false,
                can_reattest: false,
            };
            sim.ds.update_attested_node(node, Some(mask)).await.unwrap();
            writes += 1;
        }

        // The server's passes, each on its schedule.
        if now >= next_entries {
            sim.pruner.prune_entries().await.unwrap();
            next_entries += ENTRY_PRUNE_INTERVAL.as_secs() as i64;
        }
        if now >= next_events {
            sim.pruner.prune_events().await.unwrap();
            next_events += sim.pruner.event_interval().as_secs() as i64;
        }
        if now >= next_nodes {
            sim.pruner.prune_nodes().await.unwrap();
            next_nodes += sim.pruner.node_interval().unwrap().as_secs() as i64;
        }
        revisions.push_back((now, sim.ds.latest_revision().await.unwrap()));

        // Once a day the follower catches up: a day behind a 12h window, so it reloads.
        if now >= next_day {
            days += 1;
            next_day += 24 * HOUR;
            let loads = sim.feed.state().loads;
            let state = sim.feed.refresh().await.unwrap();
            reloads += state.loads - loads;
            let (_, entries, _) = rows(sim.ds.as_ref()).await;
            assert_eq!(
                sim.feed.cache().await.unwrap().entry_count() as u64,
                entries,
                "day {days}: the reloaded cache holds every entry"
            );
            if days == 2 {
                // Warmed up: every window has filled and been pruned at least once.
                let counts = rows(sim.ds.as_ref()).await;
                let size = file_size(&sim.store, &path).await;
                warm = Some((counts, size));
                eprintln!(
                    "churn warm-up (2 days): events {} entries {} agents {}, file {} KiB",
                    counts.0,
                    counts.1,
                    counts.2,
                    size / 1024
                );
                let (clock, config) = (sim.clock.clone(), sim.config.clone());
                sim = Sim::open(clock, config).await;
                sim.feed.refresh().await.unwrap();
            }
        }
        sim.clock.advance(Duration::from_secs(load.step as u64));
    }

    let now = sim.now();
    let (events, entries, agents) = rows(sim.ds.as_ref()).await;
    let size = file_size(&sim.store, &path).await;
    let ((warm_events, warm_entries, warm_agents), warm_size) = warm.unwrap();
    eprintln!(
        "churn end (7 days, {} steps of {}s, {writes} writes, {} revisions): events {events} \
         entries {entries} agents {agents}, file {} KiB; follower reloads {reloads}",
        week / load.step,
        load.step,
        revisions.back().unwrap().1,
        size / 1024
    );

    // Events: at most those written in the window plus one pass interval.
    let horizon = |age: i64| {
        let newest = revisions.back().unwrap().1;
        let before = revisions
            .iter()
            .rev()
            .find(|(t, _)| now - t > age)
            .map_or(0, |(_, r)| *r);
        (newest - before) as u64
    };
    let window = EVENT_WINDOW.as_secs() as i64;
    assert!(
        events <= horizon(window + window / 2 + load.step),
        "events {events} exceed the window's"
    );
    // Entries: the kept permanent ones plus those not yet expired (3h, one pass late).
    let expiring_bound = (3 * HOUR + ENTRY_PRUNE_INTERVAL.as_secs() as i64) / load.step + 1;
    assert!(
        entries <= (load.kept + load.expiring * expiring_bound as usize) as u64,
        "entries {entries}"
    );
    // Agents: those attested within the longest SVID (6h, renewed +1h), the pruning age and
    // one pass interval.
    let agent_steps = (7 * HOUR + NODE_EXPIRED_FOR.as_secs() as i64 + HOUR) / load.step + 1;
    assert!(
        agents <= (load.agents as i64 * agent_steps) as u64,
        "agents {agents}"
    );
    // No growth after the warm-up: the same load keeps the same rows (events swing between
    // 12 and 18 hours' worth with the pass, bounded above), and the file reuses the pages
    // freed by pruning (slack for where the windows' edges fall).
    assert!(events <= warm_events * 2, "{events} vs {warm_events}");
    assert!(
        entries <= warm_entries * 5 / 4,
        "{entries} vs {warm_entries}"
    );
    assert!(agents <= warm_agents * 5 / 4, "{agents} vs {warm_agents}");
    assert!(
        size <= warm_size * 5 / 4,
        "the file grew from {warm_size} to {size} bytes"
    );
    assert!(reloads >= 5, "the daily follower lagged and reloaded");
}
