use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rcgen::SigningKey as _;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn disk_keys_survive_a_restart_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/keys.json");
    let first = DiskKeyManager::open(&path).unwrap();
    assert_eq!(first.name(), "disk");
    assert!(first.is_persistent());
    assert_eq!(first.path(), path);
    assert!(first.key("x509-CA-A").await.unwrap().is_none());
    assert!(!path.exists(), "opening alone writes nothing");
    let a = first
        .generate_key("x509-CA-A", KeyType::EcP256)
        .await
        .unwrap();
    let b = first
        .generate_key("x509-CA-B", KeyType::EcP384)
        .await
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    drop(first);

    let second = DiskKeyManager::open(&path).unwrap();
    let a2 = second.key("x509-CA-A").await.unwrap().unwrap();
    let b2 = second.key("x509-CA-B").await.unwrap().unwrap();
    assert_eq!(a2.public_key_der(), a.public_key_der());
    assert_eq!(a2.key_type(), KeyType::EcP256);
    assert_eq!(b2.public_key_der(), b.public_key_der());
    assert_eq!(b2.key_type(), KeyType::EcP384);
    assert_eq!(b2.id(), "x509-CA-B");
    assert!(second.key("JWT-Signer-A").await.unwrap().is_none());
}

#[tokio::test]
async fn disk_generating_replaces_the_stored_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let km = DiskKeyManager::open(&path).unwrap();
    let old = km.generate_key("k", KeyType::EcP256).await.unwrap();
    let new = km.generate_key("k", KeyType::EcP256).await.unwrap();
    assert_ne!(old.public_key_der(), new.public_key_der());
    let reloaded = DiskKeyManager::open(&path).unwrap();
    let stored = reloaded.key("k").await.unwrap().unwrap();
    assert_eq!(stored.public_key_der(), new.public_key_der());
}

#[tokio::test]
async fn a_loosened_key_file_is_tightened_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    DiskKeyManager::open(&path)
        .unwrap()
        .generate_key("k", KeyType::EcP256)
        .await
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let reopened = DiskKeyManager::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(reopened.key("k").await.unwrap().is_some());
}

#[test]
fn a_corrupt_key_file_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(&path, b"{not json").unwrap();
    let err = DiskKeyManager::open(&path).unwrap_err();
    assert!(err.to_string().contains("is not a key file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{not json", "left as found");
}

#[test]
fn an_empty_key_path_is_a_configuration_error() {
    let err = DiskKeyManager::open("").unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn a_key_that_cannot_be_stored_is_not_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let km = DiskKeyManager::open(dir.path().join("keys.json")).unwrap();
    // A directory where the temporary file goes: no write can succeed (even as root).
    std::fs::create_dir(dir.path().join("keys.json.tmp")).unwrap();
    assert!(km.generate_key("k", KeyType::EcP256).await.is_err());
    assert!(km.key("k").await.unwrap().is_none());
    assert!(!dir.path().join("keys.json").exists());
}

#[tokio::test]
async fn memory_keys_replace_on_regenerate_and_are_forgotten() {
    let km = MemoryKeyManager::new();
    assert_eq!(km.name(), "memory");
    assert!(!km.is_persistent());
    let first = km.generate_key("x509-CA-A", KeyType::EcP256).await.unwrap();
    let second = km.generate_key("x509-CA-A", KeyType::EcP256).await.unwrap();
    assert_ne!(first.public_key_der(), second.public_key_der());
    let current = km.key("x509-CA-A").await.unwrap().unwrap();
    assert_eq!(current.public_key_der(), second.public_key_der());
    assert!(
        MemoryKeyManager::new()
            .key("x509-CA-A")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn every_key_type_generates_and_reloads() {
    for key_type in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048] {
        let key = Key::generate("k", key_type).unwrap();
        let again = Key::from_pkcs8("k", key_type, key.pkcs8_der()).unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der(), "{key_type}");
        assert!(!key.sign(b"payload").unwrap().is_empty());
    }
}

#[test]
fn csr_carries_the_key_and_no_names() {
    let key = Key::generate("k", KeyType::EcP256).unwrap();
    let csr = key.csr_der().unwrap();
    let spki = spire_svid::verify_csr(&csr).unwrap();
    assert_eq!(spki, key.public_key_der());
}

#[test]
fn atomic_writes_are_private_even_over_a_loose_leftover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    // A temporary file left by a crash, with a loose mode: `open` alone would keep it.
    let leftover = dir.path().join("state.json.tmp");
    std::fs::write(&leftover, b"stale").unwrap();
    std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o666)).unwrap();
    private_file::write_atomically(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    assert_eq!(mode(&path), 0o600);
    assert!(!leftover.exists(), "renamed into place");
}
