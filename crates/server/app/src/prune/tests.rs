//! The prune passes over a real SQLite store on a manual clock.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_api::ChangeFeed;
use spire_server_datastore::{AttestedNode, DataStore, JoinToken, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_time::{Clock as _, ManualClock};

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

struct Fixture {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    store: Arc<dyn DataStore>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_fixed_instant();
    let store = SqlStore::open_with_clock(
        &SqlConfig::sqlite(dir.path().join("ds.sqlite3")),
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        clock,
        store: Arc::new(store),
    }
}

impl Fixture {
    fn pruner(&self, nodes: Option<NodePruning>) -> Pruner {
        Pruner::with_settings(
            self.store.clone(),
            Arc::new(self.clock.clone()),
            12 * HOUR,
            nodes,
        )
    }

    fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }
}

fn entry(path: &str, expires_at: i64) -> RegistrationEntry {
    RegistrationEntry {
        id: String::new(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/x509pop/a").unwrap(),
        selectors: [Selector::parse("unix:uid:1").unwrap()]
            .into_iter()
            .collect(),
        x509_svid_ttl: 0,
        jwt_svid_ttl: 0,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at,
        dns_names: Vec::new(),
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: 0,
    }
}

fn node(name: &str, not_after: i64, can_reattest: bool) -> AttestedNode {
    AttestedNode {
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/spire/agent/t/{name}")).unwrap(),
        attestation_type: "t".to_owned(),
        cert_serial_number: "1".to_owned(),
        cert_not_after: not_after,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest,
        selectors: SelectorSet::new(),
    }
}

#[tokio::test]
async fn events_older_than_the_window_are_pruned() {
    let f = fixture().await;
    let pruner = f.pruner(None);
    f.store
        .create_registration_entries(vec![entry("/old", 0)])
        .await
        .unwrap();
    f.clock.advance(12 * HOUR + Duration::from_secs(1));
    f.store
        .create_registration_entries(vec![entry("/new", 0)])
        .await
        .unwrap();
    assert_eq!(pruner.prune_events().await.unwrap(), 1);
    let left = f.store.list_change_events(0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].revision, 2);
    assert_eq!(pruner.event_interval(), 6 * HOUR, "every half window");
}

#[tokio::test]
async fn expired_entries_and_join_tokens_are_pruned_and_the_feed_follows() {
    let f = fixture().await;
    let feed = Arc::new(ChangeFeed::new(f.store.clone()));
    let pruner = f.pruner(None).notifying(feed.clone());
    let now = f.now();
    f.store
        .create_registration_entries(vec![
            entry("/expiring", now + 60),
            entry("/later", now + 3600),
            entry("/forever", 0),
        ])
        .await
        .unwrap();
    for (token, expires_at) in [("gone", now + 60), ("kept", now + 3600)] {
        f.store
            .create_join_token(JoinToken {
                token: token.to_owned(),
                expires_at,
            })
            .await
            .unwrap();
    }
    assert_eq!(feed.cache().await.unwrap().entry_count(), 3);
    assert_eq!(
        pruner.prune_entries().await.unwrap(),
        0,
        "nothing expired yet"
    );

    f.clock.advance(Duration::from_secs(120));
    assert_eq!(pruner.prune_entries().await.unwrap(), 1);
    assert!(f.store.fetch_join_token("gone").await.unwrap().is_none());
    assert!(f.store.fetch_join_token("kept").await.unwrap().is_some());
    feed.refresh().await.unwrap();
    assert_eq!(feed.cache().await.unwrap().entry_count(), 2);
}

#[tokio::test]
async fn nodes_are_pruned_only_when_configured() {
    let f = fixture().await;
    let now = f.now();
    for n in [
        node("fresh", now + 3600, true),
        node("stale", now - 3 * 3600, true),
        node("stale-tofu", now - 3 * 3600, false),
    ] {
        f.store.create_attested_node(n).await.unwrap();
    }
    assert!(f.pruner(None).prune_nodes().await.unwrap().is_empty());
    assert_eq!(f.pruner(None).node_interval(), None);

    let settings = NodePruning {
        expired_for: 2 * HOUR,
        batch_size: 1_000,
        tofu_nodes: false,
    };
    let pruned = f.pruner(Some(settings)).prune_nodes().await.unwrap();
    let names: Vec<&str> = pruned.iter().map(|id| id.path()).collect();
    assert_eq!(names, ["/spire/agent/t/stale"]);
    let with_tofu = NodePruning {
        tofu_nodes: true,
        ..settings
    };
    let pruned = f.pruner(Some(with_tofu)).prune_nodes().await.unwrap();
    let names: Vec<&str> = pruned.iter().map(|id| id.path()).collect();
    assert_eq!(names, ["/spire/agent/t/stale-tofu"]);

    // An hour at most between passes; sooner for a shorter window.
    let month = NodePruning {
        expired_for: 720 * HOUR,
        ..settings
    };
    assert_eq!(f.pruner(Some(month)).node_interval(), Some(HOUR));
    let short = NodePruning {
        expired_for: Duration::from_secs(600),
        ..settings
    };
    assert_eq!(
        f.pruner(Some(short)).node_interval(),
        Some(Duration::from_secs(600))
    );
}
