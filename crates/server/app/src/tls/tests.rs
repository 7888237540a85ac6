#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::ServerName;
use spire_time::{ManualClock, from_unix_seconds};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// 2026-01-01T00:00:00Z: the client SVID is valid for one hour from here.
const ISSUED: i64 = 1_767_225_600;

/// A root, a client X509-SVID under it (valid for one hour from [`ISSUED`]), and a server
/// SVID under it.
struct Pki {
    root: Vec<u8>,
    client: (Vec<Vec<u8>>, Vec<u8>),
    server: (Vec<Vec<u8>>, Vec<u8>),
}

fn leaf(
    uri: &str,
    lifetime: Duration,
    issuer: &rcgen::Issuer<'_, KeyPair>,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2026, 1, 1) + lifetime;
    let cert = params.signed_by(&key, issuer).unwrap();
    (vec![cert.der().to_vec()], key.serialize_der())
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = rcgen::date_time_ymd(2026, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let root = ca.self_signed(&ca_key).unwrap().der().to_vec();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    Pki {
        root,
        client: leaf(
            "spiffe://example.org/spire/agent/join_token/t",
            Duration::from_secs(3600),
            &issuer,
        ),
        server: leaf(
            "spiffe://example.org/spire/server",
            Duration::from_secs(86_400),
            &issuer,
        ),
    }
}

/// The client side does not judge the server here; only the server's verdict matters.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One handshake against `server` by a client presenting the client SVID; the server's
/// outcome.
async fn handshake(server: Arc<ServerConfig>, pki: &Pki) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let provider = Arc::new(aws_lc_rs::default_provider());
    let (chain, key) = pki.client.clone();
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    let connect = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        // The client's own result does not matter (TLS 1.3 clients finish first).
        let _ = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("spire-server").unwrap(), tcp)
            .await;
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let outcome = tokio_rustls::TlsAcceptor::from(server)
        .accept(tcp)
        .await
        .map(drop)
        .map_err(|e| e.to_string());
    connect.await.unwrap();
    outcome
}

#[tokio::test]
async fn client_certificate_time_comes_from_the_injected_clock() {
    let pki = pki();
    let clock = ManualClock::new(from_unix_seconds(ISSUED + 600));
    let (chain, key) = pki.server.clone();
    let config = Arc::new(
        server_config(
            Arc::new(SvidResolver::new(chain, key).unwrap()),
            Arc::new(BundleVerifier::new(std::slice::from_ref(&pki.root)).unwrap()),
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );

    handshake(config.clone(), &pki).await.unwrap();

    // Two hours later by the manual clock (no real time passes), the client SVID expired.
    clock.advance(Duration::from_secs(7200));
    let err = handshake(config, &pki).await.unwrap_err();
    assert!(err.to_lowercase().contains("expired"), "{err}");
}
