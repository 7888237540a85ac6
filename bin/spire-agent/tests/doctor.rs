//! `spire-agent doctor` against the real binaries: runs `test/e2e/doctor.sh` (a missing
//! socket, an unregistered caller, a healthy agent, a wrong trust domain, a federated trust
//! domain that is not served). `spire-server` is looked up next to `spire-agent`, as in
//! `e2e_shell.rs`; with `cargo test -p spire-agent` alone build it first
//! (`cargo build -p spire-server`).
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

#[test]
fn doctor_against_real_agent() {
    let Some(conf) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    for (tool, arg) in [("bash", "--version"), ("openssl", "version")] {
        if !tool_available(tool, arg) {
            spire_test::skip(&format!("{tool} is not installed"));
            return;
        }
    }
    let server = server_bin();
    assert!(
        server.is_file(),
        "{} is missing: `cargo test --workspace` builds it before running tests; \
         with `cargo test -p spire-agent` run `cargo build -p spire-server` first",
        server.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/e2e/doctor.sh");
    let out = Command::new("bash")
        .arg(&script)
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
        script.display(),
        out.status
    );
    eprintln!("{stdout}");
}
