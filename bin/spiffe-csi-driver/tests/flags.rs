#![allow(clippy::unwrap_used)]
//! The binary as a DaemonSet runs it: spiffe-csi's flags and messages, then serving until
//! SIGTERM.

use std::process::{Command, Output, Stdio};

use spiffe_csi::proto::v1::identity_client::IdentityClient;
use spiffe_csi::proto::v1::node_client::NodeClient;
use spiffe_csi::proto::v1::{GetPluginInfoRequest, NodeGetInfoRequest};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_spiffe-csi-driver");

fn run(args: &[&str], node_name: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("MY_NODE_NAME")
        .env_remove("SPIRE_LOG");
    if let Some(name) = node_name {
        command.env("MY_NODE_NAME", name);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_node_id_is_refused() {
    for (args, env) in [
        (
            &["-workload-api-socket-dir", "/run/spire/sockets"][..],
            None,
        ),
        (&["-workload-api-socket-dir", "/s"][..], Some("")),
        (
            &[
                "-workload-api-socket-dir",
                "/s",
                "-node-id-env",
                "UNSET_NODE_VARIABLE",
            ][..],
            Some("node-a"),
        ),
        (&[][..], None),
    ] {
        let output = run(args, env);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert!(err.contains("node ID is required"), "{args:?}: {err}");
        assert!(err.contains("Failed to create driver"), "{err}");
    }
}

#[test]
fn a_missing_socket_directory_is_refused() {
    for (args, env) in [
        (&["-node-id", "node-a"][..], None),
        (&[][..], Some("node-a")),
        (&["-node-id=node-a", "-workload-api-socket-dir="][..], None),
    ] {
        let output = run(args, env);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert!(
            err.contains("workload API socket directory is required"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn unknown_flags_are_usage_errors() {
    let output = run(&["-workload-api-socket", "/s"], Some("n"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--workload-api-socket"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn version_is_printed_either_way() {
    for flag in ["--version", "-version"] {
        let output = run(&[flag], None);
        assert!(output.status.success(), "{flag}");
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            format!("spiffe-csi-driver {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_csi_socket_until_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_dir = tmp.path().join("agent-sockets");
    std::fs::create_dir(&socket_dir).unwrap();
    let csi_socket = tmp.path().join("spiffe-csi/csi.sock");
    let mut child = tokio::process::Command::new(BIN)
        .arg("-workload-api-socket-dir")
        .arg(&socket_dir)
        .arg(format!("-csi-socket-path={}", csi_socket.display()))
        .args(["-plugin-name", "csi.example.org", "-node-id-env", "NODE"])
        .env("NODE", "node-7")
        .env_remove("SPIRE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    // The socket is bound once this line is out.
    while !log.contains("Serving the CSI socket") {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("driver exited early");
        log.push_str(&line);
        log.push('\n');
    }
    assert!(log.contains("Starting"), "{log}");

    let channel = spire_health::unix_channel(&csi_socket).await.unwrap();
    let info = IdentityClient::new(channel.clone())
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.example.org");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    let node = NodeClient::new(channel)
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.node_id, "node-7");

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().await.unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("Stopping"), "{log}");
}
