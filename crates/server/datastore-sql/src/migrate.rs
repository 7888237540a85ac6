//! Versioned schema migrations, embedded with `include_str!` and run by sqlx's `Migrator`
//! (built by hand: the `migrate!` macro would need sqlx's `macros` feature, which compiles
//! the bundled SQLite a second time for the proc-macro host).
//!
//! On PostgreSQL the migrator holds an advisory lock while it runs, so servers that start
//! together on one database migrate it once, one after the other.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::Error;
use crate::db::Backend;

/// `(version, description, sql)` per backend, in order. Never edit a released migration:
/// sqlx stores each one's checksum and refuses to start when it changes.
const SQLITE: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
)];
const POSTGRES: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../migrations/postgres/0001_init.sql"),
)];

/// The migrator for `backend`.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let scripts = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
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

/// Brings the schema up to date.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), Error> {
    migrator(backend).run(pool).await.map_err(Error::Migrate)
}
