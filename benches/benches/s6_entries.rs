//! S6: durable registration-entry creation through the SQL datastore, in 500-entry batches
//! (one transaction each, as BatchCreateEntry does) and one entry at a time, on SQLite (a temp
//! file, WAL + synchronous=FULL) and PostgreSQL (`SPIRE_TEST_POSTGRES_URL`, a scratch
//! database created and dropped by the bench; skipped with a note when unset).
//!
//! `cargo bench -p spire-benches --bench s6_entries`
//!
//! 1. Criterion: `batch_500` (entries/s) and `single_create` (time per create) on a fresh
//!    store, which grows as criterion iterates.
//! 2. A printed growth curve on another fresh store: entries/s of 500-entry batches in bands of
//!    25k entries up to 100k, then single-create p50/p99 at that size (criterion reports no
//!    percentiles).
//!
//! Entries look like controller-managed ones: one parent agent, `k8s:ns` plus a random
//! `k8s:pod-uid` selector, one DNS name.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spire_id::{Selector, SelectorSet, SpiffeId};
use spire_server_datastore::{DataStore as _, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio::runtime::Runtime;
use tokio::time::Instant;

const BATCH: usize = 500;
const CURVE_BANDS: usize = 4;
const CURVE_BAND_ENTRIES: usize = 25_000;
const PG_URL_VAR: &str = "SPIRE_TEST_POSTGRES_URL";

/// Unique entry paths across every iteration of a run.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn entry(n: u64) -> RegistrationEntry {
    let selectors: SelectorSet = [
        Selector::new("k8s", "ns:bench").unwrap(),
        // Random, like the pod UIDs of controller-managed entries.
        Selector::new("k8s", &format!("pod-uid:{}", uuid::Uuid::new_v4())).unwrap(),
    ]
    .into_iter()
    .collect();
    RegistrationEntry {
        id: String::new(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/ns/bench/sa/w{n}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/k8s_psat/c1/node-1").unwrap(),
        selectors,
        x509_svid_ttl: 3600,
        jwt_svid_ttl: 300,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at: 0,
        dns_names: vec![format!("w{n}.bench.svc")],
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: 1_767_225_600,
    }
}

fn batch() -> Vec<RegistrationEntry> {
    let start = NEXT.fetch_add(BATCH as u64, Ordering::Relaxed);
    (start..start + BATCH as u64).map(entry).collect()
}

async fn create(store: &SqlStore, entries: Vec<RegistrationEntry>) {
    for result in store.create_registration_entries(entries).await.unwrap() {
        result.unwrap();
    }
}

/// A fresh database of one backend, removed on `drop_it`.
enum Scratch {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl Scratch {
    async fn open(backend: &str) -> (SqlStore, Self) {
        if backend == "sqlite" {
            let dir = tempfile::tempdir().unwrap();
            let config = SqlConfig::sqlite(dir.path().join("datastore.sqlite3"));
            return (
                SqlStore::open(&config).await.unwrap(),
                Self::Sqlite { _dir: dir },
            );
        }
        let admin_url = std::env::var(PG_URL_VAR).unwrap();
        let name = format!("spire_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let config = SqlConfig::postgres(with_database(&admin_url, &name));
        (
            SqlStore::open(&config).await.unwrap(),
            Self::Postgres { admin_url, name },
        )
    }

    async fn drop_it(self, store: SqlStore) {
        store.close().await;
        if let Self::Postgres { admin_url, name } = self {
            let mut admin = PgConnection::connect(&admin_url).await.unwrap();
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            admin.execute(sqlx::AssertSqlSafe(drop)).await.unwrap();
        }
    }
}

fn criterion_pass(c: &mut Criterion, runtime: &Runtime, backend: &str) {
    let (store, scratch) = runtime.block_on(Scratch::open(backend));
    let mut group = c.benchmark_group(format!("s6_entries/{backend}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_500", |b| {
        b.iter_batched(
            batch,
            |entries| runtime.block_on(create(&store, entries)),
            BatchSize::PerIteration,
        )
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("single_create", |b| {
        b.iter_batched(
            || entry(NEXT.fetch_add(1, Ordering::Relaxed)),
            |e| runtime.block_on(create(&store, vec![e])),
            BatchSize::PerIteration,
        )
    });
    group.finish();
    runtime.block_on(scratch.drop_it(store));
}

fn growth_curve(runtime: &Runtime, backend: &str) {
    runtime.block_on(async {
        let (store, scratch) = Scratch::open(backend).await;
        let mut bands = Vec::new();
        for _ in 0..CURVE_BANDS {
            let start = Instant::now();
            for _ in 0..CURVE_BAND_ENTRIES / BATCH {
                create(&store, batch()).await;
            }
            bands.push(CURVE_BAND_ENTRIES as f64 / start.elapsed().as_secs_f64());
        }
        let total = CURVE_BANDS * CURVE_BAND_ENTRIES;
        let bands: Vec<String> = bands
            .iter()
            .enumerate()
            .map(|(i, rate)| format!("{}k-{}k: {rate:.0}/s", i * 25, (i + 1) * 25))
            .collect();
        println!(
            "s6_entries/{backend}/growth batch_500 entries/s by store size: {}",
            bands.join(", ")
        );

        let mut latencies = Vec::with_capacity(200);
        for _ in 0..200 {
            let e = entry(NEXT.fetch_add(1, Ordering::Relaxed));
            let start = Instant::now();
            create(&store, vec![e]).await;
            latencies.push(start.elapsed());
        }
        latencies.sort();
        let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        println!(
            "s6_entries/{backend}/growth single_create at {total} entries, 200 creates: \
             p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            pct(50),
            pct(99),
            latencies[latencies.len() - 1]
        );
        scratch.drop_it(store).await;
    });
}

fn s6(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let mut backends = vec!["sqlite"];
    if std::env::var(PG_URL_VAR).is_ok() {
        backends.push("postgres");
    } else {
        println!("s6_entries/postgres: skipped, {PG_URL_VAR} is not set");
    }
    for backend in &backends {
        criterion_pass(c, &runtime, backend);
    }
    for backend in &backends {
        growth_curve(&runtime, backend);
    }
}

/// `url` with its database (path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..path]),
        None => format!("{}/{name}", &base[..path]),
    }
}

criterion_group!(benches, s6);
criterion_main!(benches);
