//! X509-SVIDs: a SPIFFE ID with its certificate chain (leaf first) and private key, checked
//! against the X509-SVID rules (X509-SVID.md §4, §5) the way go-spiffe checks them.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING,
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use spire_id::{IdError, SpiffeId};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pem_bundle::encode_certificates_pem;
use crate::public_key::PublicKeyParams;

/// An X509-SVID and its private key. Built only through the checks of [`X509Svid::parse`];
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct X509Svid {
    spiffe_id: SpiffeId,
    cert_chain: Vec<Vec<u8>>,
    private_key: Vec<u8>,
}

/// Why a certificate chain and key are not a valid X509-SVID. Messages are go-spiffe's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X509SvidError {
    /// The chain holds no certificate.
    #[error("no certificates found")]
    NoCertificates,
    /// A chain element is not a DER certificate.
    #[error("cannot parse DER encoded certificate: {0}")]
    ParseCertificate(String),
    /// PEM input without any block.
    #[error("no PEM blocks found")]
    NoPemBlocks,
    /// PEM input that cannot be split into blocks.
    #[error("cannot parse PEM: {0}")]
    Pem(String),
    /// The leaf has no URI SAN.
    #[error("certificate contains no URI SAN")]
    NoUriSan,
    /// The leaf has more than one URI SAN.
    #[error("certificate contains more than one URI SAN")]
    MultipleUriSans,
    /// The leaf's URI SAN is not a SPIFFE ID.
    #[error("cannot get leaf certificate SPIFFE ID: {0}")]
    InvalidSpiffeId(IdError),
    /// The leaf's SPIFFE ID is a trust domain ID (`spiffe://td`).
    #[error("leaf certificate SPIFFE ID must have a non-root path")]
    RootPath,
    /// The leaf is a CA.
    #[error("leaf certificate must not have CA flag set to true")]
    LeafIsCa,
    /// The leaf lacks the digitalSignature key usage.
    #[error("leaf certificate must have 'digitalSignature' set as key usage")]
    LeafWithoutDigitalSignature,
    /// The leaf may sign certificates.
    #[error("leaf certificate must not have 'keyCertSign' set as key usage")]
    LeafWithKeyCertSign,
    /// The leaf may sign CRLs.
    #[error("leaf certificate must not have 'cRLSign' set as key usage")]
    LeafWithCrlSign,
    /// An intermediate is not a CA.
    #[error("signing certificate must have CA flag set to true")]
    SigningCertNotCa,
    /// An intermediate may not sign certificates.
    #[error("signing certificate must have 'keyCertSign' set as key usage")]
    SigningCertWithoutKeyCertSign,
    /// The key is not a PKCS#8 EC (P-256/P-384/P-521), RSA or Ed25519 private key (or PEM
    /// input has no `PRIVATE KEY` block).
    #[error("cannot parse PKCS8 encoded private key")]
    ParsePrivateKey,
    /// The private key is not the leaf's.
    #[error("leaf certificate does not match private key")]
    KeyMismatch,
}

// === impl X509Svid ===

impl X509Svid {
    /// Parses the Workload API form: concatenated DER certificates, leaf first, and an
    /// unencrypted PKCS#8 DER key. Trailing bytes that are not a certificate are an error.
    pub fn parse(chain_der: &[u8], key_der: &[u8]) -> Result<Self, X509SvidError> {
        let mut cert_chain = Vec::new();
        let mut rest = chain_der;
        while !rest.is_empty() {
            let (after, _) = X509Certificate::from_der(rest)
                .map_err(|e| X509SvidError::ParseCertificate(e.to_string()))?;
            let len = rest.len() - after.len();
            cert_chain.push(rest[..len].to_vec());
            rest = after;
        }
        Self::from_chain(cert_chain, key_der.to_vec())
    }

    /// Checks a chain that is already split into DER certificates (leaf first) and a PKCS#8
    /// DER key.
    pub fn from_chain(
        cert_chain: Vec<Vec<u8>>,
        private_key: Vec<u8>,
    ) -> Result<Self, X509SvidError> {
        let mut certs = Vec::with_capacity(cert_chain.len());
        for der in &cert_chain {
            match X509Certificate::from_der(der) {
                Ok(([], cert)) => certs.push(cert),
                Ok(_) => {
                    return Err(X509SvidError::ParseCertificate(
                        "trailing data after certificate".to_owned(),
                    ));
                }
                Err(e) => return Err(X509SvidError::ParseCertificate(e.to_string())),
            }
        }
        let (leaf, signing_certs) = certs.split_first().ok_or(X509SvidError::NoCertificates)?;
        let spiffe_id = validate_leaf(leaf)?;
        signing_certs.iter().try_for_each(validate_signing_cert)?;
        // A leaf key we cannot read (DSA, compressed points, …) matches no private key.
        let leaf_key = PublicKeyParams::from_spki(leaf.public_key())
            .map_err(|_| X509SvidError::KeyMismatch)?;
        if private_key_public_params(&private_key)? != leaf_key {
            return Err(X509SvidError::KeyMismatch);
        }
        Ok(Self {
            spiffe_id,
            cert_chain,
            private_key,
        })
    }

    /// The SPIFFE ID of a peer's certificate chain (DER, leaf first) after the X509-SVID
    /// rules that need no private key: the leaf's one SPIFFE URI SAN with a path, the leaf
    /// and signing-certificate key usages and CA flags. Whether the chain is trusted is the
    /// caller's to check (a TLS verifier has done it before calling this).
    pub fn peer_id<'a>(
        cert_chain: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<SpiffeId, X509SvidError> {
        let mut certs = Vec::new();
        for der in cert_chain {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|e| X509SvidError::ParseCertificate(e.to_string()))?;
            certs.push(cert);
        }
        let (leaf, signing_certs) = certs.split_first().ok_or(X509SvidError::NoCertificates)?;
        let spiffe_id = validate_leaf(leaf)?;
        signing_certs.iter().try_for_each(validate_signing_cert)?;
        Ok(spiffe_id)
    }

    /// Parses PEM: the `CERTIFICATE` blocks of `certs_pem` (leaf first) and the first
    /// `PRIVATE KEY` (PKCS#8) block of `key_pem`. Blocks of other types are skipped, so one
    /// file holding both the key and the chain can be passed twice.
    pub fn parse_pem(certs_pem: &[u8], key_pem: &[u8]) -> Result<Self, X509SvidError> {
        let cert_chain = pem_blocks(certs_pem)?
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(pem::Pem::into_contents)
            .collect();
        let key = pem_blocks(key_pem)?
            .into_iter()
            .find(|b| b.tag() == "PRIVATE KEY")
            .ok_or(X509SvidError::ParsePrivateKey)?;
        Self::from_chain(cert_chain, key.into_contents())
    }

    /// The SPIFFE ID of the leaf's URI SAN.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The DER certificates, leaf first.
    pub fn cert_chain(&self) -> &[Vec<u8>] {
        &self.cert_chain
    }

    /// The leaf DER certificate.
    pub fn leaf(&self) -> &[u8] {
        &self.cert_chain[0]
    }

    /// The PKCS#8 DER private key.
    pub fn private_key(&self) -> &[u8] {
        &self.private_key
    }

    /// The chain as concatenated DER, the Workload API `x509_svid` field.
    pub fn chain_der(&self) -> Vec<u8> {
        self.cert_chain.concat()
    }

    /// The chain as PEM `CERTIFICATE` blocks, leaf first.
    pub fn chain_pem(&self) -> String {
        encode_certificates_pem(self.cert_chain.iter().map(Vec::as_slice))
    }

    /// The private key as a PEM `PRIVATE KEY` block.
    pub fn private_key_pem(&self) -> String {
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", self.private_key.clone()),
            config,
        )
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("cert_chain_len", &self.cert_chain.len())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// All PEM blocks of `data`; none at all is an error.
fn pem_blocks(data: &[u8]) -> Result<Vec<pem::Pem>, X509SvidError> {
    let blocks = pem::parse_many(data).map_err(|e| X509SvidError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(X509SvidError::NoPemBlocks);
    }
    Ok(blocks)
}

/// The leaf rules: one URI SAN holding a SPIFFE ID with a path, not a CA, digitalSignature
/// and neither keyCertSign nor cRLSign.
fn validate_leaf(leaf: &X509Certificate<'_>) -> Result<SpiffeId, X509SvidError> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| X509SvidError::ParseCertificate(e.to_string()))?;
    let mut uris = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    let uri = uris.next().ok_or(X509SvidError::NoUriSan)?;
    if uris.next().is_some() {
        return Err(X509SvidError::MultipleUriSans);
    }
    let spiffe_id = SpiffeId::parse(uri).map_err(X509SvidError::InvalidSpiffeId)?;
    if spiffe_id.path().is_empty() {
        return Err(X509SvidError::RootPath);
    }
    if is_ca(leaf)? {
        return Err(X509SvidError::LeafIsCa);
    }
    let usage = key_usage(leaf)?;
    if !usage.digital_signature {
        return Err(X509SvidError::LeafWithoutDigitalSignature);
    }
    if usage.key_cert_sign {
        return Err(X509SvidError::LeafWithKeyCertSign);
    }
    if usage.crl_sign {
        return Err(X509SvidError::LeafWithCrlSign);
    }
    Ok(spiffe_id)
}

/// The intermediate rules: a CA with keyCertSign.
fn validate_signing_cert(cert: &X509Certificate<'_>) -> Result<(), X509SvidError> {
    if !is_ca(cert)? {
        return Err(X509SvidError::SigningCertNotCa);
    }
    if !key_usage(cert)?.key_cert_sign {
        return Err(X509SvidError::SigningCertWithoutKeyCertSign);
    }
    Ok(())
}

/// `cA` of BasicConstraints; false when the extension is absent (as Go reads it).
fn is_ca(cert: &X509Certificate<'_>) -> Result<bool, X509SvidError> {
    let constraints = cert
        .basic_constraints()
        .map_err(|e| X509SvidError::ParseCertificate(e.to_string()))?;
    Ok(constraints.is_some_and(|bc| bc.value.ca))
}

/// The three key-usage bits the rules look at; all false when the extension is absent.
struct Usage {
    digital_signature: bool,
    key_cert_sign: bool,
    crl_sign: bool,
}

fn key_usage(cert: &X509Certificate<'_>) -> Result<Usage, X509SvidError> {
    let usage = cert
        .key_usage()
        .map_err(|e| X509SvidError::ParseCertificate(e.to_string()))?;
    Ok(usage.map_or(
        Usage {
            digital_signature: false,
            key_cert_sign: false,
            crl_sign: false,
        },
        |ku| Usage {
            digital_signature: ku.value.digital_signature(),
            key_cert_sign: ku.value.key_cert_sign(),
            crl_sign: ku.value.crl_sign(),
        },
    ))
}

/// The public key of a PKCS#8 private key, whichever supported type it is.
fn private_key_public_params(pkcs8: &[u8]) -> Result<PublicKeyParams, X509SvidError> {
    let spki = public_spki_of(pkcs8).ok_or(X509SvidError::ParsePrivateKey)?;
    PublicKeyParams::from_spki_der(&spki).map_err(|_| X509SvidError::ParsePrivateKey)
}

fn public_spki_of(pkcs8: &[u8]) -> Option<Vec<u8>> {
    for alg in [
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &ECDSA_P384_SHA384_ASN1_SIGNING,
        &ECDSA_P521_SHA512_ASN1_SIGNING,
    ] {
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(alg, pkcs8) {
            return pair.public_key().as_der().ok().map(|d| d.as_ref().to_vec());
        }
    }
    if let Ok(pair) = RsaKeyPair::from_pkcs8(pkcs8) {
        return pair.public_key().as_der().ok().map(|d| d.as_ref().to_vec());
    }
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
        return pair.public_key().as_der().ok().map(|d| d.as_ref().to_vec());
    }
    None
}

#[cfg(test)]
mod tests;
