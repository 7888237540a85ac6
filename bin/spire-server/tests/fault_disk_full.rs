//! Fault injection: the disk fills under a running `spire-server`.
//!
//! The data directory (SQLite database and the disk KeyManager's `keys.json`) is a 4 MiB
//! tmpfs. The test fills it, keeps writing entries, frees it and restarts the server with
//! `kill -9`, then checks: every refused write (entries, a new CA key) said why, the server
//! kept serving throughout and wrote again once space came back without a restart, every
//! acknowledged entry is there after the restart, and the CA is the one it had.
//! Needs root (mount); skipped outside CI without it, a failure in CI.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, ok, stderr, stdout, write_config};

/// A tmpfs mounted for the test, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until a write fails with ENOSPC; returns the bytes
/// written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever is left in the page cache must reach the (memory-backed) disk as well.
    let _ = file.sync_all();
    written
}

fn create_entry(server: &Server, n: usize) -> std::process::Output {
    server.cli(&[
        "entry",
        "create",
        "-parentID",
        "spiffe://example.org/node",
        "-spiffeID",
        &format!("spiffe://example.org/workload/{n}"),
        "-selector",
        &format!("unix:uid:{n}"),
    ])
}

fn count(server: &Server) -> usize {
    let out = ok(&server.cli(&["entry", "count"]));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_full_disk_refuses_writes_clearly_and_loses_nothing() {
    if !rustix::process::getuid().is_root() {
        spire_test::skip("mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount(&data, "4m") else {
        spire_test::skip("mount -t tmpfs failed");
        return;
    };
    let keys = data.join("keys.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "KeyManager \"memory\" {\n        plugin_data {}",
        &format!(
            "KeyManager \"disk\" {{\n        plugin_data {{ keys_path = \"{}\" }}",
            keys.display()
        ),
    );
    assert!(text.contains("KeyManager \"disk\""), "{text}");
    std::fs::write(&config, text).unwrap();

    let server = Server::start(dir.path());
    let bundle = ok(&server.cli(&["bundle", "show"]));
    let keys_before = std::fs::read(&keys).unwrap();
    let mut acknowledged = 0;
    for n in 0..5 {
        ok(&create_entry(&server, n));
        acknowledged += 1;
    }

    let filled = fill(&data.join("filler"));
    let (mut refused, mut messages) = (0, Vec::new());
    for n in 5..25 {
        let out = create_entry(&server, n);
        if out.status.success() {
            acknowledged += 1;
        } else {
            refused += 1;
            let message = format!("{}{}", stdout(&out), stderr(&out));
            assert!(
                message.contains("disk is full") || message.contains("No space left"),
                "a refused write names the cause: {message}"
            );
            messages.push(message);
        }
        // Serving goes on: reads and health answer while writes are refused.
        ok(&server.cli(&["healthcheck"]));
    }
    assert!(refused > 0, "the filled disk refused no write");
    // A new CA key cannot be written either: refused with its cause, keys.json as it was.
    let prepare = server.cli(&["localauthority", "x509", "prepare"]);
    assert!(!prepare.status.success(), "{}", stdout(&prepare));
    let prepare_error = stderr(&prepare);
    assert!(
        prepare_error.contains("No space left") || prepare_error.contains("disk is full"),
        "a refused key write names the cause: {prepare_error}"
    );
    assert_eq!(std::fs::read(&keys).unwrap(), keys_before);
    assert_eq!(count(&server), acknowledged);

    // Space comes back: writes work again without a restart.
    std::fs::remove_file(data.join("filler")).unwrap();
    ok(&create_entry(&server, 100));
    acknowledged += 1;

    // A crash now loses nothing acknowledged, and the CA is the one it had.
    server.stop();
    let server = Server::start(dir.path());
    assert_eq!(count(&server), acknowledged);
    assert_eq!(ok(&server.cli(&["bundle", "show"])), bundle);
    assert_eq!(std::fs::read(&keys).unwrap(), keys_before);
    println!(
        "disk full ({filled} bytes filled on a 4 MiB tmpfs): {refused} of 20 entry writes \
         refused, each naming the cause (first: {}); {acknowledged} acknowledged entries all \
         present after kill -9 and restart; CA and keys.json unchanged; a CA key prepared on the \
         full disk refused ({})",
        messages[0].lines().next().unwrap_or_default(),
        prepare_error.trim()
    );
}
