//! `spire-server validate` on a SPIRE database: it says what `run` would take over and writes
//! nothing; a database `run` would refuse fails validation. The databases are written by
//! Python's sqlite3 module (SPIRE's schema-24 dump from `../shared/testdata`).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, ok, stderr, write_config};

/// Runs `sql` on `<dir>/data/datastore.sqlite3` with Python's sqlite3 (`None` after a skip).
fn load(dir: &Path, sql: &Path) -> Option<()> {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let db = dir.join("data/datastore.sqlite3");
    spire_test::python(
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         c.executescript(open(sys.argv[2]).read())\n\
         c.close()\n",
        &[db.as_os_str(), sql.as_os_str()],
    )
    .map(drop)
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn validate_reports_the_takeover_of_a_spire_database_and_writes_nothing() {
    let Some(dumps) = spire_test::shared_testdata("spire-sqlite-dumps") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    if load(dir.path(), &dumps.join("v24.sql")).is_none() {
        return;
    }
    let before = listing(dir.path());
    let out = Command::new(BIN)
        .args(["validate", "-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        ok(&out),
        "SPIRE server configuration file is valid.\n\
         Datastore: run would take over the SPIRE database (schema version 24, written by SPIRE \
         1.14.2-dev-27d2083): copy 1 bundles, 0 registration entries, 0 attested nodes (0 node \
         selectors), 0 join tokens, 0 federation relationships, 1 CA journals into the spire_rs_ \
         tables, leaving SPIRE's tables untouched.\n"
    );
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn validate_fails_on_a_database_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let sql = dir.path().join("other.sql");
    std::fs::write(&sql, "CREATE TABLE orders (id INTEGER PRIMARY KEY);").unwrap();
    if load(dir.path(), &sql).is_none() {
        return;
    }
    let out = Command::new(BIN)
        .args(["validate", "-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a SPIRE or spire-rs datastore"),
        "{}",
        stderr(&out)
    );
}
