//! The binary's refusals, as a user meets them (also makes `cargo test` build the binary,
//! which the image tests package).
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn required_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spire-controller-manager-config.yaml");
    std::fs::write(
        &path,
        "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\nclusterName: demo-cluster\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_spire-controller-manager"))
        .arg(format!("--config={}", path.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.to_lowercase().contains("trust"), "{stderr}");
}

#[test]
fn unknown_flags_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_spire-controller-manager"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
