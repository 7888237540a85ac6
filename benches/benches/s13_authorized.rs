//! S13: the server's authorized-entry index (`spire-server-cache`). A temp SQLite store holds
//! 10 000 entries for 1 000 agents; the bench measures building the cache from it
//! (`load_10k`: reading every entry and node, then indexing) and answering
//! `authorized_entries` for the busiest agent (`lookup_300`: ~300 entries, reached through one
//! node alias, its children and the agent's own entries).
//!
//! `cargo bench -p spire-benches --bench s13_authorized`
//!
//! Layout: every agent `n<i>` has node selectors `x:node:n<i>`, `x:region:r1` and
//! `x:cluster:c<i % 20>`; 20 cluster aliases (selectors `x:region:r1` + `x:cluster:c<k>`) have
//! 100 children each; every other agent parents 7 or 8 entries of its own. The hot agent `n0`
//! has `x:cluster:hot` instead, whose alias parents 280 entries, and parents 10 itself
//! (291 authorized entries).
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_cache::AuthorizedEntryCache;
use spire_server_datastore::{AttestedNode, DataStore, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use tokio::runtime::Runtime;

const AGENTS: usize = 1_000;
const CLUSTERS: usize = 20;
const CLUSTER_CHILDREN: usize = 100;
const HOT_ALIAS_CHILDREN: usize = 280;
const HOT_DIRECT: usize = 10;
const TOTAL: usize = 10_000;

fn id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap()
}

fn selectors(list: &[String]) -> SelectorSet {
    list.iter().map(|s| Selector::parse(s).unwrap()).collect()
}

fn entry(parent: SpiffeId, path: &str, selector: &str) -> RegistrationEntry {
    RegistrationEntry {
        id: String::new(),
        spiffe_id: id(path),
        parent_id: parent,
        selectors: selectors(&[selector.to_owned()]),
        x509_svid_ttl: 3600,
        jwt_svid_ttl: 300,
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

fn agent(i: usize) -> SpiffeId {
    id(&format!("/spire/agent/x/n{i}"))
}

fn alias(name: &str, node_selectors: &[String]) -> RegistrationEntry {
    RegistrationEntry {
        selectors: selectors(node_selectors),
        ..entry(
            id("/spire/server"),
            &format!("/cluster/{name}"),
            "x:unused:1",
        )
    }
}

/// Fills the store; returns the hot agent's ID.
async fn populate(store: &SqlStore) -> SpiffeId {
    let hot = agent(0);
    for i in 0..AGENTS {
        // The hot agent is in cluster `hot` only; its region selector still makes the crawl
        // count every cluster alias as a candidate.
        let cluster = if i == 0 {
            "hot".to_owned()
        } else {
            format!("c{}", i % CLUSTERS)
        };
        let node = vec![
            format!("x:node:n{i}"),
            "x:region:r1".to_owned(),
            format!("x:cluster:{cluster}"),
        ];
        store
            .create_attested_node(AttestedNode {
                spiffe_id: agent(i),
                attestation_type: "x".to_owned(),
                cert_serial_number: "1".to_owned(),
                cert_not_after: 2_000_000_000,
                new_cert_serial_number: String::new(),
                new_cert_not_after: 0,
                can_reattest: false,
                selectors: selectors(&node),
            })
            .await
            .unwrap();
    }
    let mut entries = vec![alias("hot", &["x:cluster:hot".to_owned()])];
    for n in 0..HOT_ALIAS_CHILDREN {
        entries.push(entry(
            id("/cluster/hot"),
            &format!("/hot/w{n}"),
            "unix:uid:1",
        ));
    }
    for n in 0..HOT_DIRECT {
        entries.push(entry(hot.clone(), &format!("/hot/own{n}"), "unix:uid:2"));
    }
    for k in 0..CLUSTERS {
        let cluster = format!("c{k}");
        entries.push(alias(
            &cluster,
            &["x:region:r1".to_owned(), format!("x:cluster:{cluster}")],
        ));
        for n in 0..CLUSTER_CHILDREN {
            entries.push(entry(
                id(&format!("/cluster/{cluster}")),
                &format!("/{cluster}/daemon{n}"),
                "unix:uid:3",
            ));
        }
    }
    let mut n = 0;
    while entries.len() < TOTAL {
        let i = 1 + n % (AGENTS - 1);
        entries.push(entry(agent(i), &format!("/node/n{i}/w{n}"), "unix:uid:4"));
        n += 1;
    }
    for batch in entries.chunks(500) {
        for result in store
            .create_registration_entries(batch.to_vec())
            .await
            .unwrap()
        {
            result.unwrap();
        }
    }
    hot
}

fn s13(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqlStore::open(&SqlConfig::sqlite(
            dir.path().join("s13.sqlite3"),
        )))
        .unwrap();
    let hot = rt.block_on(populate(&store));
    let datastore: Arc<dyn DataStore> = Arc::new(store);

    let cache = rt
        .block_on(AuthorizedEntryCache::load(Arc::clone(&datastore)))
        .unwrap();
    let authorized = cache.authorized_entries(&hot);
    println!(
        "s13: {} entries, {} agents; hot agent authorized for {} entries",
        cache.entry_count(),
        cache.node_count(),
        authorized.len()
    );
    assert_eq!(authorized.len(), 1 + HOT_ALIAS_CHILDREN + HOT_DIRECT);

    let mut group = c.benchmark_group("s13");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("lookup_300", |b| {
        b.iter(|| cache.authorized_entries(std::hint::black_box(&hot)));
    });
    group.bench_function("load_10k", |b| {
        b.iter(|| {
            rt.block_on(AuthorizedEntryCache::load(Arc::clone(&datastore)))
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, s13);
criterion_main!(benches);
