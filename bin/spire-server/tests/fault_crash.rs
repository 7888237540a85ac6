//! Fault injection: `spire-server` killed with `kill -9` inside a 500-entry batch create.
//!
//! A test-only failpoint (`SPIRE_RS_FAILPOINT`, `docs/faults.md`) parks the server inside
//! the batch's transaction, once just before its commit and once just after, so the kill
//! lands at exactly that step. After each restart (SQLite datastore) the batch is there
//! whole or not at all: none of its entries after the kill before the commit, all of them
//! after the kill after it, never some; and the datastore opens and takes writes again.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, ok, stderr};

const BATCH: usize = 500;

/// Writes a `-data` file of `BATCH` entries whose SPIFFE IDs start with `prefix`.
fn batch_file(dir: &Path, prefix: &str) -> std::path::PathBuf {
    let entries: Vec<serde_json::Value> = (0..BATCH)
        .map(|n| {
            serde_json::json!({
                "spiffe_id": format!("spiffe://example.org/{prefix}/{n}"),
                "parent_id": "spiffe://example.org/node",
                "selectors": [{"type": "unix", "value": format!("uid:{n}")}],
            })
        })
        .collect();
    let path = dir.join(format!("{prefix}.json"));
    std::fs::write(&path, serde_json::json!({ "entries": entries }).to_string()).unwrap();
    path
}

/// Starts `entry create -data <file>` in the background: one BatchCreateEntry call.
fn spawn_batch(server: &Server, file: &Path) -> Child {
    Command::new(BIN)
        .args(["entry", "create", "-socketPath"])
        .arg(&server.socket)
        .arg("-data")
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls the server's log until the failpoint announces itself.
fn wait_failpoint(server: &Server, name: &str) {
    let marker = format!("failpoint {name} reached");
    for _ in 0..600 {
        if server.log().contains(&marker) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("failpoint {name} not reached:\n{}", server.log());
}

fn count(server: &Server, prefix: &str) -> usize {
    let out = ok(&server.cli(&["entry", "show", "-output", "json"]));
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    value["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| {
                    e["spiffe_id"]["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(&format!("/{prefix}/")))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Runs one batch into `failpoint`, kills the server there, restarts it and returns how many
/// of the batch's entries the restarted server has, and how long the restart took.
#[allow(clippy::disallowed_methods)] // Instant::now: the restart time is the reported figure
fn crash_at(dir: &Path, failpoint: &str, prefix: &str) -> (usize, Duration) {
    let file = batch_file(dir, prefix);
    let server = Server::start_with_env(dir, &[("SPIRE_RS_FAILPOINT", failpoint)]);
    let cli = spawn_batch(&server, &file);
    wait_failpoint(&server, failpoint);
    server.stop(); // SIGKILL
    let out = cli.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the batch was acknowledged although the server died inside it"
    );
    assert!(!stderr(&out).is_empty());
    let started = Instant::now();
    let server = Server::start(dir);
    let restart = started.elapsed();
    let found = count(&server, prefix);
    // The datastore takes writes again.
    ok(&server.cli(&[
        "entry",
        "create",
        "-parentID",
        "spiffe://example.org/node",
        "-spiffeID",
        &format!("spiffe://example.org/after-{prefix}"),
        "-selector",
        "unix:uid:1",
    ]));
    server.stop();
    (found, restart)
}

#[test]
fn kill_9_inside_a_batch_create_keeps_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (before, restart_before) = crash_at(dir.path(), "batch_create_entry_before_commit", "a");
    assert_eq!(
        before, 0,
        "a batch killed before its commit left entries behind"
    );
    let (after, restart_after) = crash_at(dir.path(), "batch_create_entry_after_commit", "b");
    assert_eq!(after, BATCH, "a committed batch lost entries");
    let server = Server::start(dir.path());
    assert_eq!(count(&server, "a"), 0);
    assert_eq!(count(&server, "b"), BATCH);
    println!(
        "kill -9 inside a {BATCH}-entry batch create (SQLite): killed before the commit → \
         {before} of {BATCH} entries after restart; killed after the commit (unacknowledged) → \
         {after} of {BATCH}; the datastore reopened cleanly both times (restart to healthy \
         {:.1} s and {:.1} s) and took writes",
        restart_before.as_secs_f64(),
        restart_after.as_secs_f64()
    );
}
