//! The agent's TLS to the server: the server must chain to the current bundle and present
//! `spiffe://<td>/spire/server` (or, under `insecure_bootstrap`, only the ID is checked);
//! the agent SVID is the client certificate, swapped in place on rotation. Certificate time
//! comes from the injected clock.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use spire_id::SpiffeId;
use spire_time::SharedClock;
use tonic::transport::{Channel, Endpoint};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::{Error, Result};

/// Dial and per-RPC timeout (SPIRE: 30 s each).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The client certificate offered on mTLS connections.
#[derive(Debug, Default)]
pub(crate) struct ClientIdentity {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

/// Verifies the server against the bundle in force.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    server_id: SpiffeId,
    provider: Arc<CryptoProvider>,
    /// `None` = insecure bootstrap: any chain, ID still checked.
    webpki: RwLock<Option<Arc<WebPkiServerVerifier>>>,
}

/// rustls's clock, read from ours.
#[derive(Debug)]
struct ClockTime(SharedClock);

// === impl ClientIdentity ===

impl ClientIdentity {
    /// Swaps in a new SVID; new connections present it.
    pub(crate) fn set(&self, chain: &[Vec<u8>], pkcs8: &[u8]) -> Result<()> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
        let signing_key = aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|e| Error::Tls(format!("agent SVID key: {e}")))?;
        let chain = chain.iter().cloned().map(CertificateDer::from).collect();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(CertifiedKey::new(chain, signing_key)));
        Ok(())
    }
}

impl ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

// === impl ServerVerifier ===

impl ServerVerifier {
    /// A verifier for `server_id`; `roots` = `None` for insecure bootstrap.
    pub(crate) fn new(server_id: SpiffeId, roots: Option<&[Vec<u8>]>) -> Result<Self> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let webpki = match roots {
            Some(r) => Some(webpki(r, &provider)?),
            None => None,
        };
        Ok(Self {
            server_id,
            provider,
            webpki: RwLock::new(webpki),
        })
    }

    /// Trusts exactly `roots` from now on (leaves insecure bootstrap behind).
    pub(crate) fn set_roots(&self, roots: &[Vec<u8>]) -> Result<()> {
        let verifier = webpki(roots, &self.provider)?;
        *self.webpki.write().unwrap_or_else(PoisonError::into_inner) = Some(verifier);
        Ok(())
    }

    fn check_id(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let (_, cert) = X509Certificate::from_der(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let uris: Vec<&str> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::URI(u) => Some(*u),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        match uris.as_slice() {
            [one] if *one == self.server_id.to_string() => Ok(()),
            _ => Err(rustls::Error::General(format!(
                "server certificate must carry exactly the URI SAN {}, found {uris:?}",
                self.server_id
            ))),
        }
    }
}

fn webpki(roots: &[Vec<u8>], provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(CertificateDer::from(root.clone()))
            .map_err(|e| Error::Tls(format!("bundle root: {e}")))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| Error::Tls(format!("server verifier: {e}")))
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let webpki = self
            .webpki
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(webpki) = webpki {
            // The chain is checked first; a server SVID has no DNS name, so the name check
            // that follows is replaced by the SPIFFE ID check.
            match webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        self.check_id(end_entity)?;
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// === impl ClockTime ===

impl rustls::time_provider::TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        self.0
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(UnixTime::since_unix_epoch)
    }
}

/// A rustls client configuration: server verified by `verifier`, the agent SVID offered when
/// `identity` is given (none for AttestAgent), ALPN h2, time from `clock`.
pub(crate) fn client_config(
    verifier: Arc<ServerVerifier>,
    identity: Option<Arc<ClientIdentity>>,
    clock: SharedClock,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_details(
        Arc::new(aws_lc_rs::default_provider()),
        Arc::new(ClockTime(clock)),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .dangerous()
    .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder.with_client_cert_resolver(identity),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A lazily connecting gRPC channel to `address` (`host:port`) over `config`.
pub(crate) fn channel(address: &str, config: ClientConfig) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Error::Config(format!("server address {address:?}: {e}")))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_name = ServerName::try_from(host)
        .or_else(|_| ServerName::try_from("spire-server".to_owned()))
        .map_err(|e| Error::Tls(format!("server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let address = address.to_owned();
    let connect = tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        let address = address.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connect))
}

#[cfg(test)]
mod tests;
