use aws_lc_rs::signature::{self, UnparsedPublicKey};
use serde_json::Value;

use super::*;

struct Files {
    _dir: tempfile::TempDir,
    config: X509PopConfig,
    spki_bits: Vec<u8>,
    leaf_der: Vec<u8>,
}

fn write_files(key: rcgen::KeyPair) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "node-1");
    let cert = params.self_signed(&key).unwrap();
    let config = X509PopConfig {
        private_key_path: dir.path().join("key.pem"),
        certificate_path: dir.path().join("cert.pem"),
        intermediates_path: None,
    };
    fs::write(&config.private_key_path, key.serialize_pem()).unwrap();
    fs::write(&config.certificate_path, cert.pem()).unwrap();
    let leaf_der = cert.der().to_vec();
    let (_, parsed) = X509Certificate::from_der(&leaf_der).unwrap();
    let spki_bits = parsed.public_key().subject_public_key.data.to_vec();
    Files {
        _dir: dir,
        config,
        spki_bits,
        leaf_der,
    }
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn payload_lists_the_chain_as_base64_der() {
    let files = write_files(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
    let attestor = X509PopAttestor::new(files.config.clone()).unwrap();
    assert_eq!(attestor.name(), "x509pop");
    let payload: Value = serde_json::from_slice(&attestor.payload().await.unwrap()).unwrap();
    let certs = payload["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(b64(&certs[0]), files.leaf_der);
}

#[tokio::test]
async fn ecdsa_response_verifies_over_both_nonces() {
    let files = write_files(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
    let attestor = X509PopAttestor::new(files.config.clone()).unwrap();
    let challenge_nonce = [7u8; 32];
    let challenge =
        serde_json::json!({"ecdsa_signature": {"nonce": STANDARD.encode(challenge_nonce)}});
    let response = attestor
        .challenge_response(challenge.to_string().as_bytes())
        .await
        .unwrap();
    let response: Value = serde_json::from_slice(&response).unwrap();
    let sig = &response["ecdsa_signature"];
    let nonce = b64(&sig["nonce"]);
    assert_eq!(nonce.len(), 32);
    // Rebuild the fixed-width signature from Go-style minimal big-endian integers.
    let pad = |v: Vec<u8>| {
        let mut out = vec![0u8; 32 - v.len()];
        out.extend(v);
        out
    };
    let mut fixed = pad(b64(&sig["r"]));
    fixed.extend(pad(b64(&sig["s"])));
    let mut message = challenge_nonce.to_vec();
    message.extend(&nonce);
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &files.spki_bits)
        .verify(&message, &fixed)
        .unwrap();
    // A signature over the challenge nonce alone does not verify.
    assert!(
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &files.spki_bits)
            .verify(&challenge_nonce, &fixed)
            .is_err()
    );
}

#[tokio::test]
async fn rsa_response_is_pss_sha256() {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let files = write_files(key);
    let attestor = X509PopAttestor::new(files.config.clone()).unwrap();
    let challenge_nonce = [9u8; 32];
    let challenge =
        serde_json::json!({"rsa_signature": {"nonce": STANDARD.encode(challenge_nonce)}});
    let response = attestor
        .challenge_response(challenge.to_string().as_bytes())
        .await
        .unwrap();
    let response: Value = serde_json::from_slice(&response).unwrap();
    let sig = &response["rsa_signature"];
    let mut message = challenge_nonce.to_vec();
    message.extend(b64(&sig["nonce"]));
    UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, &files.spki_bits)
        .verify(&message, &b64(&sig["signature"]))
        .unwrap();
}

#[tokio::test]
async fn bad_challenges_are_refused() {
    let files = write_files(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
    let attestor = X509PopAttestor::new(files.config.clone()).unwrap();
    let short = serde_json::json!({"ecdsa_signature": {"nonce": STANDARD.encode([1u8; 16])}});
    let err = attestor
        .challenge_response(short.to_string().as_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid challenge nonce");
    let wrong_type = serde_json::json!({"rsa_signature": {"nonce": STANDARD.encode([1u8; 32])}});
    assert!(
        attestor
            .challenge_response(wrong_type.to_string().as_bytes())
            .await
            .is_err()
    );
    assert!(attestor.challenge_response(b"not json").await.is_err());
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_a_config_error() {
    let files = write_files(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    fs::write(&files.config.private_key_path, other.serialize_pem()).unwrap();
    let err = X509PopAttestor::new(files.config.clone()).unwrap_err();
    assert!(err.to_string().contains("does not hold the key"), "{err}");
}
