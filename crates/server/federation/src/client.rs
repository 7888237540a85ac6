//! The bundle client: one `GET` of a remote trust domain's bundle document over HTTPS
//! (HTTP/2 or HTTP/1.1 by ALPN), authenticated per the relationship's profile, with the
//! whole fetch under a timeout and the body under a size cap. Redirects are not followed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, USER_AGENT};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use spire_id::{SpiffeId, TrustDomain};
use spire_svid::Bundle;
use spire_time::SharedClock;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::Error;
use crate::tls::{ClockTime, provider};

mod verify;

use verify::{SpiffeVerifier, VerifyFailure, WebVerifier};

/// How much of a non-200 body goes into the error (SPIRE reads 1 KiB).
const STATUS_BODY_BYTES: usize = 1024;

/// Limits and trust for bundle fetches.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time allowed for a whole fetch: connect, handshake, request and body.
    pub timeout: Duration,
    /// Largest accepted bundle document, in bytes.
    pub max_body_size: usize,
    /// Trust the operating system's roots for `https_web` (`rustls-native-certs`).
    pub system_roots: bool,
    /// Further `https_web` roots (DER), e.g. a private CA.
    pub extra_web_roots: Vec<Vec<u8>>,
}

/// How the endpoint of one fetch is authenticated.
#[derive(Clone, Copy, Debug)]
pub enum EndpointAuth<'a> {
    /// `https_web`: Web PKI against the client's web roots and the URL's host name.
    Web,
    /// `https_spiffe`: an X509-SVID for exactly `endpoint_spiffe_id`, chaining to the X.509
    /// authorities of `bundle`, the stored bundle of that ID's trust domain (which need not
    /// be the trust domain being fetched).
    Spiffe {
        /// The ID the endpoint must present.
        endpoint_spiffe_id: &'a SpiffeId,
        /// The bundle that authenticates it.
        bundle: &'a Bundle,
    },
}

/// Fetches SPIFFE bundle documents. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BundleClient {
    clock: SharedClock,
    options: ClientOptions,
    provider: Arc<CryptoProvider>,
    /// The `https_web` configuration, or why there is none (no roots at all).
    web: Result<Arc<ClientConfig>, String>,
}

/// `bundle_endpoint_url`, taken apart.
#[derive(Debug)]
struct Target {
    uri: Uri,
    authority: String,
    host: String,
    port: u16,
    path: PathAndQuery,
    server_name: ServerName<'static>,
}

/// Aborts the HTTP connection task when the fetch is done or dropped.
struct AbortOnDrop(JoinHandle<()>);

// === impl ClientOptions ===

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_body_size: 1024 * 1024,
            system_roots: true,
            extra_web_roots: Vec::new(),
        }
    }
}

// === impl BundleClient ===

impl BundleClient {
    /// A client whose certificate checks read `clock`. The system roots are loaded now; a
    /// system without any only fails `https_web` fetches.
    pub fn new(clock: SharedClock, options: ClientOptions) -> Self {
        let provider = provider();
        let web = web_config(&clock, &options, &provider);
        if let Err(reason) = &web {
            tracing::warn!(%reason, "Federation over https_web is unavailable");
        }
        Self {
            clock,
            options,
            provider,
            web,
        }
    }

    /// Fetches and parses the bundle of `trust_domain` from `url`.
    pub async fn fetch(
        &self,
        url: &str,
        trust_domain: &TrustDomain,
        auth: EndpointAuth<'_>,
    ) -> Result<Bundle, Error> {
        let target = Target::parse(url)?;
        let config = match auth {
            EndpointAuth::Web => self.web.clone().map_err(Error::Tls)?,
            EndpointAuth::Spiffe {
                endpoint_spiffe_id,
                bundle,
            } => {
                let roots = bundle
                    .x509_authorities
                    .iter()
                    .map(|a| CertificateDer::from(a.asn1.clone()));
                let verifier =
                    SpiffeVerifier::new(endpoint_spiffe_id.clone(), roots, self.provider.clone());
                Arc::new(client_config(
                    &self.clock,
                    &self.provider,
                    Arc::new(verifier),
                )?)
            }
        };
        let timeout = self.options.timeout;
        let body = tokio::time::timeout(timeout, self.get(&target, config))
            .await
            .map_err(|_| Error::Timeout(timeout))??;
        decode(trust_domain, &body)
    }

    async fn get(&self, target: &Target, config: Arc<ClientConfig>) -> Result<Bytes, Error> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| Error::Connect {
                address: target.authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(config)
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|error| match VerifyFailure::find(&error) {
                Some(failure) => Error::from(failure.clone()),
                None => Error::Handshake(error.to_string()),
            })?;
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.get_h2(target, tls).await
        } else {
            self.get_h1(target, tls).await
        }
    }

    async fn get_h2(&self, target: &Target, tls: TlsStream<TcpStream>) -> Result<Bytes, Error> {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(http_error)?;
        let _connection = AbortOnDrop::spawn(connection);
        let request = Request::get(target.uri.clone())
            .header(USER_AGENT, user_agent())
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::Http(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(http_error)?;
        self.read(response).await
    }

    async fn get_h1(&self, target: &Target, tls: TlsStream<TcpStream>) -> Result<Bytes, Error> {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(http_error)?;
        let _connection = AbortOnDrop::spawn(connection);
        let request = Request::get(target.path.as_str())
            .header(HOST, target.authority.as_str())
            .header(USER_AGENT, user_agent())
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::Http(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(http_error)?;
        self.read(response).await
    }

    /// The body of a 200 response, or the status error with the start of the body.
    async fn read(&self, response: Response<Incoming>) -> Result<Bytes, Error> {
        let status = response.status();
        if status != StatusCode::OK {
            let (start, _) = read_capped(response.into_body(), STATUS_BODY_BYTES).await;
            return Err(Error::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&start).into_owned(),
            });
        }
        let limit = self.options.max_body_size;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(Error::BodyTooLarge { limit });
        }
        match read_capped(response.into_body(), limit).await {
            (_, Some(Err(error))) => Err(http_error(error)),
            (_, Some(Ok(()))) => Err(Error::BodyTooLarge { limit }),
            (body, None) => Ok(body.into()),
        }
    }
}

/// Reads at most `cap` bytes of `body`. The second value says why reading stopped early:
/// `Ok(())` when the body was longer than `cap`, `Err` when it failed; `None` at its end.
async fn read_capped(
    mut body: Incoming,
    cap: usize,
) -> (Vec<u8>, Option<Result<(), hyper::Error>>) {
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if read.len() + data.len() > cap {
                        let room = cap - read.len();
                        read.extend_from_slice(&data[..room]);
                        return (read, Some(Ok(())));
                    }
                    read.extend_from_slice(&data);
                }
            }
            Err(error) => return (read, Some(Err(error))),
        }
    }
    (read, None)
}

fn http_error(error: hyper::Error) -> Error {
    Error::Http(error.to_string())
}

fn user_agent() -> &'static str {
    concat!("spire-rs/", env!("CARGO_PKG_VERSION"))
}

/// The document as a bundle of `trust_domain`: at least one X.509 authority, and none that
/// names another trust domain in a SPIFFE URI SAN (SPIRE's CA certificates carry
/// `spiffe://<td>`; a CA without one is accepted).
fn decode(trust_domain: &TrustDomain, body: &[u8]) -> Result<Bundle, Error> {
    let bundle = Bundle::from_spiffe_json(trust_domain.clone(), body)?;
    if bundle.x509_authorities.is_empty() {
        return Err(Error::NoX509Authorities);
    }
    for (index, authority) in bundle.x509_authorities.iter().enumerate() {
        let Ok((_, cert)) = X509Certificate::from_der(&authority.asn1) else {
            continue;
        };
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            continue;
        };
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with("spiffe://")
                && TrustDomain::parse(uri).ok().as_ref() != Some(trust_domain)
            {
                return Err(Error::WrongTrustDomain {
                    expected: trust_domain.clone(),
                    found: (*uri).to_owned(),
                    index,
                });
            }
        }
    }
    Ok(bundle)
}

fn client_config(
    clock: &SharedClock,
    provider: &Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<ClientConfig, Error> {
    let mut config =
        ClientConfig::builder_with_details(provider.clone(), Arc::new(ClockTime(clock.clone())))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Every fetch authenticates the endpoint from scratch against the trust in force.
    config.resumption = Resumption::disabled();
    Ok(config)
}

fn web_config(
    clock: &SharedClock,
    options: &ClientOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if options.system_roots {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "Unable to load a system root certificate");
        }
        roots.add_parsable_certificates(native.certs);
    }
    roots.add_parsable_certificates(
        options
            .extra_web_roots
            .iter()
            .map(|der| CertificateDer::from(der.clone())),
    );
    let web = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("no Web PKI roots: {e}"))?;
    client_config(clock, provider, Arc::new(WebVerifier::new(web)))
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

// === impl Target ===

impl Target {
    fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        if uri.scheme() != Some(&Scheme::HTTPS) {
            return Err(invalid("scheme must be https"));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("missing host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| invalid("invalid host name"))?;
        let authority = match uri.authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => return Err(invalid("missing host")),
        };
        if authority.contains('@') {
            return Err(invalid("user information is not allowed"));
        }
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Ok(Self {
            uri,
            authority,
            host,
            port,
            path,
            server_name,
        })
    }
}

// === impl AbortOnDrop ===

impl AbortOnDrop {
    fn spawn<F>(connection: F) -> Self
    where
        F: Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        Self(tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Bundle endpoint connection ended with an error");
            }
        }))
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_with_a_host() {
        let target = Target::parse("https://example.org:8443/bundle?x=1").unwrap();
        assert_eq!(target.host, "example.org");
        assert_eq!(target.port, 8443);
        assert_eq!(target.authority, "example.org:8443");
        assert_eq!(target.path.as_str(), "/bundle?x=1");
        let target = Target::parse("https://[::1]").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 443));
        assert_eq!(target.path.as_str(), "/");
        for bad in [
            "http://example.org/",
            "example.org",
            "https:///",
            "https://u@h/",
            "",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
