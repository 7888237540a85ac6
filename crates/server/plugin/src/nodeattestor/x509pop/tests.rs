#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature as sig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType, SignatureAlgorithm,
};

use super::*;

const TD: &str = "example.org";

struct Pki {
    root: Vec<u8>,
    leaf: Vec<u8>,
    intermediate: Option<Vec<u8>>,
    leaf_key: KeyPair,
}

fn ca(cn: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.der().to_vec(), Issuer::new(params, key))
}

fn pki(alg: &'static SignatureAlgorithm, with_intermediate: bool) -> Pki {
    let (root, root_issuer) = ca("root");
    let (intermediate, issuer) = if with_intermediate {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.signed_by(&key, &root_issuer).unwrap();
        (Some(cert.der().to_vec()), Issuer::new(params, key))
    } else {
        (None, root_issuer)
    };
    let leaf_key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "node-1");
    params.subject_alt_names = vec![SanType::URI(
        "x509pop://example.org/datacenter/us-east-1"
            .try_into()
            .unwrap(),
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(vec![0x0a, 0xbc].into());
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap().der().to_vec();
    Pki {
        root,
        leaf,
        intermediate,
        leaf_key,
    }
}

fn attestor(roots: Vec<Vec<u8>>) -> X509PopAttestor {
    X509PopAttestor::from_roots(
        roots,
        TrustDomain::new(TD).unwrap(),
        Arc::new(spire_time::SystemClock), // rcgen's default validity is around now
    )
    .unwrap()
}

fn payload(pki: &Pki) -> Vec<u8> {
    let mut certs = vec![B64.encode(&pki.leaf)];
    certs.extend(pki.intermediate.iter().map(|c| B64.encode(c)));
    serde_json::to_vec(&serde_json::json!({ "certificates": certs })).unwrap()
}

/// Answers like a SPIRE agent with the leaf key (optionally corrupting the signature).
struct Agent {
    pkcs8: Vec<u8>,
    corrupt: bool,
}

#[async_trait]
impl Challenger for Agent {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>> {
        let challenge: serde_json::Value = serde_json::from_slice(&challenge).unwrap();
        let response_nonce = [7u8; 32];
        let rng = SystemRandom::new();
        let body = if let Some(ec) = challenge.get("ecdsa_signature") {
            let nonce = B64.decode(ec["nonce"].as_str().unwrap()).unwrap();
            let message = [nonce.as_slice(), &response_nonce].concat();
            let key =
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8)
                    .unwrap();
            let mut rs = key.sign(&rng, &message).unwrap().as_ref().to_vec();
            if self.corrupt {
                rs[5] ^= 1;
            }
            serde_json::json!({"ecdsa_signature": {
                "nonce": B64.encode(response_nonce), "r": B64.encode(&rs[..32]), "s": B64.encode(&rs[32..])}})
        } else {
            let nonce = B64
                .decode(challenge["rsa_signature"]["nonce"].as_str().unwrap())
                .unwrap();
            let message = [nonce.as_slice(), &response_nonce].concat();
            let key = sig::RsaKeyPair::from_pkcs8(&self.pkcs8).unwrap();
            let mut signature = vec![0; key.public_modulus_len()];
            key.sign(&sig::RSA_PSS_SHA256, &rng, &message, &mut signature)
                .unwrap();
            if self.corrupt {
                signature[5] ^= 1;
            }
            serde_json::json!({"rsa_signature": {
                "nonce": B64.encode(response_nonce), "signature": B64.encode(&signature)}})
        };
        Ok(serde_json::to_vec(&body).unwrap())
    }
}

fn agent(pki: &Pki, corrupt: bool) -> Agent {
    Agent {
        pkcs8: pki.leaf_key.serialize_der(),
        corrupt,
    }
}

fn code_and_message(err: Error) -> (AttestCode, String) {
    match err {
        Error::Attestation { code, message } => (code, message),
        other => panic!("not an attestation error: {other}"),
    }
}

#[tokio::test]
async fn ec_p256_chain_with_intermediate_attests_with_exact_selectors() {
    let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let result = attestor(vec![pki.root.clone()])
        .attest(payload(&pki), &mut agent(&pki, false))
        .await
        .unwrap();
    assert_eq!(
        result.agent_id.to_string(),
        format!("spiffe://{TD}/spire/agent/x509pop/{}", sha1_hex(&pki.leaf))
    );
    assert!(result.can_reattest);
    let selectors: Vec<String> = result
        .selectors
        .iter()
        .map(|s| format!("{}:{}", s.selector_type(), s.value()))
        .collect();
    assert_eq!(
        selectors,
        [
            "x509pop:subject:cn:node-1".to_owned(),
            format!(
                "x509pop:ca:fingerprint:{}",
                sha1_hex(pki.intermediate.as_ref().unwrap())
            ),
            "x509pop:serialnumber:0abc".to_owned(),
            "x509pop:san:datacenter:us-east-1".to_owned(),
        ]
    );
}

#[tokio::test]
async fn rsa_leaf_attests_with_pss() {
    let pki = pki(&rcgen::PKCS_RSA_SHA256, false);
    let result = attestor(vec![pki.root.clone()])
        .attest(payload(&pki), &mut agent(&pki, false))
        .await
        .unwrap();
    assert!(result.agent_id.path().starts_with("/spire/agent/x509pop/"));
}

#[tokio::test]
async fn wrong_signature_is_refused() {
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_RSA_SHA256] {
        let pki = pki(alg, false);
        let err = attestor(vec![pki.root.clone()])
            .attest(payload(&pki), &mut agent(&pki, true))
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(err),
            (
                AttestCode::PermissionDenied,
                "nodeattestor(x509pop): challenge response verification failed".to_owned()
            )
        );
    }
}

#[tokio::test]
async fn wrong_ca_is_refused_before_any_challenge() {
    let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let (other_root, _) = ca("other");
    let err = attestor(vec![other_root])
        .attest(payload(&pki), &mut agent(&pki, false))
        .await
        .unwrap_err();
    let (code, message) = code_and_message(err);
    assert_eq!(code, AttestCode::PermissionDenied);
    assert!(
        message.starts_with("nodeattestor(x509pop): certificate verification failed"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_payloads_are_invalid_arguments() {
    let pki = pki(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let a = attestor(vec![pki.root.clone()]);
    let too_many =
        serde_json::to_vec(&serde_json::json!({"certificates": vec![B64.encode(&pki.leaf); 6]}))
            .unwrap();
    for bad in [
        b"not json".to_vec(),
        br#"{"certificates":[]}"#.to_vec(),
        too_many,
    ] {
        let err = a.attest(bad, &mut agent(&pki, false)).await.unwrap_err();
        assert_eq!(code_and_message(err).0, AttestCode::InvalidArgument);
    }
}

#[test]
fn ecdsa_der_encodes_minimal_integers() {
    assert_eq!(
        ecdsa_der(&[0, 1], &[0x80]).unwrap(),
        [0x30, 7, 2, 1, 1, 2, 2, 0, 0x80]
    );
    assert!(ecdsa_der(&[], &[1]).is_none());
    assert!(ecdsa_der(&[1; 67], &[1]).is_none());
}
