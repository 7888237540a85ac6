//! Shared by the federation tests: certificates minted with rcgen (SPIRE-shaped CAs and
//! SVIDs, Web PKI leaves), bundles, a TLS client that records the server's certificate, a
//! frozen tokio clock, and process RSS.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test-only helpers

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use spire_id::{SpiffeId, TrustDomain};
use spire_svid::{Bundle, X509Authority, X509Svid};

/// A CA that can sign SVIDs and Web PKI leaves.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub der: Vec<u8>,
}

/// A Web PKI certificate chain and key in PEM.
pub struct WebCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub leaf_der: Vec<u8>,
}

impl Ca {
    /// A self-signed CA as SPIRE makes them: URI SAN `spiffe://<td>` (or none when `td` is
    /// `None`, like a private Web CA).
    pub fn new(td: Option<&str>) -> Self {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "SPIFFE");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        if let Some(td) = td {
            params.subject_alt_names = vec![uri(&format!("spiffe://{td}"))];
        }
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Self { params, key, der }
    }

    /// An X509-SVID for `id`, shaped like SPIRE's server SVID.
    pub fn svid(&self, id: &str) -> X509Svid {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "SPIRE");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = vec![uri(id)];
        let key = KeyPair::generate().unwrap();
        let leaf = self.sign(&params, &key);
        X509Svid::from_chain(vec![leaf], key.serialize_der()).unwrap()
    }

    /// A TLS server certificate for `dns_name`.
    pub fn web_cert(&self, dns_name: &str) -> WebCert {
        let mut params = CertificateParams::new(vec![dns_name.to_owned()]).unwrap();
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let leaf_der = self.sign(&params, &key);
        WebCert {
            cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", leaf_der.clone())),
            key_pem: key.serialize_pem(),
            leaf_der,
        }
    }

    fn sign(&self, params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(key, &issuer).unwrap().der().to_vec()
    }

    pub fn authority(&self) -> X509Authority {
        X509Authority {
            asn1: self.der.clone(),
            tainted: false,
        }
    }
}

fn uri(value: &str) -> SanType {
    SanType::URI(value.try_into().unwrap())
}

pub fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

pub fn id(value: &str) -> SpiffeId {
    SpiffeId::parse(value).unwrap()
}

/// A bundle of `trust_domain` holding `cas`.
pub fn bundle(trust_domain: &str, cas: &[&Ca]) -> Bundle {
    let mut bundle = Bundle::new(td(trust_domain));
    bundle.x509_authorities = cas.iter().map(|ca| ca.authority()).collect();
    bundle
}

/// The DER of the X.509 authorities of `bundle`.
pub fn authorities(bundle: &Bundle) -> Vec<Vec<u8>> {
    bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.clone())
        .collect()
}

pub use spire_test::tls::CaptureServerCert;

/// A TLS client configuration that trusts anything, offering `alpn`.
pub fn any_server(capture: Arc<CaptureServerCert>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(capture)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What a test request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The leaf certificate the server presented.
    pub leaf: Vec<u8>,
    /// Whether HTTP/2 was negotiated.
    pub h2: bool,
}

/// One request over a new TLS connection; HTTP/2 when `h2`, else HTTP/1.1.
pub async fn request(addr: SocketAddr, method: Method, path: &str, h2: bool) -> Reply {
    let capture = Arc::new(CaptureServerCert::default());
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let connector = tokio_rustls::TlsConnector::from(any_server(capture.clone(), alpn));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let negotiated_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    assert_eq!(negotiated_h2, h2, "ALPN");
    let io = TokioIo::new(tls);
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(request).await.unwrap()
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let leaf = capture.leaves().first().cloned().unwrap();
    Reply {
        status,
        content_type,
        body,
        leaf,
        h2,
    }
}

/// Keeps tokio's paused clock from auto-advancing while held: time moves only through
/// `tokio::time::advance`, so work on other threads (SQLite) cannot let timers fire early.
/// Tokio inhibits auto-advance while a `spawn_blocking` task runs; this one runs until the
/// guard drops.
pub struct FrozenTime(Option<std::sync::mpsc::Sender<()>>);

impl FrozenTime {
    pub fn new() -> Self {
        let (release, released) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        });
        Self(Some(release))
    }
}

impl Drop for FrozenTime {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// This process's resident set size in KiB.
pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
