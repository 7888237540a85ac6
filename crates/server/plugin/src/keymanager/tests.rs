use std::os::unix::fs::PermissionsExt as _;

use super::*;

#[tokio::test]
async fn disk_keys_survive_a_restart_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/keys.json");
    let first = DiskKeyManager::open(&path).unwrap();
    let a = first
        .generate_key("x509-CA-A", KeyType::EcP256)
        .await
        .unwrap();
    let b = first
        .generate_key("x509-CA-B", KeyType::EcP384)
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(first);

    let second = DiskKeyManager::open(&path).unwrap();
    let a2 = second.key("x509-CA-A").await.unwrap().unwrap();
    let b2 = second.key("x509-CA-B").await.unwrap().unwrap();
    assert_eq!(a2.public_key_der(), a.public_key_der());
    assert_eq!(b2.public_key_der(), b.public_key_der());
    assert_eq!(b2.key_type(), KeyType::EcP384);
    assert!(second.key("JWT-Signer-A").await.unwrap().is_none());
}

#[tokio::test]
async fn disk_key_file_is_tightened_when_loosened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    DiskKeyManager::open(&path)
        .unwrap()
        .generate_key("k", KeyType::EcP256)
        .await
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    DiskKeyManager::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn a_corrupt_key_file_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(&path, b"{not json").unwrap();
    let err = DiskKeyManager::open(&path).unwrap_err();
    assert!(err.to_string().contains("is not a key file"), "{err}");
}

#[tokio::test]
async fn memory_keys_replace_on_regenerate() {
    let km = MemoryKeyManager::new();
    let first = km.generate_key("x509-CA-A", KeyType::EcP256).await.unwrap();
    let second = km.generate_key("x509-CA-A", KeyType::EcP256).await.unwrap();
    assert_ne!(first.public_key_der(), second.public_key_der());
    let current = km.key("x509-CA-A").await.unwrap().unwrap();
    assert_eq!(current.public_key_der(), second.public_key_der());
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
