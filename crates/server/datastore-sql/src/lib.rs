//! The SQL implementation of the server `DataStore`, on SQLite (one server), PostgreSQL or
//! MySQL / MariaDB (any number of servers).
//!
//! # One code path: sqlx's `Any` driver
//!
//! Every query goes through one `AnyPool`, so each operation is written once. The dialects
//! meet on a small common subset: `RETURNING`, `INSERT … ON CONFLICT DO NOTHING`, integers,
//! text and bytes as the only column types, and booleans that are `BOOLEAN` on PostgreSQL and
//! `INTEGER` on SQLite (read through one getter). Where the DDL differs the migrations are per
//! backend (`migrations/sqlite`, `migrations/postgres`); at run time the only dialect switches
//! are the placeholder style (`?` or `$n`, chosen when a statement runs) and `FOR UPDATE`;
//! MySQL, which has neither `ON CONFLICT` nor `RETURNING`, takes a second path through the few
//! statements that use them (`db::insert_unless_exists`, `db::delete_returning`, the entry
//! batch insert, the revision counter), and keeps text as binary strings. The
//! cost of `Any` is one copy of each bound value and each fetched cell, small next to the page
//! writes of a commit. Typed pools behind an enum would have meant writing every query twice.
//!
//! # Change events and revisions
//!
//! Writes record [`ChangeEvent`](spire_server_datastore::ChangeEvent)s in their own
//! transaction. Revisions come from one counter row, bumped by the number of events as the
//! transaction's last statement before `COMMIT`: the row lock makes committers take turns,
//! so revisions are gap-free and in commit order across every server sharing a PostgreSQL
//! database, and a follower reading "events after N" never skips one. (A sequence would hand
//! out numbers in start order, and a later number could commit first.)
//!
//! # Batches
//!
//! A batch create is one transaction of a few multi-row statements (chunked under the bind
//! limits), not one statement per entry. Duplicates are skipped by `ON CONFLICT DO NOTHING`
//! and explained afterwards, so one bad item never aborts the others, which a failed
//! statement would do on PostgreSQL. Updates go item by item, with a savepoint around the one
//! statement that can hit the similarity constraint.
//!
//! # SQLite durability
//!
//! WAL with `synchronous=FULL` (a committed write survives power loss), foreign keys on, a
//! busy timeout, and writers serialized in-process by a mutex and `BEGIN IMMEDIATE`, so no
//! two write transactions ever try to upgrade their locks against each other.
#![forbid(unsafe_code)]

mod bundles;
mod config;
mod db;
mod entries;
mod entries_query;
mod entry_codec;
mod events;
mod federation;
mod filters;
mod migrate;
mod misc;
mod nodes;
mod prune;
mod store;
mod takeover;

use std::path::PathBuf;

pub use config::SqlConfig;
pub use store::SqlStore;
pub use takeover::{SPIRE_SCHEMAS, SchemaPlan, SpireDatabase, TakeoverCounts};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid sql datastore configuration: {0}")]
    Config(String),
    /// The SQLite file or its directory could not be created.
    #[error("could not prepare sqlite database file {path}: {source}")]
    File {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be reached.
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The schema migrations failed.
    #[error("could not migrate the database schema: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database holds tables that are neither ours nor a SPIRE datastore's; nothing was
    /// written.
    #[error("refusing the database: it is not a SPIRE or spire-rs datastore: {0}")]
    NotSpire(String),
    /// A SPIRE datastore at a schema version this server cannot take over; nothing was written.
    #[error("refusing the SPIRE database: {0}")]
    SpireSchema(String),
    /// Copying a SPIRE datastore failed; the transaction was rolled back.
    #[error("taking over the SPIRE database failed (nothing was changed): {0}")]
    TakeOver(String),
}
