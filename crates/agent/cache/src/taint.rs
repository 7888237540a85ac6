//! Tainted authorities of a bundle and the credentials they signed: an X509-SVID chain is
//! affected when one of its certificates is a tainted root or was issued by one (its authority
//! key identifier is the root's subject key identifier); a JWT-SVID when its `kid` names a
//! tainted JWT key.

use std::collections::HashSet;

use spire_svid::Bundle;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The tainted X.509 authorities of one bundle.
#[derive(Debug, Default)]
pub struct TaintedAuthorities {
    certificates: HashSet<Vec<u8>>,
    key_ids: HashSet<Vec<u8>>,
}

impl TaintedAuthorities {
    /// The tainted X.509 authorities of `bundle`.
    pub fn of(bundle: &Bundle) -> Self {
        let mut tainted = Self::default();
        for authority in bundle.x509_authorities.iter().filter(|a| a.tainted) {
            tainted.certificates.insert(authority.asn1.clone());
            if let Some(ski) = extension_key_id(&authority.asn1, true) {
                tainted.key_ids.insert(ski);
            }
        }
        tainted
    }

    /// No authority is tainted.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// Whether a tainted authority signed `chain` (DER, leaf first) or is part of it.
    pub fn signed(&self, chain: &[Vec<u8>]) -> bool {
        chain.iter().any(|cert| {
            self.certificates.contains(cert)
                || extension_key_id(cert, false).is_some_and(|aki| self.key_ids.contains(&aki))
        })
    }
}

/// The key IDs of the JWT keys `bundle` marks tainted.
pub fn tainted_jwt_key_ids(bundle: &Bundle) -> HashSet<String> {
    bundle
        .jwt_authorities
        .iter()
        .filter(|k| k.tainted)
        .map(|k| k.key_id.clone())
        .collect()
}

/// The subject key identifier (`subject`) or the authority key identifier of `der`.
fn extension_key_id(der: &[u8], subject: bool) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) if subject => Some(ski.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) if !subject => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}
