use std::collections::BTreeMap;
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

// --- SPIRE's key file, generated independently (Python's `cryptography`) ---

/// Keys made by Python's `cryptography`, never by us: name -> (base64 PKCS#8 or other
/// encoding, base64 SubjectPublicKeyInfo). `None` (with the reason printed) where Python or
/// the package is missing, unless CI is set.
fn independent_keys() -> Option<BTreeMap<String, (String, String)>> {
    const SCRIPT: &str = r#"
import base64, json
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec, rsa, ed25519
b = lambda d: base64.b64encode(d).decode()
def pub(k):
    return b(k.public_key().public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo))
def der(k, fmt):
    return b(k.private_bytes(s.Encoding.DER, fmt, s.NoEncryption()))
P8 = s.PrivateFormat.PKCS8
keys = {
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "rsa2048": rsa.generate_private_key(65537, 2048),
    "rsa3072": rsa.generate_private_key(65537, 3072),
    "rsa4096": rsa.generate_private_key(65537, 4096),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}
out = {name: [der(k, P8), pub(k)] for name, k in keys.items()}
out["rsa2048-pkcs1"] = [der(keys["rsa2048"], s.PrivateFormat.TraditionalOpenSSL), pub(keys["rsa2048"])]
out["p256-sec1"] = [der(keys["p256"], s.PrivateFormat.TraditionalOpenSSL), pub(keys["p256"])]
print(json.dumps(out))
"#;
    let stdout = spire_test::python(SCRIPT, &[])?;
    Some(serde_json::from_slice(&stdout).unwrap())
}

fn b64(s: &str) -> Vec<u8> {
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).unwrap()
}

/// Writes `doc` as SPIRE does (Go's indented JSON, tabs), mode 0600.
fn write_spire_file(path: &Path, doc: &serde_json::Value) {
    let mut text = String::new();
    // serde_json cannot indent with tabs; the layout does not matter to a JSON reader but
    // SPIRE's own files look like this.
    let pretty = serde_json::to_string_pretty(doc).unwrap();
    for line in pretty.lines() {
        let spaces = line.len() - line.trim_start().len();
        text.push_str(&"\t".repeat(spaces / 2));
        text.push_str(line.trim_start());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn a_spire_server_key_file_is_read_and_written_back_in_spire_layout() {
    let Some(k) = independent_keys() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_spire_file(
        &path,
        &serde_json::json!({"keys": {
            "x509-CA-A": k["p256"].0,
            "x509-CA-B": k["p384"].0,
            "JWT-Signer-A": k["rsa2048"].0,
            "JWT-Signer-B": k["rsa4096"].0,
            "WIT-Signer-A": k["p256"].0,
        }}),
    );
    let km = DiskKeyManager::open_for(&path, KeyIds::Server).unwrap();
    for (id, name, key_type) in [
        ("x509-CA-A", "p256", KeyType::EcP256),
        ("x509-CA-B", "p384", KeyType::EcP384),
        ("JWT-Signer-A", "rsa2048", KeyType::Rsa2048),
        ("JWT-Signer-B", "rsa4096", KeyType::Rsa4096),
    ] {
        let key = km.key(id).await.unwrap().unwrap();
        assert_eq!(key.id(), id);
        assert_eq!(key.key_type(), key_type, "{id}");
        assert_eq!(key.public_key_der(), b64(&k[name].1), "{id}");
        // The private half signs: a CSR it signs verifies against Python's public key.
        let csr = key.csr_der().unwrap();
        assert_eq!(
            spire_svid::verify_csr(&csr).unwrap(),
            b64(&k[name].1),
            "{id}"
        );
    }

    // A rotation rewrites the file in SPIRE's layout; the other keys are byte-for-byte the
    // ones SPIRE wrote, so SPIRE can take the file back.
    let new_b = km.generate_key("x509-CA-B", KeyType::EcP256).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let keys = written["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 5);
    assert_eq!(
        keys["WIT-Signer-A"],
        k["p256"].0.as_str(),
        "kept, though unused"
    );
    assert_eq!(keys["x509-CA-A"], k["p256"].0.as_str());
    assert_eq!(keys["JWT-Signer-A"], k["rsa2048"].0.as_str());
    assert_eq!(keys["JWT-Signer-B"], k["rsa4096"].0.as_str());
    assert_eq!(
        b64(keys["x509-CA-B"].as_str().unwrap()),
        new_b.pkcs8_der(),
        "a plain base64 PKCS#8 string"
    );
    let reopened = DiskKeyManager::open_for(&path, KeyIds::Server).unwrap();
    let b = reopened.key("x509-CA-B").await.unwrap().unwrap();
    assert_eq!(b.public_key_der(), new_b.public_key_der());
}

#[tokio::test]
async fn a_spire_agent_key_file_and_spire_key_records_are_read() {
    let Some(k) = independent_keys() else { return };
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent-keys.json");
    write_spire_file(
        &agent,
        &serde_json::json!({"keys": {"agent-svid-B": k["p256"].0}}),
    );
    let km = DiskKeyManager::open_for(&agent, KeyIds::Agent).unwrap();
    let key = km.key("agent-svid-B").await.unwrap().unwrap();
    assert_eq!(key.public_key_der(), b64(&k["p256"].1));
    assert!(km.key("agent-svid-A").await.unwrap().is_none());

    // Newer SPIRE servers store a record per key; without shared keys the record's ID is
    // the key's.
    let server = dir.path().join("server-keys.json");
    write_spire_file(
        &server,
        &serde_json::json!({"keys": {"x509-CA-A": {
            "id": "x509-CA-A",
            "private_key": k["p384"].0,
            "created_at": "2026-01-02T03:04:05Z",
        }}}),
    );
    let km = DiskKeyManager::open_for(&server, KeyIds::Server).unwrap();
    let key = km.key("x509-CA-A").await.unwrap().unwrap();
    assert_eq!(key.key_type(), KeyType::EcP384);
    assert_eq!(key.public_key_der(), b64(&k["p384"].1));
}

#[tokio::test]
async fn our_earlier_key_file_layout_is_still_read() {
    let Some(k) = independent_keys() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let doc = serde_json::json!({"keys": [
        {"id": "agent-svid-A", "type": "ec-p256", "pkcs8": k["p256"].0},
    ]});
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let km = DiskKeyManager::open_for(&path, KeyIds::Agent).unwrap();
    let key = km.key("agent-svid-A").await.unwrap().unwrap();
    assert_eq!(key.public_key_der(), b64(&k["p256"].1));
}

#[test]
fn bad_key_files_are_refused_naming_the_file_and_the_key() {
    let Some(k) = independent_keys() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = |id: &str, value: serde_json::Value| serde_json::json!({"keys": {id: value}});
    let cases: Vec<(&str, serde_json::Value, KeyIds, &str, &str)> = vec![
        (
            "bad base64",
            server("x509-CA-A", "not base64!".into()),
            KeyIds::Server,
            "\"x509-CA-A\"",
            "invalid base64",
        ),
        (
            "PKCS#1",
            server("x509-CA-A", k["rsa2048-pkcs1"].0.clone().into()),
            KeyIds::Server,
            "\"x509-CA-A\"",
            "not a PKCS#8 private key",
        ),
        (
            "SEC1",
            server("JWT-Signer-B", k["p256-sec1"].0.clone().into()),
            KeyIds::Server,
            "\"JWT-Signer-B\"",
            "not a PKCS#8 private key",
        ),
        (
            "P-521",
            server("x509-CA-B", k["p521"].0.clone().into()),
            KeyIds::Server,
            "\"x509-CA-B\"",
            "unsupported key type: EC key on curve 1.3.132.0.35",
        ),
        (
            "RSA 3072",
            server("JWT-Signer-A", k["rsa3072"].0.clone().into()),
            KeyIds::Server,
            "\"JWT-Signer-A\"",
            "unsupported key type: RSA 3072-bit key",
        ),
        (
            "Ed25519",
            server("x509-CA-A", k["ed25519"].0.clone().into()),
            KeyIds::Server,
            "\"x509-CA-A\"",
            "unsupported key type: key algorithm 1.3.101.112",
        ),
        (
            "unknown ID",
            server("x509-CA-C", k["p256"].0.clone().into()),
            KeyIds::Server,
            "\"x509-CA-C\"",
            "unknown key ID \"x509-CA-C\"; a server key file holds x509-CA-A, x509-CA-B, JWT-Signer-A, JWT-Signer-B, WIT-Signer-A, WIT-Signer-B",
        ),
        (
            "server key in the agent's file",
            server("x509-CA-A", k["p256"].0.clone().into()),
            KeyIds::Agent,
            "\"x509-CA-A\"",
            "an agent key file holds agent-svid-A, agent-svid-B",
        ),
        (
            "not a string",
            server("x509-CA-A", 42.into()),
            KeyIds::Server,
            "\"x509-CA-A\"",
            "expected a base64 string or a key record",
        ),
        (
            "record without a key",
            server("x509-CA-A", serde_json::json!({"id": "x509-CA-A"})),
            KeyIds::Server,
            "\"x509-CA-A\"",
            "record has no \"private_key\"",
        ),
        (
            "another server's record",
            server(
                "3f0c/x509-CA-A",
                serde_json::json!({"id": "x509-CA-A", "private_key": k["p256"].0, "server_id": "3f0c"}),
            ),
            KeyIds::Server,
            "\"3f0c/x509-CA-A\"",
            "shared_keys",
        ),
        (
            "declared type disagrees",
            serde_json::json!({"keys": [{"id": "x509-CA-A", "type": "ec-p384", "pkcs8": k["p256"].0}]}),
            KeyIds::Server,
            "\"x509-CA-A\"",
            "stored as ec-p384 but the key is ec-p256",
        ),
        (
            "no keys",
            serde_json::json!({"key": {}}),
            KeyIds::Server,
            "is not a key file",
            "expected an object with \"keys\"",
        ),
        (
            "keys of the wrong kind",
            serde_json::json!({"keys": "x"}),
            KeyIds::Server,
            "is not a key file",
            "neither an object nor a list",
        ),
    ];
    for (i, (what, doc, ids, names, message)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("keys-{i}.json"));
        let bytes = serde_json::to_vec(&doc).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let err = DiskKeyManager::open_for(&path, ids)
            .unwrap_err()
            .to_string();
        assert!(matches!(
            DiskKeyManager::open_for(&path, ids),
            Err(Error::Config(_))
        ));
        assert!(err.contains(&path.display().to_string()), "{what}: {err}");
        assert!(err.contains(names), "{what}: {err}");
        assert!(err.contains(message), "{what}: {err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: left as found"
        );
    }
}

#[tokio::test]
async fn a_restricted_key_manager_generates_only_its_own_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let km = DiskKeyManager::open_for(&path, KeyIds::Agent).unwrap();
    let err = km
        .generate_key("x509-CA-A", KeyType::EcP256)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key ID \"x509-CA-A\""), "{err}");
    assert!(!path.exists());
    for id in AGENT_KEY_IDS {
        km.generate_key(id, KeyType::EcP256).await.unwrap();
    }
    let server = DiskKeyManager::open_for(dir.path().join("s.json"), KeyIds::Server).unwrap();
    for id in SERVER_KEY_IDS {
        server.generate_key(id, KeyType::EcP256).await.unwrap();
    }
}
