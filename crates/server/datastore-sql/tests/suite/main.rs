//! The datastore suite, written once and run against SQLite (a temp file) and PostgreSQL
//! (a fresh database per test under `SPIRE_TEST_POSTGRES_URL`).

// Helpers outside `#[test]` functions count as non-test code for clippy; here a failed
// unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod harness;

mod bundles;
mod entries;
mod events;
mod list;
mod misc;
mod nodes;
mod prune;
mod takeover;
