//! The SPIFFE bundle document (SPIFFE_Trust_Domain_and_Bundle.md §4): a JWK set whose keys
//! carry `use` `x509-svid` (one CA certificate in `x5c`) or `jwt-svid` (with a `kid`), plus
//! `spiffe_sequence` and `spiffe_refresh_hint`. The output matches SPIRE's byte for byte:
//! 4-space indentation, go-jose member order and Go's string escaping.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use spire_id::TrustDomain;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::public_key::{JwkKeyMembers, PublicKeyError, PublicKeyParams};
use crate::{Bundle, JwtAuthority, X509Authority};

mod go_json;

/// `use` of a JWK that holds an X.509 authority.
pub const X509_SVID_USE: &str = "x509-svid";
/// `use` of a JWK that holds a JWT signing key.
pub const JWT_SVID_USE: &str = "jwt-svid";

/// Why a bundle document (JSON or PEM) was refused. Messages are go-spiffe's where it has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not JSON, or a member of the wrong JSON type.
    #[error("unable to decode bundle: {0}")]
    Decode(String),
    /// The document has no `keys` member (an empty array is fine).
    #[error("no authorities found")]
    NoAuthorities,
    /// An `x509-svid` key whose `x5c` does not hold exactly one certificate.
    #[error("expected a single certificate in x509-svid entry {index}; got {count}")]
    CertificateCount {
        /// Position of the key in `keys`.
        index: usize,
        /// How many certificates `x5c` held.
        count: usize,
    },
    /// A `jwt-svid` key without a `kid`.
    #[error("error adding authority {index} of JWKS: keyID cannot be empty")]
    MissingKeyId {
        /// Position of the key in `keys`.
        index: usize,
    },
    /// A key whose parameters are missing or malformed.
    #[error("invalid key in entry {index}: {source}")]
    InvalidKey {
        /// Position of the key in `keys`.
        index: usize,
        /// What is wrong with it.
        source: PublicKeyError,
    },
    /// An `x5c` value that is not base64 DER of one X.509 certificate.
    #[error("invalid certificate in x509-svid entry {index}")]
    InvalidCertificate {
        /// Position of the key in `keys`.
        index: usize,
    },
    /// An `x509-svid` key whose JWK parameters are not the certificate's public key.
    #[error("invalid JWK in x509-svid entry {index}: public keys mismatch")]
    CertificateKeyMismatch {
        /// Position of the key in `keys`.
        index: usize,
    },
    /// A PEM bundle with no PEM block at all.
    #[error("no PEM blocks found")]
    NoPemBlocks,
    /// A PEM bundle that cannot be split into blocks.
    #[error("unable to parse PEM: {0}")]
    Pem(String),
    /// A PEM block that is not a certificate.
    #[error("expected block type \"CERTIFICATE\"; got {0:?}")]
    UnexpectedPemBlock(String),
    /// A PEM certificate block whose content is not one DER certificate.
    #[error("unable to parse certificate in PEM block {index}")]
    InvalidPemCertificate {
        /// Position of the block in the file.
        index: usize,
    },
}

/// The document as it is on the wire. Member order is go-jose's.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<Jwk>>,
    #[serde(rename = "spiffe_sequence", skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    #[serde(
        rename = "spiffe_refresh_hint",
        skip_serializing_if = "Option::is_none"
    )]
    refresh_hint: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Jwk {
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    key_use: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5c: Option<Vec<String>>,
}

// === impl Bundle ===

impl Bundle {
    /// The SPIFFE bundle document for this bundle, formatted as SPIRE formats it: X.509
    /// authorities first, then JWT authorities; `spiffe_sequence` and `spiffe_refresh_hint`
    /// left out when 0. An authority whose public key cannot be written as a JWK (a corrupt
    /// certificate, an unsupported algorithm) is written without key members, so consumers
    /// skip it.
    pub fn to_spiffe_json(&self) -> String {
        let x509 = self.x509_authorities.iter().map(|authority| {
            let key = X509Certificate::from_der(&authority.asn1)
                .ok()
                .and_then(|(_, cert)| PublicKeyParams::from_spki(cert.public_key()).ok());
            let mut jwk = Jwk::with_key(X509_SVID_USE, key.as_ref());
            jwk.x5c = Some(vec![STANDARD.encode(&authority.asn1)]);
            jwk
        });
        let jwt = self.jwt_authorities.iter().map(|authority| {
            let key = PublicKeyParams::from_spki_der(&authority.public_key).ok();
            let mut jwk = Jwk::with_key(JWT_SVID_USE, key.as_ref());
            jwk.kid = Some(authority.key_id.clone());
            jwk
        });
        let document = Document {
            keys: Some(x509.chain(jwt).collect()),
            sequence: Some(self.sequence_number).filter(|&s| s != 0),
            refresh_hint: Some(self.refresh_hint).filter(|&h| h != 0),
        };
        go_json::to_string_indented(&document)
    }

    /// The bundle's JWT authorities as a standard JWK set (RFC 7517 §5): no `use`, no
    /// `spiffe_*` members, X.509 authorities left out. This is what the Workload API's
    /// `FetchJWTBundles` hands to JWT validators.
    pub fn to_jwks_json(&self) -> String {
        let keys = self.jwt_authorities.iter().map(|authority| {
            let key = PublicKeyParams::from_spki_der(&authority.public_key).ok();
            let mut jwk = Jwk::with_key(JWT_SVID_USE, key.as_ref());
            jwk.key_use = None;
            jwk.kid = Some(authority.key_id.clone());
            jwk
        });
        let document = Document {
            keys: Some(keys.collect()),
            ..Document::default()
        };
        go_json::to_string_indented(&document)
    }

    /// Parses a SPIFFE bundle document for `trust_domain`.
    ///
    /// Keys with a missing or unknown `use`, or an unknown `kty`/curve, are ignored. An
    /// `x509-svid` key needs exactly one certificate in `x5c` whose public key is the JWK's;
    /// a `jwt-svid` key needs a `kid`. Repeated certificates collapse into one authority, and
    /// a repeated `kid` keeps the last key. Taint flags and expiry are not part of the
    /// document and come back unset.
    pub fn from_spiffe_json(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let document: Document =
            serde_json::from_slice(json).map_err(|e| BundleError::Decode(e.to_string()))?;
        let keys = document.keys.ok_or(BundleError::NoAuthorities)?;
        let mut bundle = Bundle::new(trust_domain);
        bundle.sequence_number = document.sequence.unwrap_or(0);
        bundle.refresh_hint = document.refresh_hint.unwrap_or(0);
        for (index, jwk) in keys.into_iter().enumerate() {
            match jwk.key_use.as_deref() {
                Some(X509_SVID_USE) => {
                    if let Some(asn1) = jwk.x509_authority(index)?
                        && !bundle.x509_authorities.iter().any(|a| a.asn1 == asn1)
                    {
                        bundle.x509_authorities.push(X509Authority {
                            asn1,
                            tainted: false,
                        });
                    }
                }
                Some(JWT_SVID_USE) => {
                    if let Some(authority) = jwk.jwt_authority(index)? {
                        let existing = bundle
                            .jwt_authorities
                            .iter_mut()
                            .find(|a| a.key_id == authority.key_id);
                        match existing {
                            Some(slot) => *slot = authority,
                            None => bundle.jwt_authorities.push(authority),
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(bundle)
    }
}

// === impl Jwk ===

impl Jwk {
    fn with_key(key_use: &str, key: Option<&PublicKeyParams>) -> Self {
        let mut jwk = Self {
            key_use: Some(key_use.to_owned()),
            ..Self::default()
        };
        if let Some(key) = key {
            let members = key.to_jwk();
            jwk.kty = Some(members.kty);
            jwk.crv = members.crv;
            jwk.x = members.x;
            jwk.y = members.y;
            jwk.n = members.n;
            jwk.e = members.e;
        }
        jwk
    }

    /// True when the key has a `kty` (and curve) we can read; other keys are ignored.
    fn is_supported(&self) -> bool {
        self.kty
            .as_deref()
            .is_some_and(|kty| PublicKeyParams::is_supported_jwk(kty, self.crv.as_deref()))
    }

    /// The public key of a key that [`Self::is_supported`].
    fn public_key(&self, index: usize) -> Result<PublicKeyParams, BundleError> {
        let members = JwkKeyMembers {
            kty: self.kty.clone().unwrap_or_default(),
            crv: self.crv.clone(),
            x: self.x.clone(),
            y: self.y.clone(),
            n: self.n.clone(),
            e: self.e.clone(),
        };
        match PublicKeyParams::from_jwk(&members) {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(BundleError::InvalidKey {
                index,
                source: PublicKeyError::UnsupportedAlgorithm,
            }),
            Err(source) => Err(BundleError::InvalidKey { index, source }),
        }
    }

    /// The DER certificate of an `x509-svid` key, `Ok(None)` when the key is to be ignored.
    fn x509_authority(&self, index: usize) -> Result<Option<Vec<u8>>, BundleError> {
        if !self.is_supported() {
            return Ok(None);
        }
        let certificates = self.x5c.as_deref().unwrap_or_default();
        if certificates.len() != 1 {
            return Err(BundleError::CertificateCount {
                index,
                count: certificates.len(),
            });
        }
        let key = self.public_key(index)?;
        let der = STANDARD
            .decode(&certificates[0])
            .map_err(|_| BundleError::InvalidCertificate { index })?;
        let cert_key = match X509Certificate::from_der(&der) {
            Ok(([], cert)) => PublicKeyParams::from_spki(cert.public_key()).ok(),
            _ => return Err(BundleError::InvalidCertificate { index }),
        };
        if cert_key.as_ref() != Some(&key) {
            return Err(BundleError::CertificateKeyMismatch { index });
        }
        Ok(Some(der))
    }

    /// The authority of a `jwt-svid` key, `Ok(None)` when the key is to be ignored.
    fn jwt_authority(&self, index: usize) -> Result<Option<JwtAuthority>, BundleError> {
        if !self.is_supported() {
            return Ok(None);
        }
        let key_id = self.kid.clone().unwrap_or_default();
        if key_id.is_empty() {
            return Err(BundleError::MissingKeyId { index });
        }
        let key = self.public_key(index)?;
        Ok(Some(JwtAuthority {
            key_id,
            public_key: key.to_spki_der(),
            expires_at: 0,
            tainted: false,
        }))
    }
}

#[cfg(test)]
mod tests;
