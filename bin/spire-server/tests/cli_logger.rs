//! `spire-server logger get|set|reset` against a real server: the level changes while it runs
//! (a debug line stops appearing, then comes back), with SPIRE's outputs and messages.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::path::Path;

use common::{Server, ok, stderr, write_config};

fn start(dir: &Path, log: &Path) -> Server {
    let path = write_config(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let logging = format!(
        "log_level = \"DEBUG\"\n    log_file = \"{}\"",
        log.display()
    );
    std::fs::write(&path, text.replace("log_level = \"WARN\"", &logging)).unwrap();
    Server::start(dir)
}

/// Mints an X509-SVID for `spiffe://example.org/<name>`: the server logs "Signed X509 SVID" at
/// debug level, with the ID, before it answers.
fn mint(server: &Server, name: &str) {
    ok(&server.cli(&[
        "x509",
        "mint",
        "-spiffeID",
        &format!("spiffe://example.org/{name}"),
    ]));
}

/// Logs one error line (an unknown entry), before the answer: a marker that lines written
/// after the previous commands have reached the file.
fn marker(server: &Server, n: usize) {
    let out = server.cli(&["entry", "show", "-entryID", &format!("marker-{n}")]);
    assert!(!out.status.success());
}

fn signed(log: &Path, name: &str) -> bool {
    let needle = format!("spiffe_id=\"spiffe://example.org/{name}\"");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .any(|l| l.contains("level=debug") && l.contains(&needle))
}

#[test]
fn set_warn_silences_debug_lines_without_a_restart_and_reset_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("spire.log");
    let server = start(dir.path(), &log);

    assert_eq!(
        ok(&server.cli(&["logger", "get"])),
        "Logger Level : debug\nLaunch Level : debug\n\n"
    );
    mint(&server, "before");
    assert!(signed(&log, "before"));

    assert_eq!(
        ok(&server.cli(&["logger", "set", "-level", "warn"])),
        "Logger Level : warning\nLaunch Level : debug\n\n"
    );
    mint(&server, "while-warn");
    marker(&server, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("msg=\"Entry not found\""), "{text}");
    assert!(!signed(&log, "while-warn"), "{text}");
    assert!(
        text.lines().any(
            |l| l.contains("msg=\"SetLogLevel Called\"") && l.contains("new_log_level=warning")
        ),
        "{text}"
    );
    assert_eq!(
        ok(&server.cli(&["logger", "get"])),
        "Logger Level : warning\nLaunch Level : debug\n\n"
    );
    assert_eq!(
        ok(&server.cli(&["logger", "get", "-output", "json"])),
        "{\"current_level\":\"WARN\",\"launch_level\":\"DEBUG\"}\n"
    );

    assert_eq!(
        ok(&server.cli(&["logger", "reset"])),
        "Logger Level : debug\nLaunch Level : debug\n\n"
    );
    mint(&server, "after-reset");
    assert!(signed(&log, "after-reset"));

    // logrus's names in any case, `warning` too.
    assert_eq!(
        ok(&server.cli(&["logger", "set", "-level", "ERROR", "-output", "json"])),
        "{\"current_level\":\"ERROR\",\"launch_level\":\"DEBUG\"}\n"
    );
    assert_eq!(
        ok(&server.cli(&["logger", "set", "-level", "warning"])),
        "Logger Level : warning\nLaunch Level : debug\n\n"
    );
}

#[test]
fn a_missing_or_bad_level_is_refused_with_spires_messages() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("spire.log");
    let server = start(dir.path(), &log);
    for (args, message) in [
        (
            &["logger", "set"][..],
            "Error: a value (-level) must be set\n",
        ),
        (
            &["logger", "set", "-level", "never"][..],
            "Error: the value \"never\" is not a valid setting\n",
        ),
        (
            &["logger", "set", "-level", ""][..],
            "Error: a value (-level) must be set\n",
        ),
    ] {
        let out = server.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), message, "{args:?}");
    }
    // Nothing changed.
    assert_eq!(
        ok(&server.cli(&["logger", "get"])),
        "Logger Level : debug\nLaunch Level : debug\n\n"
    );
}

#[test]
fn without_a_server_the_error_names_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let out = std::process::Command::new(common::BIN)
        .args(["logger", "get", "-socketPath"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error: error fetching logger: rpc error: code = Unavailable"),
        "{}",
        stderr(&out)
    );
}
