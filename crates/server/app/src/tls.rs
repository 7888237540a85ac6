//! The server's TLS identity and peer verification, both swappable at run time: the server
//! SVID (`spiffe://<td>/spire/server`) is re-minted at half its lifetime, and client
//! certificates are verified against the current trust bundle. Client certificates are
//! optional (agents attest without one); what a caller may do is decided per method by the
//! API's authorization layer. Session resumption is off, so every connection is verified
//! against the bundle as it is now. Certificate time comes from the injected clock.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::aws_lc_rs;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use spire_time::SharedClock;

use crate::Error;

/// The server SVID currently presented.
#[derive(Debug)]
pub(crate) struct SvidResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

/// Verifies optional client certificates against the bundle in force.
pub(crate) struct BundleVerifier {
    inner: RwLock<Arc<dyn ClientCertVerifier>>,
}

/// rustls's clock, read from ours.
#[derive(Debug)]
struct ClockTime(SharedClock);

// === impl SvidResolver ===

impl SvidResolver {
    pub(crate) fn new(chain: Vec<Vec<u8>>, pkcs8: Vec<u8>) -> Result<Self, Error> {
        Ok(Self {
            current: RwLock::new(certified_key(chain, pkcs8)?),
        })
    }

    /// Swaps in a new SVID; new handshakes use it at once.
    pub(crate) fn set(&self, chain: Vec<Vec<u8>>, pkcs8: Vec<u8>) -> Result<(), Error> {
        let key = certified_key(chain, pkcs8)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn certified_key(chain: Vec<Vec<u8>>, pkcs8: Vec<u8>) -> Result<Arc<CertifiedKey>, Error> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
    let signing_key = aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| Error::Tls(format!("server SVID key: {e}")))?;
    let chain = chain.into_iter().map(CertificateDer::from).collect();
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}

// === impl BundleVerifier ===

impl BundleVerifier {
    pub(crate) fn new(roots: &[Vec<u8>]) -> Result<Self, Error> {
        Ok(Self {
            inner: RwLock::new(webpki_verifier(roots)?),
        })
    }

    /// Replaces the trust anchors (after a CA rotation or a bundle change).
    pub(crate) fn set_roots(&self, roots: &[Vec<u8>]) -> Result<(), Error> {
        let verifier = webpki_verifier(roots)?;
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = verifier;
        Ok(())
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn webpki_verifier(roots: &[Vec<u8>]) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(CertificateDer::from(root.clone()))
            .map_err(|e| Error::Tls(format!("bundle root: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(store),
        Arc::new(aws_lc_rs::default_provider()),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Tls(format!("client verifier: {e}")))
}

impl fmt::Debug for BundleVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for BundleVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // SPIFFE clients pick their SVID by trust domain, not by CA names.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
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

/// The TCP listener's rustls configuration: TLS 1.2+, ALPN h2, no session resumption, client
/// certificates checked at `clock`'s time.
pub(crate) fn server_config(
    resolver: Arc<SvidResolver>,
    verifier: Arc<BundleVerifier>,
    clock: SharedClock,
) -> Result<ServerConfig, Error> {
    let mut config = ServerConfig::builder_with_details(
        Arc::new(aws_lc_rs::default_provider()),
        Arc::new(ClockTime(clock)),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_client_cert_verifier(verifier)
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    // A resumed session would skip client-certificate verification against the current
    // bundle (SPIRE 1.14.3, #6715): no tickets, no session cache.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.ticketer = Arc::new(NoTickets);
    Ok(config)
}

/// A ticketer that never issues tickets.
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

#[cfg(test)]
mod tests;
