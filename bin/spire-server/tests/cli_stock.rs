//! SPIRE's own stock server configuration runs and validates unchanged, from a directory laid
//! out as SPIRE's checkout (`conf/server/server.conf` next to the dummy upstream CA).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, free_port, ok, stdout};

fn testdata() -> Option<PathBuf> {
    spire_test::shared_testdata("spire-conf")
}

fn checkout(testdata: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("conf/server");
    std::fs::create_dir_all(&conf).unwrap();
    for name in [
        "server.conf",
        "server_container.conf",
        "dummy_upstream_ca.crt",
        "dummy_upstream_ca.key",
    ] {
        std::fs::copy(testdata.join(name), conf.join(name)).unwrap();
    }
    root
}

#[test]
fn stock_configs_validate_unchanged() {
    let Some(testdata) = testdata() else { return };
    let root = checkout(&testdata);
    for config in [
        "conf/server/server.conf",
        "conf/server/server_container.conf",
    ] {
        let out = Command::new(BIN)
            .args(["validate", "-config", config])
            .current_dir(root.path())
            .output()
            .unwrap();
        assert_eq!(
            ok(&out),
            "SPIRE server configuration file is valid.\n",
            "{config}"
        );
    }
    // The default -config is conf/server/server.conf, relative to the working directory.
    let out = Command::new(BIN)
        .arg("validate")
        .current_dir(root.path())
        .output()
        .unwrap();
    assert_eq!(ok(&out), "SPIRE server configuration file is valid.\n");
}

#[test]
fn stock_server_conf_runs_with_the_dummy_upstream_ca() {
    let Some(testdata) = testdata() else { return };
    let root = checkout(&testdata);
    // The file is used as is; only the port and socket move so that tests can run in parallel.
    let socket = root.path().join("api.sock");
    let port = free_port().to_string();
    let log = std::fs::File::create(root.path().join("server.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-serverPort", &port, "-socketPath"])
        .arg(&socket)
        .current_dir(root.path())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(&args[..2])
            .arg("-socketPath")
            .arg(&socket)
            .args(&args[2..])
            .output()
            .unwrap()
    };
    let mut healthy = false;
    for _ in 0..600 {
        assert!(child.try_wait().unwrap().is_none(), "server exited early");
        if cli(&["healthcheck", "-shallow"]).status.success() {
            healthy = true;
            break;
        }
        // Poll interval while waiting for the condition (healthcheck passing).
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(healthy, "server never became healthy");

    // The bundle holds the upstream root, not our (intermediate) CA.
    let bundle = stdout(&cli(&["bundle", "show", "-format", "pem"]));
    let upstream = std::fs::read_to_string(testdata.join("dummy_upstream_ca.crt")).unwrap();
    let der = |pem_text: &str| {
        pem::parse_many(pem_text)
            .unwrap()
            .into_iter()
            .map(pem::Pem::into_contents)
            .collect::<Vec<_>>()
    };
    assert_eq!(der(&bundle), der(&upstream));

    let created = cli(&[
        "entry",
        "create",
        "-parentID",
        "spiffe://example.org/spire/agent/join_token/abc",
        "-spiffeID",
        "spiffe://example.org/workload",
        "-selector",
        "unix:uid:1000",
    ]);
    assert!(ok(&created).contains("SPIFFE ID               : spiffe://example.org/workload"));
    assert!(
        std::fs::metadata(root.path().join(".data/datastore.sqlite3")).is_ok(),
        "relative data paths resolve from the checkout"
    );

    child.kill().unwrap();
    child.wait().unwrap();
}
