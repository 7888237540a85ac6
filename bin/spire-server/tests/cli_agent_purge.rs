//! `spire-server agent purge` against a real server: only agents that can re-attest and whose
//! SVID expired longer ago than `-expiredFor` (default 720h) go; `-dryRun` only lists them;
//! SPIRE's pretty and JSON outputs. The agents are written into the server's SQLite file by
//! an independent writer (python3's sqlite3 module), with expiry times no real agent could
//! be given in a test's time.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Server, ok, stderr, stdout};

const INSERT: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
for spec in sys.argv[2:]:
    name, not_after, reattest = spec.split(",")
    kind = "x509pop" if reattest == "1" else "join_token"
    db.execute(
        "INSERT INTO spire_rs_attested_nodes (spiffe_id, attestation_type, cert_serial_number,"
        " cert_not_after, new_cert_serial_number, new_cert_not_after, can_reattest)"
        " VALUES (?, ?, '1', ?, '', 0, ?)",
        ("spiffe://example.org/spire/agent/%s/%s" % (kind, name), kind, int(not_after), int(reattest)),
    )
db.commit()
"#;

#[allow(clippy::disallowed_methods)] // the real server judges expiry against the wall clock
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn id(name: &str) -> String {
    format!("spiffe://example.org/spire/agent/x509pop/{name}")
}

#[test]
fn purge_deletes_only_long_expired_reattestable_agents() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert_eq!(
        ok(&server.cli(&["agent", "purge"])),
        "No agents to purge.\n"
    );
    assert_eq!(
        ok(&server.cli(&["agent", "purge", "-output", "json"])),
        "[{\"expired_agents\":[]}]\n"
    );

    let hour = 3600;
    let day = 24 * hour;
    let t = now();
    let db = dir.path().join("data/datastore.sqlite3");
    let specs = [
        format!("recent,{},1", t - 2 * hour),
        format!("old,{},1", t - 40 * day),
        format!("tofu,{},0", t - 40 * day),
        format!("live,{},1", t + hour),
    ];
    let mut args = vec![db.as_os_str()];
    args.extend(specs.iter().map(|s| std::ffi::OsStr::new(s.as_str())));
    if spire_test::python(INSERT, &args).is_none() {
        return;
    }

    // The default: expired more than 720h ago. A dry run deletes nothing.
    assert_eq!(
        ok(&server.cli(&["agent", "purge", "-dryRun"])),
        format!(
            "Found 1 expired agent\n\n\nAgents that can be purged:\nSPIFFE ID         : {}\n",
            id("old")
        )
    );
    assert_eq!(
        ok(&server.cli(&[
            "agent",
            "purge",
            "-expiredFor",
            "1h",
            "-dryRun",
            "-output",
            "json"
        ])),
        format!(
            "[{{\"expired_agents\":[{{\"agent_id\":\"{}\",\"deleted\":false}},\
             {{\"agent_id\":\"{}\",\"deleted\":false}}]}}]\n",
            id("old"),
            id("recent")
        )
    );
    assert_eq!(ok(&server.cli(&["agent", "count"])), "4 attested agents\n");

    // Expired more than an hour ago, re-attestable: two go; the TOFU agent stays.
    assert_eq!(
        ok(&server.cli(&["agent", "purge", "-expiredFor", "1h"])),
        format!(
            "Found 2 expired agents\n\nAgents purged:\nSPIFFE ID         : {}\nSPIFFE ID         : {}\n",
            id("old"),
            id("recent")
        )
    );
    let left = ok(&server.cli(&["agent", "list"]));
    assert!(left.starts_with("Found 2 attested agents"), "{left}");
    assert!(left.contains(&id("live")), "{left}");
    assert!(
        left.contains("spiffe://example.org/spire/agent/join_token/tofu"),
        "{left}"
    );
    assert_eq!(
        ok(&server.cli(&["agent", "purge", "-expiredFor", "1h"])),
        "No agents to purge.\n"
    );

    // Go's duration syntax only.
    let out = server.cli(&["agent", "purge", "-expiredFor", "5d"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("5d"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}
