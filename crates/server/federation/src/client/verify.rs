//! How the bundle client authenticates an endpoint. `https_spiffe`: the chain must lead to
//! an X.509 authority of the endpoint ID's trust-domain bundle and the leaf must be an
//! X509-SVID for exactly `endpoint_spiffe_id` (go-spiffe's `AuthorizeID`); no DNS name is
//! checked. `https_web`: Web PKI with host-name checks; a refused certificate that carries a
//! SPIFFE ID gets SPIRE's "maybe use https_spiffe" hint.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use spire_id::SpiffeId;
use spire_svid::X509Svid;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::Error;

/// DER content of id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// A verification failure the fetch reports as its own [`Error`] variant; it travels through
/// rustls inside `CertificateError::Other`.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum VerifyFailure {
    #[error("unexpected ID {found:?}")]
    IdMismatch { expected: SpiffeId, found: String },
    #[error("certificate with SPIFFE ID {spiffe_id:?} refused by Web PKI: {reason}")]
    WebWithSpiffeId { spiffe_id: String, reason: String },
}

/// `https_spiffe`: trust anchors from the endpoint ID's bundle, plus the ID check.
#[derive(Debug)]
pub(crate) struct SpiffeVerifier {
    expected: SpiffeId,
    anchors: Vec<TrustAnchor<'static>>,
    provider: Arc<CryptoProvider>,
}

/// `https_web`: rustls's Web PKI verifier with SPIRE's hint on failure.
#[derive(Debug)]
pub(crate) struct WebVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

// === impl VerifyFailure ===

impl VerifyFailure {
    fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }

    /// The failure carried by a handshake error, if it is one of ours.
    pub(crate) fn find(error: &std::io::Error) -> Option<&VerifyFailure> {
        let other = match error.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(CertificateError::Other(other))
            | rustls::Error::Other(other) => other,
            _ => return None,
        };
        other.0.downcast_ref::<VerifyFailure>()
    }
}

impl From<VerifyFailure> for Error {
    fn from(failure: VerifyFailure) -> Self {
        match failure {
            VerifyFailure::IdMismatch { expected, found } => {
                Error::PeerIdMismatch { expected, found }
            }
            VerifyFailure::WebWithSpiffeId { spiffe_id, reason } => {
                Error::WebAuthWithSpiffeId { spiffe_id, reason }
            }
        }
    }
}

// === impl SpiffeVerifier ===

impl SpiffeVerifier {
    /// Trusts the X.509 authorities `roots` (DER) for `expected`. Authorities that are not
    /// usable trust anchors are skipped; none at all leaves nothing trusted.
    pub(crate) fn new(
        expected: SpiffeId,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let anchors = roots
            .into_iter()
            .filter_map(|root| match webpki::anchor_from_trusted_cert(&root) {
                Ok(anchor) => Some(anchor.to_owned()),
                Err(error) => {
                    tracing::warn!(%error, "Skipping an X.509 authority that is not a usable trust anchor");
                    None
                }
            })
            .collect();
        Self {
            expected,
            anchors,
            provider,
        }
    }
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.anchors,
            intermediates,
            now,
            // SPIFFE leaves need not carry an EKU; when one is present it must allow TLS
            // servers (SPIRE's server SVID has serverAuth and clientAuth).
            webpki::KeyUsage::required_if_present(EKU_SERVER_AUTH),
            None,
            None,
        )
        .map_err(pki_error)?;
        let chain =
            std::iter::once(end_entity.as_ref()).chain(intermediates.iter().map(|c| c.as_ref()));
        let found = X509Svid::peer_id(chain).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        })?;
        if found != self.expected {
            return Err(VerifyFailure::IdMismatch {
                expected: self.expected.clone(),
                found: found.to_string(),
            }
            .into_rustls());
        }
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

/// webpki's verdict as rustls reports it.
fn pki_error(error: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    let error = match error {
        E::BadDer | E::BadDerTime => CertificateError::BadEncoding,
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(error)
}

// === impl WebVerifier ===

impl WebVerifier {
    pub(crate) fn new(inner: Arc<WebPkiServerVerifier>) -> Self {
        Self { inner }
    }
}

impl ServerCertVerifier for WebVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|error| match spiffe_uri(end_entity) {
                Some(spiffe_id) => VerifyFailure::WebWithSpiffeId {
                    spiffe_id,
                    reason: error.to_string(),
                }
                .into_rustls(),
                None => error,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The first `spiffe://` URI SAN of a certificate.
fn spiffe_uri(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
        _ => None,
    })
}
