use super::*;

#[tokio::test]
async fn disk_keys_live_in_keys_json_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let km = open_disk(dir.path().join("data")).unwrap();
    assert!(km.is_persistent());
    let path = dir.path().join("data/keys.json");
    assert_eq!(km.path(), path);
    let key = km
        .generate_key("agent-svid-A", spire_svid::KeyType::EcP256)
        .await
        .unwrap();
    assert!(path.exists());

    let reopened = open_disk(dir.path().join("data")).unwrap();
    let loaded = reopened.key("agent-svid-A").await.unwrap().unwrap();
    assert_eq!(loaded.public_key_der(), key.public_key_der());
}

#[test]
fn an_empty_directory_is_a_configuration_error() {
    let err = open_disk("").unwrap_err();
    assert!(matches!(err, crate::Error::Config(_)), "{err}");
    assert!(err.to_string().contains("directory is required"), "{err}");
}

#[tokio::test]
async fn the_agent_refuses_a_key_file_holding_server_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = DiskKeyManager::open_for(dir.path().join(KEYS_FILE), KeyIds::Server).unwrap();
    server
        .generate_key("x509-CA-A", spire_svid::KeyType::EcP256)
        .await
        .unwrap();
    let err = open_disk(dir.path()).unwrap_err().to_string();
    assert!(err.contains("keys.json"), "{err}");
    assert!(err.contains("unknown key ID \"x509-CA-A\""), "{err}");
    assert!(err.contains("agent-svid-A, agent-svid-B"), "{err}");
}
