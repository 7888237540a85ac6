use x509_parser::prelude::{FromDer, X509CertificationRequest};

/// Why a CSR was refused; messages are SPIRE's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// No CSR bytes at all.
    #[error("missing CSR")]
    Missing,
    /// Not a DER PKCS#10 request (or trailing bytes after it).
    #[error("malformed CSR")]
    Malformed,
    /// The request's self-signature does not verify with its own public key.
    #[error("failed to verify CSR signature")]
    BadSignature,
}

/// Parses a PKCS#10 CSR, checks its proof of possession, and returns **only** the DER
/// `SubjectPublicKeyInfo`. Everything else the requester asked for (names, SANs, extensions)
/// is dropped: the SPIFFE ID, DNS names and TTL of an SVID always come from the entry
/// (CVE-2021-27098).
pub fn verify_csr(der: &[u8]) -> Result<Vec<u8>, CsrError> {
    if der.is_empty() {
        return Err(CsrError::Missing);
    }
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|_| CsrError::Malformed)?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed);
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}
