//! The binary's refusals, as a user meets them (also makes `cargo test` build the binary,
//! which the seed's end-to-end test in `bin/spire-agent/tests/` runs).
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn run(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k8s-workload-registrar.conf");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_k8s-workload-registrar"))
        .arg("-config")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn a_tcp_server_address_is_refused_naming_the_socket_setting() {
    let (code, text) = run(
        "trust_domain = \"example.org\"\nserver_address = \"spire-server:8081\"\n\
         cluster = \"demo-cluster\"\nmode = \"crd\"\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("server_socket_path"), "{text}");
}

#[test]
fn a_missing_cluster_is_refused() {
    let (code, text) = run(
        "trust_domain = \"example.org\"\nserver_socket_path = \"/run/spire/sockets/server.sock\"\n\
         mode = \"crd\"\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("cluster"), "{text}");
}

#[test]
fn a_missing_config_file_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_k8s-workload-registrar"))
        .args(["-config", "/nonexistent/k8s-workload-registrar.conf"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/k8s-workload-registrar.conf"),
        "{stderr}"
    );
}
