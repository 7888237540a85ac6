//! Taking over SPIRE's own SQLite datastore: the database SPIRE leaves at schema versions 23
//! and 24 (`../shared/testdata/spire-sqlite-dumps`), plus rows added in SPIRE's schema
//! (`tests/fixtures/spire-rows.sql`); and refusing what is not a SPIRE datastore we know.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use sqlx::{Connection as _, Executor as _, SqliteConnection};

use spire_id::{SpiffeId, TrustDomain};
use spire_server_datastore::{
    BundleEndpointProfile, DataStore as _, ListAttestedNodes, ListEntries,
};
use spire_server_datastore_sql::{Error, SchemaPlan, SqlConfig, SqlStore, TakeoverCounts};

const SPIRE_ROWS: &str = include_str!("../fixtures/spire-rows.sql");

/// SPIRE's dump for `version`, or `None` (a printed skip; a failure under CI=true).
fn dump(version: u32) -> Option<String> {
    let dir = spire_test::shared_testdata("spire-sqlite-dumps")?;
    let path = dir.join(format!("v{version}.sql"));
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Runs SQL text on a SQLite file with a plain connection (as the sqlite3 shell would).
async fn load(path: &Path, sql: &str) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())))
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// SPIRE's part of the database: every schema object but ours, and every row of SPIRE's tables.
async fn spire_part(path: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let objects: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'spire_rs_%' \
         AND name NOT LIKE 'sqlite_autoindex_spire_rs_%' AND name <> '_sqlx_migrations' \
         AND name NOT LIKE 'sqlite_autoindex__sqlx_migrations%' AND name <> 'sqlite_sequence' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (kind, name, sql) in objects {
        out.push(format!("{kind} {name}: {}", sql.unwrap_or_default()));
        if kind == "table" {
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT quote(t.rowid) || '|' || json_array(t.*) FROM \"{name}\" t ORDER BY 1"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            out.extend(rows.into_iter().map(|(r,)| format!("  {name}: {r}")));
        }
    }
    conn.close().await.unwrap();
    out
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::from_str(s).unwrap()
}

fn backups(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}.spire-backup-")))
        })
        .collect();
    found.sort();
    found
}

async fn takes_over(version: u32) {
    let Some(dump) = dump(version) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    load(&path, &dump).await;
    load(&path, SPIRE_ROWS).await;
    let before = spire_part(&path).await;
    let config = SqlConfig::sqlite(&path);

    // `validate` reports the plan without writing anything.
    let plan = SqlStore::inspect(&config).await.unwrap();
    let journals = u64::from(version == 24);
    let expected = TakeoverCounts {
        bundles: 2,
        entries: 3,
        attested_nodes: 2,
        node_selectors: 2,
        join_tokens: 1,
        federation_relationships: 1,
        ca_journals: journals,
    };
    match &plan {
        SchemaPlan::TakeOver(db) => {
            assert_eq!(db.schema_version, i64::from(version));
            assert_eq!(db.counts, expected);
        }
        other => panic!("expected a takeover, got {other:?}"),
    }
    assert!(backups(&path).is_empty());
    assert_eq!(spire_part(&path).await, before);

    let store = SqlStore::open(&config).await.unwrap();

    // A consistent copy of SPIRE's database was written beside it first.
    let copies = backups(&path);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(spire_part(&copies[0]).await, before);

    carried_over(&store, version == 24).await;

    // SPIRE's tables and rows are exactly as they were.
    store.close().await;
    assert_eq!(spire_part(&path).await, before);

    // The next start opens our schema and copies nothing again.
    assert_eq!(SqlStore::inspect(&config).await.unwrap(), SchemaPlan::Ours);
    let store = SqlStore::open(&config).await.unwrap();
    assert_eq!(
        store
            .list_registration_entries(&ListEntries::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    store.close().await;
    assert_eq!(backups(&path).len(), 1);
}

/// What every takeover test expects of the store once SPIRE's rows (the dump's and
/// `spire-rows.sql`'s, or `spire-v24.postgres.sql`'s) are carried over.
async fn carried_over(store: &SqlStore, with_journal: bool) {
    // Entries keep their IDs and fields.
    let entries = store
        .list_registration_entries(&ListEntries::default())
        .await
        .unwrap()
        .items;
    let mut ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "b8f3c3a5-2a40-4c6e-9d0e-1f2a3b4c5d6e",
            "downstream-entry",
            "node-alias-entry"
        ]
    );
    let workload = store
        .fetch_registration_entry("b8f3c3a5-2a40-4c6e-9d0e-1f2a3b4c5d6e")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(workload.spiffe_id, id("spiffe://example.org/workload"));
    assert_eq!(
        workload.parent_id,
        id("spiffe://example.org/spire/agent/join_token/tok-1")
    );
    assert_eq!(workload.selectors.len(), 2);
    assert_eq!(workload.x509_svid_ttl, 3600);
    assert_eq!(workload.jwt_svid_ttl, 300);
    assert!(workload.admin && !workload.downstream && !workload.store_svid);
    assert_eq!(workload.expires_at, 1_893_456_000);
    assert_eq!(workload.revision_number, 4);
    assert_eq!(workload.hint, "hint-a");
    assert_eq!(workload.created_at, 1_771_411_380);
    let mut dns = workload.dns_names.clone();
    dns.sort();
    assert_eq!(dns, ["api.example.org", "web.example.org"]);
    assert_eq!(
        workload.federates_with,
        [TrustDomain::from_str("other.org").unwrap()]
    );
    let downstream = store
        .fetch_registration_entry("downstream-entry")
        .await
        .unwrap()
        .unwrap();
    assert!(downstream.downstream && downstream.store_svid);
    assert_eq!(downstream.hint, "");

    // Agents keep the SVID serial and expiry SPIRE recorded, and their node selectors.
    let nodes = store
        .list_attested_nodes(&ListAttestedNodes::default())
        .await
        .unwrap()
        .items;
    assert_eq!(nodes.len(), 2);
    let agent = store
        .fetch_attested_node(&id("spiffe://example.org/spire/agent/x509pop/abc"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agent.attestation_type, "x509pop");
    assert_eq!(agent.cert_serial_number, "42");
    assert_eq!(agent.cert_not_after, 1_875_020_400);
    assert_eq!(agent.new_cert_serial_number, "43");
    assert_eq!(agent.new_cert_not_after, 1_877_558_400);
    assert!(agent.can_reattest);
    assert_eq!(agent.selectors.len(), 2);
    let token_agent = store
        .fetch_attested_node(&id("spiffe://example.org/spire/agent/join_token/tok-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token_agent.cert_serial_number, "123456789");
    assert_eq!(token_agent.cert_not_after, 1_893_456_000);
    assert_eq!(token_agent.new_cert_not_after, 0);

    // Bundles: SPIRE's own CA certificate and JWT key, and the federated one.
    let own = store
        .fetch_bundle(&TrustDomain::from_str("example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    if with_journal {
        assert_eq!(own.x509_authorities.len(), 1);
        assert_eq!(own.jwt_authorities.len(), 1);
    }
    let other = store
        .fetch_bundle(&TrustDomain::from_str("other.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((other.refresh_hint, other.sequence_number), (300, 3));

    let token = store.fetch_join_token("tok-unused").await.unwrap().unwrap();
    assert_eq!(token.expires_at, 1_893_456_000);

    let relationship = store
        .fetch_federation_relationship(&TrustDomain::from_str("other.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(relationship.bundle_endpoint_url, "https://other.org:8443");
    assert_eq!(
        relationship.profile,
        BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: id("spiffe://other.org/spire/server")
        }
    );

    // The CA journal is found under SPIRE's authority ID, as SPIRE wrote it.
    let journal = store
        .fetch_ca_journal("d15f6be56f1b49cdbbeb148b14dd9663caab881d")
        .await
        .unwrap();
    assert_eq!(journal.is_some(), with_journal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spire_schema_24_is_taken_over() {
    takes_over(24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spire_schema_23_is_taken_over() {
    takes_over(23).await;
}

/// The bytes of the database file and of anything beside it.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

async fn refused(setup: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datastore.sqlite3");
    load(&path, setup).await;
    let before = snapshot(dir.path());
    let config = SqlConfig::sqlite(&path);
    let inspected = SqlStore::inspect(&config).await.unwrap_err();
    let error = SqlStore::open(&config).await.unwrap_err();
    assert_eq!(inspected.to_string(), error.to_string());
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the refused database was written to"
    );
    error
}

#[tokio::test]
async fn a_database_of_another_application_is_refused_untouched() {
    let error = refused("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT); INSERT INTO orders VALUES (1, 'x');").await;
    assert!(matches!(error, Error::NotSpire(_)), "{error}");
    assert!(error.to_string().contains("orders"), "{error}");
}

#[tokio::test]
async fn a_migrations_table_that_is_not_spires_is_refused_untouched() {
    let error =
        refused("CREATE TABLE migrations (name TEXT); INSERT INTO migrations VALUES ('x');").await;
    assert!(matches!(error, Error::NotSpire(_)), "{error}");
}

#[tokio::test]
async fn a_newer_spire_schema_is_refused_untouched() {
    let error = refused(
        "CREATE TABLE migrations (id integer primary key autoincrement, created_at datetime, \
         updated_at datetime, version integer, code_version varchar(255)); \
         INSERT INTO migrations VALUES (1, '2027-01-01 00:00:00+00:00', '2027-01-01 00:00:00+00:00', 25, '1.16.0'); \
         CREATE TABLE registered_entries (id integer primary key autoincrement, entry_id varchar(255));",
    )
    .await;
    assert!(matches!(error, Error::SpireSchema(_)), "{error}");
    assert!(error.to_string().contains("25"), "{error}");
}

#[tokio::test]
async fn a_spire_schema_missing_a_table_is_refused_untouched() {
    let error = refused(
        "CREATE TABLE migrations (id integer primary key autoincrement, created_at datetime, \
         updated_at datetime, version integer, code_version varchar(255)); \
         INSERT INTO migrations VALUES (1, '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00', 24, '1.14.2');",
    )
    .await;
    assert!(matches!(error, Error::NotSpire(_)), "{error}");
    assert!(error.to_string().contains("registered_entries"), "{error}");
}

#[tokio::test]
async fn a_missing_sqlite_file_is_a_new_database_and_stays_missing_on_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/datastore.sqlite3");
    let config = SqlConfig::sqlite(&path);
    assert_eq!(
        SqlStore::inspect(&config).await.unwrap(),
        SchemaPlan::Create
    );
    assert!(!path.exists());
}

/// The same rows in SPIRE's PostgreSQL schema, in a private database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spire_postgres_database_is_taken_over() {
    if std::env::var(crate::harness::PG_URL_VAR).is_err() {
        spire_test::skip(&format!("{} is not set", crate::harness::PG_URL_VAR));
        return;
    }
    let (config, database) = crate::harness::Harness::fresh_postgres_database().await;
    let mut conn = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    conn.execute(sqlx::raw_sql(include_str!(
        "../fixtures/spire-v24.postgres.sql"
    )))
    .await
    .unwrap();
    let spire_tables = [
        "bundles",
        "registered_entries",
        "selectors",
        "dns_names",
        "federated_registration_entries",
        "attested_node_entries",
        "node_resolver_map_entries",
        "join_tokens",
        "federated_trust_domains",
        "ca_journals",
        "migrations",
    ];
    let mut before = Vec::new();
    for table in spire_tables {
        before.push(pg_digest(&mut conn, table).await);
    }

    match SqlStore::inspect(&config).await.unwrap() {
        SchemaPlan::TakeOver(db) => {
            assert_eq!(db.schema_version, 24);
            assert_eq!(db.code_version, "1.14.2");
            assert_eq!(
                db.counts,
                TakeoverCounts {
                    bundles: 2,
                    entries: 3,
                    attested_nodes: 2,
                    node_selectors: 2,
                    join_tokens: 1,
                    federation_relationships: 1,
                    ca_journals: 0,
                }
            );
        }
        other => panic!("expected a takeover, got {other:?}"),
    }
    // Two servers starting together: one takes the database over, the other opens it after.
    let (a, b) = tokio::join!(SqlStore::open(&config), SqlStore::open(&config));
    let (a, b) = (a.unwrap(), b.unwrap());
    carried_over(&a, false).await;
    assert_eq!(
        b.list_registration_entries(&ListEntries::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    a.close().await;
    b.close().await;

    let mut after = Vec::new();
    for table in spire_tables {
        after.push(pg_digest(&mut conn, table).await);
    }
    assert_eq!(after, before, "SPIRE's tables changed");
    assert_eq!(SqlStore::inspect(&config).await.unwrap(), SchemaPlan::Ours);
    conn.close().await.unwrap();
}

/// A table's rows and column definitions, as text.
async fn pg_digest(conn: &mut sqlx::PgConnection, table: &str) -> String {
    let (rows,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM {table} t"
    )))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let (columns,): (Option<String>,) = sqlx::query_as(
        "SELECT string_agg(column_name || ' ' || data_type, ',' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_name = $1",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    format!(
        "{table}: {} / {}",
        columns.unwrap_or_default(),
        rows.unwrap_or_default()
    )
}
