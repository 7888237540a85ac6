//! Versioned schema migrations, embedded with `include_str!` and run by sqlx's `Migrator`
//! (built by hand: the `migrate!` macro would need sqlx's `macros` feature, which compiles
//! the bundled SQLite a second time for the proc-macro host).
//!
//! On PostgreSQL the migrator holds an advisory lock while it runs (on MySQL a named lock,
//! `GET_LOCK`), so servers that start together on one database migrate it once, one after
//! the other.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::Error;
use crate::db::Backend;

/// `(version, description, sql)` per backend, in order. Never edit a released migration:
/// sqlx stores each one's checksum and refuses to start when it changes.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "spire_rs_table_names",
        include_str!("../migrations/sqlite/0002_spire_rs_table_names.sql"),
    ),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "spire_rs_table_names",
        include_str!("../migrations/postgres/0002_spire_rs_table_names.sql"),
    ),
];

const MYSQL: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/mysql/0001_init.sql")),
    (
        2,
        "spire_rs_table_names",
        include_str!("../migrations/mysql/0002_spire_rs_table_names.sql"),
    ),
];

/// The migrator for `backend`.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let scripts = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
        Backend::Mysql => MYSQL,
    };
    let migrations = scripts
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    // `with_migrations` leaves locking on.
    Migrator::with_migrations(migrations)
}

/// Brings the schema up to date on `conn`, inside the caller's transaction (each migration
/// runs in a savepoint).
pub(crate) async fn run_on(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<(), Error> {
    migrator(backend)
        .run_direct(None, conn, false)
        .await
        .map_err(Error::Migrate)
}

/// Brings the schema up to date.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), Error> {
    if backend == Backend::Mysql {
        return run_mysql(pool).await;
    }
    migrator(backend).run(pool).await.map_err(Error::Migrate)
}

/// How long a MySQL server waits for another one's migration before giving up.
const MYSQL_LOCK_WAIT_SECONDS: i64 = 600;

/// MySQL: sqlx's own lock asks `GET_LOCK` to wait forever with a negative timeout, which
/// MariaDB answers with NULL at once instead of waiting, so two servers starting together
/// would both migrate. The migrations run under a named lock taken here, with a finite wait.
async fn run_mysql(pool: &AnyPool) -> Result<(), Error> {
    use sqlx::Row as _;
    let mut conn = pool.acquire().await.map_err(Error::Connect)?;
    let lock_name = "LEFT(CONCAT('spire_rs_migrate.', DATABASE()), 64)";
    let got: Option<i64> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(GET_LOCK({lock_name}, {MYSQL_LOCK_WAIT_SECONDS}) AS SIGNED) AS got"
    )))
    .fetch_one(&mut *conn)
    .await
    .and_then(|row| row.try_get("got"))
    .map_err(Error::Connect)?;
    if got != Some(1) {
        return Err(Error::Config(format!(
            "another server held the MySQL migration lock for over {MYSQL_LOCK_WAIT_SECONDS} s"
        )));
    }
    let mut migrator = migrator(Backend::Mysql);
    migrator.set_locking(false);
    let done = migrator
        .run_direct(None, &mut *conn, false)
        .await
        .map_err(Error::Migrate);
    let released = sqlx::query(sqlx::AssertSqlSafe(format!("DO RELEASE_LOCK({lock_name})")))
        .execute(&mut *conn)
        .await;
    done?;
    released.map_err(Error::Connect)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::str::FromStr as _;
    use std::sync::Arc;

    use spire_server_datastore::DataStore as _;
    use sqlx::Executor as _;

    use super::*;
    use crate::{SqlConfig, SqlStore};

    /// A database written before the tables took their `spire_rs_` prefix (migration 1 only)
    /// opens with its rows, now under the new names.
    #[tokio::test]
    async fn a_database_from_before_the_prefix_keeps_its_rows() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datastore.sqlite3");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        migrator(Backend::Sqlite).run_to(1, &pool).await.unwrap();
        pool.execute(
            "INSERT INTO join_tokens (token, expires_at) VALUES ('tok', 4102444800);
             INSERT INTO attested_nodes VALUES ('spiffe://example.org/agent', 'join_token', '12', 4102444800, '', 0, 0);
             INSERT INTO node_selectors VALUES ('spiffe://example.org/agent', 'a', 'b');
             UPDATE revision_counter SET revision = 7;",
        )
        .await
        .unwrap();
        pool.close().await;

        let store = SqlStore::open_with_clock(
            &SqlConfig::sqlite(&path),
            Arc::new(spire_time::ManualClock::at_fixed_instant()),
        )
        .await
        .unwrap();
        let token = store.fetch_join_token("tok").await.unwrap().unwrap();
        assert_eq!(token.expires_at, 4_102_444_800);
        let id = spire_id::SpiffeId::from_str("spiffe://example.org/agent").unwrap();
        let node = store.fetch_attested_node(&id).await.unwrap().unwrap();
        assert_eq!(node.cert_serial_number, "12");
        assert_eq!(node.selectors.len(), 1);
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'spire_rs_%' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert!(tables.is_empty(), "unprefixed tables left: {tables:?}");
        store.close().await;
    }
}
