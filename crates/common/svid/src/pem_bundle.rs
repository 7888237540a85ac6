//! X.509 authorities as a PEM bundle file: concatenated `CERTIFICATE` blocks, the form of
//! `bundle show` (default format), `trust_bundle_path` and `upstream_bundle` files.

use spire_id::TrustDomain;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Bundle, BundleError, X509Authority};

const CERTIFICATE_TAG: &str = "CERTIFICATE";

/// Reads every `CERTIFICATE` block of a PEM file as an X.509 authority, in file order and
/// without repeats. Text outside blocks is ignored; any other block type, or a block that is
/// not one DER certificate, is an error, as is a file without blocks.
pub fn parse_x509_authorities_pem(pem: &[u8]) -> Result<Vec<X509Authority>, BundleError> {
    let blocks = pem::parse_many(pem).map_err(|e| BundleError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(BundleError::NoPemBlocks);
    }
    let mut authorities: Vec<X509Authority> = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.into_iter().enumerate() {
        if block.tag() != CERTIFICATE_TAG {
            return Err(BundleError::UnexpectedPemBlock(block.tag().to_owned()));
        }
        let asn1 = block.into_contents();
        match X509Certificate::from_der(&asn1) {
            Ok(([], _)) => {}
            _ => return Err(BundleError::InvalidPemCertificate { index }),
        }
        if !authorities.iter().any(|a| a.asn1 == asn1) {
            authorities.push(X509Authority {
                asn1,
                tainted: false,
            });
        }
    }
    Ok(authorities)
}

/// Encodes DER certificates as concatenated PEM `CERTIFICATE` blocks with `\n` line endings,
/// as Go's `pem.Encode` writes them.
pub fn encode_certificates_pem<'a>(certificates: impl IntoIterator<Item = &'a [u8]>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    certificates
        .into_iter()
        .map(|der| pem::encode_config(&pem::Pem::new(CERTIFICATE_TAG, der), config))
        .collect()
}

// === impl Bundle ===

impl Bundle {
    /// The X.509 authorities as a PEM bundle (see [`encode_certificates_pem`]).
    pub fn x509_authorities_pem(&self) -> String {
        encode_certificates_pem(self.x509_authorities.iter().map(|a| a.asn1.as_slice()))
    }

    /// A bundle for `trust_domain` holding the X.509 authorities of a PEM file (see
    /// [`parse_x509_authorities_pem`]); it has no JWT authorities.
    pub fn from_x509_authorities_pem(
        trust_domain: TrustDomain,
        pem: &[u8],
    ) -> Result<Self, BundleError> {
        let mut bundle = Bundle::new(trust_domain);
        bundle.x509_authorities = parse_x509_authorities_pem(pem)?;
        Ok(bundle)
    }
}
