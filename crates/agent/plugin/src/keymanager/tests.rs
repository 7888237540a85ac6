use std::os::unix::fs::PermissionsExt as _;

use super::*;

#[tokio::test]
async fn disk_keys_survive_a_reopen_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let km = DiskKeyManager::open(dir.path()).unwrap();
    assert!(km.is_persistent());
    assert!(km.key("agent-svid-A").await.unwrap().is_none());
    let key = km
        .generate_key("agent-svid-A", KeyType::EcP256)
        .await
        .unwrap();
    let path = dir.path().join("keys.json");
    assert_eq!(km.path(), path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let reopened = DiskKeyManager::open(dir.path()).unwrap();
    let loaded = reopened.key("agent-svid-A").await.unwrap().unwrap();
    assert_eq!(loaded.public_key_der(), key.public_key_der());
    assert_eq!(loaded.key_type(), KeyType::EcP256);
}

#[tokio::test]
async fn a_loosened_key_file_is_tightened_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let km = DiskKeyManager::open(dir.path()).unwrap();
    km.generate_key("k", KeyType::EcP256).await.unwrap();
    let path = dir.path().join("keys.json");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    DiskKeyManager::open(dir.path()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn generating_replaces_and_memory_forgets() {
    let km = MemoryKeyManager::new();
    assert!(!km.is_persistent());
    let a = km.generate_key("k", KeyType::EcP256).await.unwrap();
    let b = km.generate_key("k", KeyType::EcP256).await.unwrap();
    assert_ne!(a.public_key_der(), b.public_key_der());
    assert_eq!(
        km.key("k").await.unwrap().unwrap().public_key_der(),
        b.public_key_der()
    );
    assert!(MemoryKeyManager::new().key("k").await.unwrap().is_none());
}

#[test]
fn csr_carries_the_key_and_no_names() {
    let key = Key::generate("k", KeyType::EcP256).unwrap();
    let csr = key.csr_der().unwrap();
    let spki = spire_svid::verify_csr(&csr).unwrap();
    assert_eq!(spki, key.public_key_der());
}

#[test]
fn a_corrupt_key_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), b"{not json").unwrap();
    assert!(DiskKeyManager::open(dir.path()).is_err());
}
