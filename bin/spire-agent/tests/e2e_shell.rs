//! Runs the shell end-to-end suites of `test/e2e/` (the real `spire-server` and `spire-agent`
//! binaries driven only through their command lines) as part of `cargo test --workspace`.
//!
//! `spire-agent` comes from `CARGO_BIN_EXE_spire-agent`. `spire-server` is a different
//! package, so Cargo gives no such variable for it: it is looked up next to `spire-agent` in the
//! same target directory. `cargo test --workspace` builds every selected package's binaries
//! before it runs any test, so both are current there; `cargo test -p spire-agent` alone does
//! not build `spire-server` (the test then fails and says so). See `test/e2e/README.md`.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT_BIN: &str = env!("CARGO_BIN_EXE_spire-agent");

/// `spire-server` in the same target directory (and profile) as `spire-agent`.
fn server_bin() -> PathBuf {
    Path::new(AGENT_BIN).with_file_name(format!("spire-server{}", std::env::consts::EXE_SUFFIX))
}

fn tool_available(name: &str, arg: &str) -> bool {
    Command::new(name)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `test/e2e/<script>` with bash and fails with its whole output when it fails.
fn run_suite(script: &str) {
    let Some(conf) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    if !tool_available("bash", "--version") {
        spire_test::skip("bash is not installed");
        return;
    }
    if !tool_available("openssl", "version") {
        spire_test::skip("openssl is not installed");
        return;
    }
    let server = server_bin();
    assert!(
        server.is_file(),
        "{} is missing: `cargo test --workspace` builds it before running tests; \
         with `cargo test -p spire-agent` run `cargo build -p spire-server` first",
        server.display()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test/e2e")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .env("SPIRE_SERVER_BIN", &server)
        .env("SPIRE_AGENT_BIN", AGENT_BIN)
        .env("SPIRE_E2E_CONF", &conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        path.display(),
        out.status
    );
    // Shown with `--nocapture`: the steps the suite went through.
    eprintln!("{stdout}");
}

#[test]
fn getting_started() {
    run_suite("getting-started.sh");
}

#[test]
fn agent_cli() {
    run_suite("agent-cli.sh");
}

#[test]
fn ban_and_evict() {
    run_suite("ban-evict.sh");
}

#[test]
fn jwt_svids() {
    run_suite("jwt.sh");
}

#[test]
fn federation() {
    run_suite("federation.sh");
}
