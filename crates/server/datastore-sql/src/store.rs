//! [`SqlStore`]: opening the database, write transactions, and the `DataStore` trait, whose
//! methods live with their aggregate (`entries`, `nodes`, `bundles`, …).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor as _};
use tokio::sync::Mutex;

use spire_id::{SelectorSet, SpiffeId, TrustDomain};
use spire_server_datastore::{
    AttestedNode, BundleDeleteMode, CaJournal, ChangeEvent, DataStore, EntryMask,
    FederationRelationship, JoinToken, ListAttestedNodes, ListEntries, NodeMask, Page, Pagination,
    RegistrationEntry, Result as DsResult,
};
use spire_svid::Bundle;
use spire_time::{SharedClock, SystemClock};

use crate::Error;
use crate::config::{SqlConfig, Target, sqlite_url};
use crate::db::{Backend, WriteTx, backend};
use crate::takeover::{self, SchemaPlan};

/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;
/// WAL pages between automatic checkpoints (SQLite's default is 1 000). Entry inserts dirty
/// random pages of the entry-ID and selector indexes, and the same pages again a few batches
/// later; checkpointing less often copies each page back once instead of many times
/// (+40% batch throughput at 100k entries). The WAL then peaks near 40 MiB, and
/// `journal_size_limit` truncates it back after a checkpoint.
const SQLITE_WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;
const SQLITE_JOURNAL_SIZE_LIMIT_BYTES: u32 = 64 * 1024 * 1024;
/// SQLite readers run in parallel under WAL.
const SQLITE_READERS: u32 = 4;
/// Page cache of the SQLite writer connection, in KiB. Inserts land on random pages of the
/// entry-ID and selector indexes; keeping those pages cached gave +30% batch throughput at
/// 100k entries. Readers keep SQLite's default (2 MiB).
const SQLITE_WRITER_CACHE_KIB: u32 = 64 * 1024;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;
const MYSQL_MAX_CONNECTIONS: u32 = 16;
/// Session settings of every MySQL connection. READ COMMITTED is PostgreSQL's default and what
/// the write paths are written for: a locking read of a missing row takes no gap lock, so two
/// servers inserting the same new key queue on the row instead of deadlocking (InnoDB's
/// REPEATABLE READ default would take gap locks). Strict mode turns a value too long for its
/// column into an error instead of a silent truncation.
const MYSQL_SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
     SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_TRANS_TABLES')";

/// The SQL datastore. Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct SqlStore {
    /// Reads (and, on PostgreSQL, writes).
    pub(crate) pool: AnyPool,
    /// SQLite: one connection for every write, so its page cache stays warm; PostgreSQL:
    /// the same pool as `pool`.
    write_pool: AnyPool,
    pub(crate) backend: Backend,
    /// Serializes SQLite writers in this process; `None` on PostgreSQL.
    writer: Option<Arc<Mutex<()>>>,
    clock: SharedClock,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

// === impl SqlStore ===

impl SqlStore {
    /// Opens (creating if needed) and migrates the database, with the system clock stamping
    /// change events.
    pub async fn open(config: &SqlConfig) -> Result<Self, Error> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`Self::open`], with `clock` stamping change events (`created_at`).
    pub async fn open_with_clock(config: &SqlConfig, clock: SharedClock) -> Result<Self, Error> {
        sqlx::any::install_default_drivers();
        let now = clock.unix_seconds();
        let (pool, write_pool, backend) = match config.target()? {
            Target::Sqlite(path) => {
                let url = prepare_sqlite_file(&path)?;
                // Looked at read-only first: a database we refuse is left byte for byte as
                // it was (opening the pools below switches it to WAL).
                let backup = match inspect_sqlite(&url).await? {
                    SchemaPlan::TakeOver(_) => Some(backup_sqlite(&path, &url, now).await?),
                    _ => None,
                };
                let write_pool = sqlite_pool(&url, 1, SQLITE_WRITER_CACHE_KIB).await?;
                // The schema exists before any reader connects.
                let plan =
                    takeover::migrate_or_take_over(&write_pool, Backend::Sqlite, now).await?;
                log_takeover(&plan, backup.as_deref());
                let pool = sqlite_pool(&url, SQLITE_READERS, 0).await?;
                (pool, write_pool, Backend::Sqlite)
            }
            Target::Postgres(url) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(POSTGRES_MAX_CONNECTIONS)
                    .after_release(|conn, _meta| Box::pin(async move { Ok(reusable(conn).await) }))
                    .connect(&url)
                    .await
                    .map_err(Error::Connect)?;
                let plan = takeover::migrate_or_take_over(&pool, Backend::Postgres, now).await?;
                log_takeover(&plan, None);
                (pool.clone(), pool, Backend::Postgres)
            }
            Target::Mysql(url) => {
                let pool = mysql_pool(&url).await?;
                let plan = takeover::migrate_or_take_over(&pool, Backend::Mysql, now).await?;
                log_takeover(&plan, None);
                (pool.clone(), pool, Backend::Mysql)
            }
        };
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            pool,
            write_pool,
            backend,
            writer,
            clock,
        })
    }

    /// What [`Self::open`] would do to the database, found without writing to it (nor
    /// creating a missing SQLite file): create our schema, open ours, or take over a SPIRE
    /// datastore (with its row counts). A database that would be refused is an error.
    pub async fn inspect(config: &SqlConfig) -> Result<SchemaPlan, Error> {
        sqlx::any::install_default_drivers();
        match config.target()? {
            Target::Sqlite(path) => {
                if !path.exists() {
                    return Ok(SchemaPlan::Create);
                }
                let absolute = std::fs::canonicalize(&path).map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })?;
                inspect_sqlite(&sqlite_url(&absolute)?).await
            }
            Target::Postgres(url) => {
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                    .await
                    .map_err(Error::Connect)?;
                takeover::inspect(&mut conn, Backend::Postgres).await
            }
            Target::Mysql(url) => {
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                    .await
                    .map_err(Error::Connect)?;
                takeover::inspect(&mut conn, Backend::Mysql).await
            }
        }
    }

    /// Closes every connection, waiting for checked-out ones to come back.
    pub async fn close(&self) {
        self.pool.close().await;
        self.write_pool.close().await;
    }

    /// Starts a write transaction (taking the SQLite writer lock first).
    pub(crate) async fn begin_write(&self) -> DsResult<WriteTx<'_>> {
        let guard = match &self.writer {
            Some(writer) => Some(writer.lock().await),
            None => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.write_pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres | Backend::Mysql => self.write_pool.begin().await,
        }
        .map_err(backend)?;
        Ok(WriteTx::new(tx, self.clock.unix_seconds(), guard))
    }

    /// A pooled connection for reads.
    pub(crate) async fn reader(&self) -> DsResult<sqlx::pool::PoolConnection<sqlx::Any>> {
        self.pool.acquire().await.map_err(backend)
    }
}

/// Creates the database file (mode 0600) and its directories; returns its sqlx URL.
fn prepare_sqlite_file(path: &Path) -> Result<String, Error> {
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(file_error(path))?;
    let absolute = std::fs::canonicalize(path).map_err(file_error(path))?;
    sqlite_url(&absolute)
}

/// Inspects a SQLite database over a read-only connection.
async fn inspect_sqlite(url: &str) -> Result<SchemaPlan, Error> {
    let mut conn = read_only_sqlite(url).await?;
    let plan = takeover::inspect(&mut conn, Backend::Sqlite).await;
    let _ = sqlx::Connection::close(conn).await;
    plan
}

async fn read_only_sqlite(url: &str) -> Result<sqlx::AnyConnection, Error> {
    let url = url.replace("mode=rwc", "mode=ro");
    <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .map_err(Error::Connect)
}

/// Writes a consistent copy of the database beside it (`<file>.spire-backup-<unix seconds>`,
/// mode 0600) before a takeover; returns its path.
async fn backup_sqlite(path: &Path, url: &str, now: i64) -> Result<std::path::PathBuf, Error> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".spire-backup-{now}"));
    let backup = std::path::PathBuf::from(name);
    let file_error = |source| Error::File {
        path: backup.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&backup).map_err(file_error)?;
    let target = backup
        .to_str()
        .ok_or_else(|| Error::Config(format!("backup path {} is not UTF-8", backup.display())))?
        .replace('\'', "''");
    let mut conn = read_only_sqlite(url).await?;
    let done = conn
        .execute(sqlx::AssertSqlSafe(format!("VACUUM INTO '{target}'")))
        .await;
    let _ = sqlx::Connection::close(conn).await;
    done.map_err(|e| Error::TakeOver(format!("writing the backup {}: {e}", backup.display())))?;
    Ok(backup)
}

fn log_takeover(plan: &SchemaPlan, backup: Option<&Path>) {
    if let SchemaPlan::TakeOver(db) = plan {
        let backup = backup.map(|p| p.display().to_string()).unwrap_or_default();
        tracing::info!(
            schema_version = db.schema_version,
            code_version = %db.code_version,
            backup = %backup,
            "Took over the SPIRE datastore: copied {} into the spire_rs_ tables in one transaction; SPIRE's own tables were left untouched",
            db.counts
        );
    }
}

/// A pool whose connections all run the durability pragmas; `cache_kib` 0 keeps SQLite's
/// default page cache.
/// Whether a connection coming back to its pool may serve again. A transaction whose COMMIT
/// failed (SQLite's "database or disk is full", a dropped PostgreSQL link) leaves sqlx counting
/// it as open, and every later `BEGIN` on that connection would fail: such a connection is
/// closed instead, and the pool opens a fresh one.
async fn reusable(conn: &mut sqlx::AnyConnection) -> bool {
    use sqlx::Connection as _;
    if !conn.is_in_transaction() {
        return true;
    }
    // A dropped transaction's rollback may still be queued: let it run, then look again.
    conn.ping().await.is_ok() && !conn.is_in_transaction()
}

async fn mysql_pool(url: &str) -> Result<AnyPool, Error> {
    AnyPoolOptions::new()
        .max_connections(MYSQL_MAX_CONNECTIONS)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(MYSQL_SESSION).await?;
                Ok(())
            })
        })
        .after_release(|conn, _meta| Box::pin(async move { Ok(reusable(conn).await) }))
        .connect(url)
        .await
        .map_err(Error::Connect)
}

async fn sqlite_pool(url: &str, connections: u32, cache_kib: u32) -> Result<AnyPool, Error> {
    let mut pragmas = format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT_PAGES}; \
         PRAGMA journal_size_limit = {SQLITE_JOURNAL_SIZE_LIMIT_BYTES};"
    );
    if cache_kib > 0 {
        pragmas.push_str(&format!(" PRAGMA cache_size = -{cache_kib};"));
    }
    let pragmas: Arc<str> = pragmas.into();
    AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn, _meta| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        })
        .after_release(|conn, _meta| Box::pin(async move { Ok(reusable(conn).await) }))
        // Writers queue on the mutex, not here; readers wait for a free connection.
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await
        .map_err(Error::Connect)
}

#[async_trait]
impl DataStore for SqlStore {
    async fn create_bundle(&self, bundle: Bundle) -> DsResult<Bundle> {
        self.create_bundle_impl(bundle).await
    }

    async fn fetch_bundle(&self, trust_domain: &TrustDomain) -> DsResult<Option<Bundle>> {
        self.fetch_bundle_impl(trust_domain).await
    }

    async fn list_bundles(&self, page: Option<Pagination>) -> DsResult<Page<Bundle>> {
        self.list_bundles_impl(page).await
    }

    async fn count_bundles(&self) -> DsResult<u64> {
        self.count_bundles_impl().await
    }

    async fn update_bundle(&self, bundle: Bundle) -> DsResult<Bundle> {
        self.update_bundle_impl(bundle).await
    }

    async fn set_bundle(&self, bundle: Bundle) -> DsResult<Bundle> {
        self.set_bundle_impl(bundle).await
    }

    async fn append_bundle(&self, bundle: Bundle) -> DsResult<Bundle> {
        self.append_bundle_impl(bundle).await
    }

    async fn delete_bundle(
        &self,
        trust_domain: &TrustDomain,
        mode: BundleDeleteMode,
    ) -> DsResult<()> {
        self.delete_bundle_impl(trust_domain, mode).await
    }

    async fn prune_bundle(
        &self,
        trust_domain: &TrustDomain,
        expires_before: i64,
    ) -> DsResult<bool> {
        self.prune_bundle_impl(trust_domain, expires_before).await
    }

    async fn edit_bundle(
        &self,
        trust_domain: &TrustDomain,
        edit: spire_server_datastore::BundleEdit,
    ) -> DsResult<Bundle> {
        self.edit_bundle_impl(trust_domain, edit).await
    }

    async fn create_registration_entries(
        &self,
        entries: Vec<RegistrationEntry>,
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        self.create_entries_impl(entries).await
    }

    async fn fetch_registration_entry(&self, id: &str) -> DsResult<Option<RegistrationEntry>> {
        Ok(self.fetch_entries_impl(&[id.to_owned()]).await?.pop())
    }

    async fn fetch_registration_entries(&self, ids: &[String]) -> DsResult<Vec<RegistrationEntry>> {
        self.fetch_entries_impl(ids).await
    }

    async fn list_registration_entries(
        &self,
        request: &ListEntries,
    ) -> DsResult<Page<RegistrationEntry>> {
        self.list_entries_impl(request).await
    }

    async fn count_registration_entries(&self, request: &ListEntries) -> DsResult<u64> {
        self.count_entries_impl(request).await
    }

    async fn update_registration_entries(
        &self,
        updates: Vec<(RegistrationEntry, Option<EntryMask>)>,
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        self.update_entries_impl(updates).await
    }

    async fn delete_registration_entries(
        &self,
        ids: &[String],
    ) -> DsResult<Vec<DsResult<RegistrationEntry>>> {
        self.delete_entries_impl(ids).await
    }

    async fn prune_registration_entries(&self, expires_before: i64) -> DsResult<u64> {
        self.prune_entries_impl(expires_before).await
    }

    async fn list_change_events(
        &self,
        after_revision: i64,
        limit: u32,
    ) -> DsResult<Vec<ChangeEvent>> {
        self.list_events_impl(after_revision, limit).await
    }

    async fn latest_revision(&self) -> DsResult<i64> {
        self.latest_revision_impl().await
    }

    async fn prune_change_events(&self, before: i64) -> DsResult<u64> {
        self.prune_events_impl(before).await
    }

    async fn create_attested_node(&self, node: AttestedNode) -> DsResult<AttestedNode> {
        self.create_node_impl(node).await
    }

    async fn fetch_attested_node(&self, spiffe_id: &SpiffeId) -> DsResult<Option<AttestedNode>> {
        self.fetch_node_impl(spiffe_id).await
    }

    async fn list_attested_nodes(
        &self,
        request: &ListAttestedNodes,
    ) -> DsResult<Page<AttestedNode>> {
        self.list_nodes_impl(request).await
    }

    async fn count_attested_nodes(&self, request: &ListAttestedNodes) -> DsResult<u64> {
        self.count_nodes_impl(request).await
    }

    async fn update_attested_node(
        &self,
        node: AttestedNode,
        mask: Option<NodeMask>,
    ) -> DsResult<AttestedNode> {
        self.update_node_impl(node, mask).await
    }

    async fn promote_node_serial(
        &self,
        spiffe_id: &SpiffeId,
        expected_current: &str,
        new_serial: &str,
    ) -> DsResult<bool> {
        self.promote_node_serial_impl(spiffe_id, expected_current, new_serial)
            .await
    }

    async fn delete_attested_node(&self, spiffe_id: &SpiffeId) -> DsResult<AttestedNode> {
        self.delete_node_impl(spiffe_id).await
    }

    async fn prune_attested_nodes(
        &self,
        expired_before: i64,
        include_non_reattestable: bool,
        batch_size: u32,
    ) -> DsResult<Vec<SpiffeId>> {
        self.prune_nodes_impl(expired_before, include_non_reattestable, batch_size)
            .await
    }

    async fn set_node_selectors(
        &self,
        spiffe_id: &SpiffeId,
        selectors: &SelectorSet,
    ) -> DsResult<()> {
        self.set_node_selectors_impl(spiffe_id, selectors).await
    }

    async fn create_join_token(&self, token: JoinToken) -> DsResult<()> {
        self.create_join_token_impl(token).await
    }

    async fn fetch_join_token(&self, token: &str) -> DsResult<Option<JoinToken>> {
        self.fetch_join_token_impl(token).await
    }

    async fn take_join_token(&self, token: &str) -> DsResult<Option<JoinToken>> {
        self.take_join_token_impl(token).await
    }

    async fn prune_join_tokens(&self, expires_before: i64) -> DsResult<u64> {
        self.prune_join_tokens_impl(expires_before).await
    }

    async fn create_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> DsResult<FederationRelationship> {
        self.create_relationship_impl(relationship).await
    }

    async fn fetch_federation_relationship(
        &self,
        trust_domain: &TrustDomain,
    ) -> DsResult<Option<FederationRelationship>> {
        self.fetch_relationship_impl(trust_domain).await
    }

    async fn list_federation_relationships(
        &self,
        page: Option<Pagination>,
    ) -> DsResult<Page<FederationRelationship>> {
        self.list_relationships_impl(page).await
    }

    async fn update_federation_relationship(
        &self,
        relationship: FederationRelationship,
    ) -> DsResult<FederationRelationship> {
        self.update_relationship_impl(relationship).await
    }

    async fn delete_federation_relationship(&self, trust_domain: &TrustDomain) -> DsResult<()> {
        self.delete_relationship_impl(trust_domain).await
    }

    async fn set_ca_journal(&self, journal: CaJournal) -> DsResult<CaJournal> {
        self.set_ca_journal_impl(journal).await
    }

    async fn fetch_ca_journal(
        &self,
        active_x509_authority_id: &str,
    ) -> DsResult<Option<CaJournal>> {
        self.fetch_ca_journal_impl(active_x509_authority_id).await
    }

    async fn prune_ca_journals(&self, before: i64) -> DsResult<u64> {
        self.prune_ca_journals_impl(before).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Sql, get_i64, get_string};

    #[tokio::test]
    async fn sqlite_file_is_private_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/datastore.sqlite3");
        let store = SqlStore::open(&SqlConfig::sqlite(&path)).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut conn = store.reader().await.unwrap();
        let row = Sql::new("PRAGMA journal_mode")
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(get_string(&row, "journal_mode").unwrap(), "wal");
        let row = Sql::new("PRAGMA synchronous")
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(get_i64(&row, "synchronous").unwrap(), 2, "FULL");
        let row = Sql::new("PRAGMA foreign_keys")
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(get_i64(&row, "foreign_keys").unwrap(), 1);
        drop(conn);
        store.close().await;
        // Opening again runs no migration twice.
        let again = SqlStore::open(&SqlConfig::sqlite(&path)).await.unwrap();
        again.close().await;
    }

    #[tokio::test]
    async fn sqlite_file_uri_with_go_options_opens() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!(
            "file:{}/d%20b.sqlite3?_busy_timeout=5000&cache=shared",
            dir.path().display()
        );
        let store = SqlStore::open(&SqlConfig {
            database_type: "sqlite3".to_owned(),
            connection_string: uri,
        })
        .await
        .unwrap();
        store.close().await;
        assert!(dir.path().join("d b.sqlite3").exists());
    }
}
