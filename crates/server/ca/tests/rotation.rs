//! CA rotation on an injected clock, and what a restart keeps, for both key managers.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::sync::Arc;
use std::time::Duration;

use spire_server_ca::SlotId;
use spire_server_plugin::keymanager::{DiskKeyManager, KeyManager, MemoryKeyManager};
use support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn rotation_prepares_at_half_and_activates_at_five_sixths(key_manager: Arc<dyn KeyManager>) {
    let fx = Fixture::new().await;
    let manager = fx.manager(key_manager).await;
    let (slot, first) = manager.current().await.unwrap();
    assert_eq!(slot, SlotId::A);
    assert!(manager.next().await.is_none());
    let start = fx.now();
    // notBefore is backdated 10 s, so the lifetime is 24h + 10s; ½ and ⅚ are measured on it.
    let lifetime = DAY + secs(10);
    let half = first.not_before() + lifetime / 2;
    let five_sixths = first.not_before() + lifetime * 5 / 6;

    fx.clock.set(half - secs(1));
    manager.rotate().await.unwrap();
    assert!(manager.next().await.is_none(), "nothing prepared before ½");

    fx.clock.set(half);
    manager.rotate().await.unwrap();
    let (next_slot, second) = manager.next().await.expect("prepared at ½");
    assert_eq!(next_slot, SlotId::B);
    assert_eq!(
        manager.current().await.unwrap().1.authority_id(),
        first.authority_id()
    );
    let roots = fx.bundle_roots().await;
    assert_eq!(
        roots,
        [first.certificate().to_vec(), second.certificate().to_vec()],
        "published before use"
    );

    fx.clock.set(five_sixths - secs(1));
    manager.rotate().await.unwrap();
    assert_eq!(
        manager.current().await.unwrap().1.authority_id(),
        first.authority_id()
    );

    fx.clock.set(five_sixths);
    manager.rotate().await.unwrap();
    let (slot, active) = manager.current().await.unwrap();
    assert_eq!(
        (slot, active.authority_id()),
        (SlotId::B, second.authority_id())
    );
    assert!(manager.next().await.is_none());
    assert_eq!(
        fx.bundle_roots().await.len(),
        2,
        "the old root stays in the bundle"
    );

    // New SVIDs chain to the new root; an SVID from the old CA still verifies.
    let chain = mint(&manager, &fx.id("/w"), secs(0));
    verify_chain(&chain, &[second.certificate().to_vec()], fx.now()).unwrap();
    assert!(verify_chain(&chain, &[first.certificate().to_vec()], fx.now()).is_err());

    // The next cycle reuses slot A with a new key.
    let second_half = second.not_before()
        + (second
            .not_after()
            .duration_since(second.not_before())
            .unwrap())
            / 2;
    fx.clock.set(second_half);
    manager.rotate().await.unwrap();
    let (slot, third) = manager.next().await.unwrap();
    assert_eq!(slot, SlotId::A);
    assert_ne!(third.authority_id(), first.authority_id());

    // A day after the first CA expired, its root is pruned from the bundle.
    fx.clock.set(first.not_after() + DAY + secs(1));
    manager.rotate().await.unwrap();
    let roots = fx.bundle_roots().await;
    assert!(
        !roots.contains(&first.certificate().to_vec()),
        "expired root pruned after the margin"
    );
    assert!(roots.contains(&manager.current().await.unwrap().1.certificate().to_vec()));
    assert!(fx.now() > start);
}

#[tokio::test]
async fn rotation_with_memory_key_manager() {
    rotation_prepares_at_half_and_activates_at_five_sixths(Arc::new(MemoryKeyManager::new())).await;
}

#[tokio::test]
async fn rotation_with_disk_key_manager() {
    let dir = tempfile::tempdir().unwrap();
    let km = DiskKeyManager::open(dir.path().join("keys.json")).unwrap();
    rotation_prepares_at_half_and_activates_at_five_sixths(Arc::new(km)).await;
}

#[tokio::test]
async fn disk_key_manager_restart_continues_with_the_same_ca() {
    let fx = Fixture::new().await;
    let keys = fx.dir.path().join("keys.json");
    let first = fx
        .manager(Arc::new(DiskKeyManager::open(&keys).unwrap()))
        .await;
    let (_, before) = first.current().await.unwrap();
    // Also carry a prepared slot across the restart.
    fx.clock.set(
        before.not_before()
            + (before
                .not_after()
                .duration_since(before.not_before())
                .unwrap())
                / 2,
    );
    first.rotate().await.unwrap();
    let (_, prepared) = first.next().await.unwrap();
    drop(first);

    let datastore = open_store(&fx.dir).await; // a fresh handle on the same database file
    let restarted = spire_server_ca::CaManager::new(
        fx.config.clone(),
        fx.shared_clock(),
        spire_server_ca::Plugins {
            key_manager: Arc::new(DiskKeyManager::open(&keys).unwrap()),
            upstream_authority: None,
        },
        datastore,
    )
    .await
    .unwrap();
    let (slot, after) = restarted.current().await.unwrap();
    assert_eq!(slot, SlotId::A);
    assert_eq!(after.certificate(), before.certificate());
    assert_eq!(
        restarted.next().await.unwrap().1.certificate(),
        prepared.certificate()
    );
    assert_eq!(fx.bundle_roots().await.len(), 2, "no new CA was minted");
}

#[tokio::test]
async fn memory_key_manager_restart_mints_a_new_ca_and_keeps_the_old_root() {
    let fx = Fixture::new().await;
    let first = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, old) = first.current().await.unwrap();
    drop(first);

    fx.clock.advance(secs(60));
    let restarted = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, new) = restarted.current().await.unwrap();
    assert_ne!(new.certificate(), old.certificate());
    let roots = fx.bundle_roots().await;
    assert!(
        roots.contains(&old.certificate().to_vec()),
        "old root kept until it expires"
    );
    assert!(roots.contains(&new.certificate().to_vec()));
}

#[tokio::test]
async fn an_expired_ca_is_replaced_at_once() {
    let fx = Fixture::new().await;
    let keys = fx.dir.path().join("keys.json");
    let first = fx
        .manager(Arc::new(DiskKeyManager::open(&keys).unwrap()))
        .await;
    let (_, old) = first.current().await.unwrap();
    drop(first);

    // The server was down for longer than the CA lived.
    fx.clock.set(old.not_after() + secs(3600));
    let restarted = fx
        .manager(Arc::new(DiskKeyManager::open(&keys).unwrap()))
        .await;
    let (_, new) = restarted.current().await.unwrap();
    assert_ne!(new.authority_id(), old.authority_id());
    assert!(new.not_after() > fx.now());
}

#[tokio::test]
async fn the_bundle_listener_hears_every_publication_and_prune() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let heard = Arc::new(AtomicUsize::new(0));
    let counter = heard.clone();
    manager.on_bundle_change(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let (_, first) = manager.current().await.unwrap();

    manager.rotate().await.unwrap();
    assert_eq!(
        heard.load(Ordering::SeqCst),
        0,
        "nothing written, nothing heard"
    );

    // Half way (the JWT key's half comes 10 s after the backdated CA's): the next X.509
    // authority and the next JWT key are published.
    fx.clock
        .set(first.not_before() + (DAY + secs(10)) / 2 + secs(10));
    manager.rotate().await.unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 2);

    // Long after the first authority expired: it is pruned (and a new pair is published).
    let before = heard.load(Ordering::SeqCst);
    fx.clock.set(first.not_after() + DAY * 2);
    manager.rotate().await.unwrap();
    assert!(heard.load(Ordering::SeqCst) > before);
}

/// Rewrites a key file as SPIRE's key manager would hold it, with Python's `cryptography`
/// re-encoding every key (so the bytes read back are not ours). `false` (with the reason
/// printed) where Python or the package is missing, unless CI is set.
fn rewrite_as_spire(keys: &std::path::Path) -> bool {
    const SCRIPT: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import serialization as s
path = sys.argv[1]
ours = json.load(open(path))["keys"]
out = {}
for key_id, encoded in ours.items():
    key = s.load_der_private_key(base64.b64decode(encoded), None)
    der = key.private_bytes(s.Encoding.DER, s.PrivateFormat.PKCS8, s.NoEncryption())
    out[key_id] = base64.b64encode(der).decode()
open(path, "w").write(json.dumps({"keys": out}, indent="\t"))
"#;
    spire_test::python(SCRIPT, &[keys.as_os_str()]).is_some()
}

#[tokio::test]
async fn a_ca_key_held_in_spire_key_file_layout_is_resumed() {
    use spire_server_plugin::keymanager::KeyIds;

    let fx = Fixture::new().await;
    let keys = fx.dir.path().join("keys.json");
    let first = fx
        .manager(Arc::new(
            DiskKeyManager::open_for(&keys, KeyIds::Server).unwrap(),
        ))
        .await;
    let (_, before) = first.current().await.unwrap();
    drop(first);
    if !rewrite_as_spire(&keys) {
        return;
    }
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(text.contains("\t\"x509-CA-A\": \""), "{text}");

    let datastore = open_store(&fx.dir).await;
    let restarted = spire_server_ca::CaManager::new(
        fx.config.clone(),
        fx.shared_clock(),
        spire_server_ca::Plugins {
            key_manager: Arc::new(DiskKeyManager::open_for(&keys, KeyIds::Server).unwrap()),
            upstream_authority: None,
        },
        datastore,
    )
    .await
    .unwrap();
    let (slot, after) = restarted.current().await.unwrap();
    assert_eq!(slot, SlotId::A);
    assert_eq!(after.certificate(), before.certificate());
    assert_eq!(fx.bundle_roots().await.len(), 1, "no new CA was minted");
}
