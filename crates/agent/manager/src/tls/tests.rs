#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use spire_time::{ManualClock, from_unix_seconds};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

struct Pki {
    root: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
}

/// A CA valid 2026-01-01..2027-01-01 and a server leaf carrying `uri`.
fn pki(uri: &str) -> Pki {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    ca.not_after = time::OffsetDateTime::from_unix_timestamp(1_798_761_600).unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    leaf.not_before = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    leaf.not_after = time::OffsetDateTime::from_unix_timestamp(1_767_229_200).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        root: ca_cert.der().to_vec(),
        chain: vec![leaf_cert.der().to_vec()],
        key: leaf_key.serialize_der(),
    }
}

/// Starts a one-connection TLS echo server presenting `pki`; returns its address.
async fn tls_server(pki: &Pki) -> String {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone()));
    let certs = pki
        .chain
        .iter()
        .cloned()
        .map(CertificateDer::from)
        .collect();
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let mut b = [0u8; 1];
            if tls.read_exact(&mut b).await.is_ok() {
                let _ = tls.write_all(&b).await;
            }
        }
    });
    addr
}

async fn handshake(pki: &Pki, verifier: ServerVerifier, now: SystemTime) -> Result<(), String> {
    let addr = tls_server(pki).await;
    let clock: SharedClock = Arc::new(ManualClock::new(now));
    let config = client_config(Arc::new(verifier), None, clock).unwrap();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("spire-server").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"x").await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Ok(())
}

fn server_id() -> SpiffeId {
    SpiffeId::parse("spiffe://example.org/spire/server").unwrap()
}

const VALID: i64 = 1_767_227_000;

#[tokio::test]
async fn server_chaining_to_the_bundle_with_the_server_id_is_accepted() {
    let pki = pki("spiffe://example.org/spire/server");
    let verifier = ServerVerifier::new(server_id(), Some(std::slice::from_ref(&pki.root))).unwrap();
    handshake(&pki, verifier, from_unix_seconds(VALID))
        .await
        .unwrap();
}

#[tokio::test]
async fn certificate_time_comes_from_the_injected_clock() {
    let pki = pki("spiffe://example.org/spire/server");
    let verifier = ServerVerifier::new(server_id(), Some(std::slice::from_ref(&pki.root))).unwrap();
    // Two hours later by the manual clock, the leaf has expired.
    let err = handshake(&pki, verifier, from_unix_seconds(VALID + 7200))
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("expired"), "{err}");
}

#[tokio::test]
async fn wrong_id_or_foreign_root_is_refused() {
    let pki_wrong = pki("spiffe://example.org/not-the-server");
    let verifier =
        ServerVerifier::new(server_id(), Some(std::slice::from_ref(&pki_wrong.root))).unwrap();
    assert!(
        handshake(&pki_wrong, verifier, from_unix_seconds(VALID))
            .await
            .is_err()
    );

    let pki_ok = pki("spiffe://example.org/spire/server");
    let other = pki("spiffe://example.org/spire/server");
    let verifier =
        ServerVerifier::new(server_id(), Some(std::slice::from_ref(&other.root))).unwrap();
    assert!(
        handshake(&pki_ok, verifier, from_unix_seconds(VALID))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn insecure_bootstrap_skips_the_chain_but_not_the_id() {
    let pki_ok = pki("spiffe://example.org/spire/server");
    let verifier = ServerVerifier::new(server_id(), None).unwrap();
    handshake(&pki_ok, verifier, from_unix_seconds(VALID))
        .await
        .unwrap();

    let pki_wrong = pki("spiffe://example.org/other");
    let verifier = ServerVerifier::new(server_id(), None).unwrap();
    assert!(
        handshake(&pki_wrong, verifier, from_unix_seconds(VALID))
            .await
            .is_err()
    );
}
