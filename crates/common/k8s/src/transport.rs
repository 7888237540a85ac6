//! The HTTP plumbing both clients share: a pooled hyper client over our own TCP + rustls
//! connector (HTTP/2 when the server offers it by ALPN, else HTTP/1.1 keep-alive), TLS
//! configurations, and capped body reads.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;

/// The pooled HTTP client type both clients use.
pub(crate) type HttpClient = Client<Connector, Full<Bytes>>;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
pub(crate) enum Verify {
    /// Web PKI against these roots (PEM), including the host name.
    Roots(Vec<u8>),
    /// Web PKI against the operating system's roots, including the host name.
    System,
    /// The chain against these roots (PEM), but not the host name.
    ChainOnly(Vec<u8>),
    /// Nothing (handshake signatures are still checked).
    Skip,
}

/// Opens TCP connections, wrapped in TLS for `https` URLs. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The name to verify (and send as SNI) instead of the URL's host.
    server_name: Option<ServerName<'static>>,
}

/// A plain or TLS connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

#[derive(Debug)]
struct ChainOnlyVerify(Arc<WebPkiServerVerifier>);

// === impl Connector ===

impl Connector {
    /// A connector for `https` (when `tls` is set) and `http` URLs.
    pub(crate) fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        server_name: Option<&str>,
    ) -> Result<Self, Error> {
        let server_name = server_name
            .map(|name| {
                ServerName::try_from(name.to_owned())
                    .map_err(|_| Error::config(format!("invalid TLS server name {name:?}")))
            })
            .transpose()?;
        Ok(Self { tls, server_name })
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<Stream>, io::Error> {
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL without a host"))?
            .to_owned();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok(TokioIo::new(Stream::Plain(tcp)));
        }
        let tls = self.tls.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "https is not configured")
        })?;
        let name = match self.server_name {
            Some(name) => name,
            None => ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        };
        let stream = TlsConnector::from(tls).connect(name, tcp).await?;
        Ok(TokioIo::new(Stream::Tls(Box::new(stream))))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// The pooled client over `connector`.
pub(crate) fn http_client(connector: Connector) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

// === impl Stream ===

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Self::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            _ => Connected::new(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

// === TLS configuration ===

/// The one crypto provider (aws-lc-rs).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Parses every `CERTIFICATE` block of `pem`; at least one is required.
pub(crate) fn parse_certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("invalid {what}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "invalid {what}: no PEM CERTIFICATE block"
        )));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::config(format!("invalid client key: {e}")))
}

/// A client TLS configuration: server verification, an optional client certificate (PEM
/// chain and key), ALPN h2 + http/1.1.
pub(crate) fn tls_config(
    verify: &Verify,
    client_cert: Option<(&[u8], &[u8])>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(e.to_string()))?;
    let roots = |pem: &[u8]| -> Result<Arc<RootCertStore>, Error> {
        let mut store = RootCertStore::empty();
        for cert in parse_certificates(pem, "CA certificate")? {
            store
                .add(cert)
                .map_err(|e| Error::config(format!("invalid CA certificate: {e}")))?;
        }
        Ok(Arc::new(store))
    };
    let webpki = |store: Arc<RootCertStore>| {
        WebPkiServerVerifier::builder_with_provider(store, provider.clone())
            .build()
            .map_err(|e| Error::config(format!("invalid CA certificates: {e}")))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Roots(pem) => webpki(roots(pem)?)?,
        Verify::System => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "Unable to load a system root certificate");
            }
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(native.certs);
            if store.is_empty() {
                return Err(Error::config(
                    "no certificate authority configured and no system roots found",
                ));
            }
            webpki(Arc::new(store))?
        }
        Verify::ChainOnly(pem) => Arc::new(ChainOnlyVerify(webpki(roots(pem)?)?)),
        Verify::Skip => Arc::new(SkipVerify(provider.clone())),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_cert {
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(
                parse_certificates(cert_pem, "client certificate")?,
                parse_key(key_pem)?,
            )
            .map_err(|e| Error::config(format!("invalid client certificate or key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if matches!(verify, Verify::ChainOnly(_)) {
        // A session resumed by ticket skips the (name-less) verification: none at all.
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

// === impl SkipVerify ===

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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

// === impl ChainOnlyVerify ===

impl ServerCertVerifier for ChainOnlyVerify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // rustls checks the chain (validity, signatures, EKU) before the name, so a name
        // error means the chain itself was accepted.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

// === bodies ===

/// Why a capped read stopped before the end of the body.
pub(crate) enum Capped {
    /// The body was longer than the cap.
    TooLarge,
    /// Reading failed.
    Failed(hyper::Error),
}

/// Reads at most `cap` bytes of `body`; never buffers more than that.
pub(crate) async fn read_capped(mut body: Incoming, cap: usize) -> (Vec<u8>, Option<Capped>) {
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if read.len() + data.len() > cap {
                        let room = cap - read.len();
                        read.extend_from_slice(&data[..room]);
                        return (read, Some(Capped::TooLarge));
                    }
                    read.extend_from_slice(&data);
                }
            }
            Err(error) => return (read, Some(Capped::Failed(error))),
        }
    }
    (read, None)
}

/// The whole body, or an error once it exceeds `limit` (also when its declared length does).
pub(crate) async fn read_body(
    response: http::Response<Incoming>,
    limit: usize,
    what: &str,
) -> Result<Bytes, Error> {
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    match read_capped(response.into_body(), limit).await {
        (body, None) => Ok(body.into()),
        (_, Some(Capped::TooLarge)) => Err(Error::BodyTooLarge { limit }),
        (_, Some(Capped::Failed(error))) => Err(Error::transport(what, error)),
    }
}

/// The value of our `User-Agent` header.
pub(crate) fn user_agent() -> &'static str {
    concat!("spire-rs/", env!("CARGO_PKG_VERSION"))
}
