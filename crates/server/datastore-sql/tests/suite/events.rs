//! Change events across handles, restarts and pruning.

use std::collections::BTreeSet;
use std::time::Duration;

use spire_server_datastore::{
    Aggregate, AttestedNode, CaJournal, ChangeOp, DataStore as _, JoinToken, ListEntries,
};

use spire_server_datastore_sql::SqlStore;

use crate::harness::{Harness, Kind, create_ok, entry, id, sels, td};

both_backends!(
    two_handles_see_each_others_events_in_order,
    restart_keeps_entries_bundle_and_journal,
    prune_change_events_by_age,
    concurrent_opens_migrate_once,
);

async fn two_handles_see_each_others_events_in_order(h: Harness) {
    let other = h.open_another().await;
    let mut tasks = Vec::new();
    for (n, store) in [h.store.clone(), other.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for i in 0..15 {
                let batch: Vec<_> = (0..3)
                    .map(|j| entry(&format!("/s{n}/{i}/{j}"), &["unix:uid:1"]))
                    .collect();
                for e in store.create_registration_entries(batch).await.unwrap() {
                    keys.push(e.unwrap().id);
                }
                let agent = id(&format!("spiffe://example.org/spire/agent/s{n}/{i}"));
                store
                    .set_node_selectors(&agent, &sels(&["a:b"]))
                    .await
                    .unwrap();
                keys.push(agent.to_string());
            }
            keys
        }));
    }
    // A follower tails the events while both handles write: it must never see a revision
    // before an earlier one has committed (which would make it skip that one for good).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let (store, done) = (other.clone(), done.clone());
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                for event in store.list_change_events(after, 50).await.unwrap() {
                    assert_eq!(event.revision, after + 1, "the follower saw a gap");
                    after = event.revision;
                }
                if finished {
                    return after;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut written = BTreeSet::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(follower.await.unwrap(), 120);
    assert_eq!(written.len(), 2 * 15 * 4);

    // A follower reads in small pages from revision 0, from either handle.
    for store in [&h.store, &other] {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = store.list_change_events(after, 7).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.revision;
            events.extend(page);
        }
        let revisions: Vec<i64> = events.iter().map(|e| e.revision).collect();
        assert_eq!(
            revisions,
            (1..=120).collect::<Vec<_>>(),
            "gap-free and ordered"
        );
        let keys: BTreeSet<String> = events.iter().map(|e| e.key.clone()).collect();
        assert_eq!(keys, written, "every write seen by every handle");
        assert_eq!(store.latest_revision().await.unwrap(), 120);
    }
    let nodes = events_of(&h, Aggregate::AttestedNode).await;
    assert_eq!(nodes, 30);
    other.close().await;
}

async fn events_of(h: &Harness, aggregate: Aggregate) -> usize {
    let events = h.store.list_change_events(0, 1_000).await.unwrap();
    events.iter().filter(|e| e.aggregate == aggregate).count()
}

async fn restart_keeps_entries_bundle_and_journal(mut h: Harness) {
    let created = create_ok(
        &h.store,
        (0..10)
            .map(|i| entry(&format!("/r/{i}"), &["unix:uid:1"]))
            .collect(),
    )
    .await;
    let mut bundle = spire_svid::Bundle::new(td("example.org"));
    bundle.refresh_hint = 60;
    h.store.create_bundle(bundle.clone()).await.unwrap();
    let journal = h
        .store
        .set_ca_journal(CaJournal {
            id: 0,
            active_x509_authority_id: "ab12".to_owned(),
            data: vec![0, 1, 255],
            updated_at: 5,
        })
        .await
        .unwrap();
    let node = AttestedNode {
        spiffe_id: id("spiffe://example.org/spire/agent/x/1"),
        attestation_type: "x".to_owned(),
        cert_serial_number: "1".to_owned(),
        cert_not_after: 9,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: true,
        selectors: sels(&["x:y"]),
    };
    h.store.create_attested_node(node.clone()).await.unwrap();
    h.store
        .create_join_token(JoinToken {
            token: "t".to_owned(),
            expires_at: 9,
        })
        .await
        .unwrap();
    let revision = h.store.latest_revision().await.unwrap();

    h.reopen().await;

    let listed = h
        .store
        .list_registration_entries(&ListEntries::default())
        .await
        .unwrap();
    assert_eq!(listed.items, created);
    assert_eq!(
        h.store.fetch_bundle(&td("example.org")).await.unwrap(),
        Some(bundle)
    );
    assert_eq!(
        h.store.fetch_ca_journal("ab12").await.unwrap(),
        Some(journal)
    );
    assert_eq!(
        h.store.fetch_attested_node(&node.spiffe_id).await.unwrap(),
        Some(node)
    );
    assert!(h.store.fetch_join_token("t").await.unwrap().is_some());
    assert_eq!(h.store.latest_revision().await.unwrap(), revision);
    // Revisions continue where they stopped.
    create_ok(&h.store, vec![entry("/after", &["unix:uid:1"])]).await;
    let events = h.store.list_change_events(revision, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].revision, revision + 1);
}

async fn prune_change_events_by_age(h: Harness) {
    create_ok(&h.store, vec![entry("/old", &["unix:uid:1"])]).await;
    let t0 = h.clock_now();
    h.clock.advance(Duration::from_secs(100));
    create_ok(&h.store, vec![entry("/new", &["unix:uid:2"])]).await;
    let events = h.store.list_change_events(0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.created_at).collect::<Vec<_>>(),
        [t0, t0 + 100]
    );
    assert_eq!(events[0].op, ChangeOp::Created);

    assert_eq!(h.store.prune_change_events(t0 + 50).await.unwrap(), 1);
    let left = h.store.list_change_events(0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].revision, 2);
    assert_eq!(
        h.store.latest_revision().await.unwrap(),
        2,
        "pruning keeps the counter"
    );
    assert!(h.store.list_change_events(0, 0).await.unwrap().is_empty());
}

async fn concurrent_opens_migrate_once(h: Harness) {
    // PostgreSQL: three servers start together on an empty database; the migrator's advisory
    // lock lets one create the schema while the others wait and then find it current.
    // SQLite (one server per file): later opens find the schema current.
    let (config, _database) = match h.kind {
        Kind::Postgres => {
            let (config, database) = Harness::fresh_postgres_database().await;
            (config, Some(Box::new(database) as Box<dyn std::any::Any>))
        }
        // MySQL: the same, under the migrator's GET_LOCK.
        Kind::Mysql => {
            let (config, database) = Harness::fresh_mysql_database().await;
            (config, Some(Box::new(database) as Box<dyn std::any::Any>))
        }
        Kind::Sqlite => (h.config.clone(), None),
    };
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { SqlStore::open(&config).await.unwrap() })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap());
    }
    create_ok(&stores[0], vec![entry("/m", &["unix:uid:1"])]).await;
    for store in stores {
        assert_eq!(store.latest_revision().await.unwrap(), 1);
        store.close().await;
    }
}
