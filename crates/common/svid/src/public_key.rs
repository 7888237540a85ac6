//! Public keys in the two shapes the bundle document needs: JWK parameters (RFC 7518 §6,
//! RFC 8037 §2) and DER `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7).
//!
//! Parsing SPKI is x509-parser's job; building SPKI from JWK parameters uses the tiny DER
//! writer at the bottom of this file, which only has to emit the three fixed shapes below.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ECDSA_P521_SHA512_ASN1, ParsedPublicKey,
    VerificationAlgorithm,
};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a public key could not be read or converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The bytes are not a DER `SubjectPublicKeyInfo` (or have trailing bytes).
    #[error("malformed SubjectPublicKeyInfo")]
    MalformedSpki,
    /// The SPKI algorithm or curve is not one we can express as a JWK.
    #[error("unsupported public key algorithm")]
    UnsupportedAlgorithm,
    /// A JWK parameter the key type needs is absent.
    #[error("missing {0:?} parameter")]
    MissingParameter(&'static str),
    /// A JWK parameter is not base64url.
    #[error("{0:?} parameter is not valid base64url")]
    BadBase64(&'static str),
    /// An EC coordinate or an Ed25519 key whose length does not fit the curve.
    #[error("{0:?} parameter has the wrong length for the curve")]
    WrongLength(&'static str),
    /// An EC point that is not on its declared curve (or is not an uncompressed point).
    #[error("invalid EC key: point is not on the declared curve")]
    NotOnCurve,
    /// An RSA modulus or exponent that is zero or empty.
    #[error("invalid RSA key: modulus and exponent must be positive")]
    BadRsaParameters,
}

/// NIST curves SPIRE keys may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EcCurve {
    P256,
    P384,
    P521,
}

/// A public key reduced to the numbers that identify it, in canonical form: EC coordinates
/// padded to the curve size, RSA integers big-endian without leading zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PublicKeyParams {
    Ec {
        curve: EcCurve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

/// The key members of a JWK, as strings (base64url for the numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JwkKeyMembers {
    pub(crate) kty: String,
    pub(crate) crv: Option<String>,
    pub(crate) x: Option<String>,
    pub(crate) y: Option<String>,
    pub(crate) n: Option<String>,
    pub(crate) e: Option<String>,
}

const ED25519_KEY_LEN: usize = 32;

// === impl EcCurve ===

impl EcCurve {
    fn from_jwk_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    fn jwk_name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// Bytes per coordinate: ceil(bits / 8).
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The DER of the curve's named-curve OID, tag and length included.
    fn oid_tlv(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7
            Self::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.34
            Self::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            // 1.3.132.0.35
            Self::P521 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
        }
    }

    fn verification_alg(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::P256 => &ECDSA_P256_SHA256_ASN1,
            Self::P384 => &ECDSA_P384_SHA384_ASN1,
            Self::P521 => &ECDSA_P521_SHA512_ASN1,
        }
    }
}

// === impl PublicKeyParams ===

impl PublicKeyParams {
    /// An EC key from its coordinates, checked to be a point of `curve`.
    fn ec(curve: EcCurve, x: Vec<u8>, y: Vec<u8>) -> Result<Self, PublicKeyError> {
        let len = curve.coordinate_len();
        if x.len() != len {
            return Err(PublicKeyError::WrongLength("x"));
        }
        if y.len() != len {
            return Err(PublicKeyError::WrongLength("y"));
        }
        let key = Self::Ec { curve, x, y };
        ParsedPublicKey::new(curve.verification_alg(), key.ec_point())
            .map_err(|_| PublicKeyError::NotOnCurve)?;
        Ok(key)
    }

    /// An RSA key from its big-endian integers; leading zero bytes are dropped.
    fn rsa(n: &[u8], e: &[u8]) -> Result<Self, PublicKeyError> {
        let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
        if n.is_empty() || e.is_empty() {
            return Err(PublicKeyError::BadRsaParameters);
        }
        Ok(Self::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    }

    fn ed25519(x: Vec<u8>) -> Result<Self, PublicKeyError> {
        if x.len() != ED25519_KEY_LEN {
            return Err(PublicKeyError::WrongLength("x"));
        }
        Ok(Self::Ed25519 { x })
    }

    /// Reads a DER `SubjectPublicKeyInfo`.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, PublicKeyError> {
        let (rest, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|_| PublicKeyError::MalformedSpki)?;
        if !rest.is_empty() {
            return Err(PublicKeyError::MalformedSpki);
        }
        Self::from_spki(&spki)
    }

    /// Reads an already parsed `SubjectPublicKeyInfo` (e.g. a certificate's).
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, PublicKeyError> {
        let algorithm = &spki.algorithm.algorithm;
        if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or(PublicKeyError::UnsupportedAlgorithm)?;
            let curve = if curve_oid == OID_EC_P256 {
                EcCurve::P256
            } else if curve_oid == OID_NIST_EC_P384 {
                EcCurve::P384
            } else if curve_oid == OID_NIST_EC_P521 {
                EcCurve::P521
            } else {
                return Err(PublicKeyError::UnsupportedAlgorithm);
            };
            let point: &[u8] = &spki.subject_public_key.data;
            let len = curve.coordinate_len();
            // Only the uncompressed form, 0x04 || x || y.
            if point.len() != 1 + 2 * len || point[0] != 0x04 {
                return Err(PublicKeyError::NotOnCurve);
            }
            Self::ec(curve, point[1..=len].to_vec(), point[1 + len..].to_vec())
        } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => Self::rsa(rsa.modulus, rsa.exponent),
                _ => Err(PublicKeyError::MalformedSpki),
            }
        } else if *algorithm == OID_SIG_ED25519 {
            Self::ed25519(spki.subject_public_key.data.to_vec())
        } else {
            Err(PublicKeyError::UnsupportedAlgorithm)
        }
    }

    /// True for the JWK key types (and curves) we can read. The bundle rules say keys of any
    /// other type are ignored rather than rejected.
    pub(crate) fn is_supported_jwk(kty: &str, crv: Option<&str>) -> bool {
        match kty {
            "EC" => crv.and_then(EcCurve::from_jwk_name).is_some(),
            "RSA" => true,
            "OKP" => crv == Some("Ed25519"),
            _ => false,
        }
    }

    /// Reads JWK key members. `Ok(None)` means a type [`Self::is_supported_jwk`] rejects.
    pub(crate) fn from_jwk(jwk: &JwkKeyMembers) -> Result<Option<Self>, PublicKeyError> {
        if !Self::is_supported_jwk(&jwk.kty, jwk.crv.as_deref()) {
            return Ok(None);
        }
        let key = match (
            jwk.kty.as_str(),
            jwk.crv.as_deref().and_then(EcCurve::from_jwk_name),
        ) {
            ("EC", Some(curve)) => {
                let x = decode_member("x", jwk.x.as_deref())?;
                let y = decode_member("y", jwk.y.as_deref())?;
                Self::ec(curve, x, y)?
            }
            ("RSA", _) => {
                let n = decode_member("n", jwk.n.as_deref())?;
                let e = decode_member("e", jwk.e.as_deref())?;
                Self::rsa(&n, &e)?
            }
            _ => Self::ed25519(decode_member("x", jwk.x.as_deref())?)?,
        };
        Ok(Some(key))
    }

    /// The JWK key members for this key.
    pub(crate) fn to_jwk(&self) -> JwkKeyMembers {
        match self {
            Self::Ec { curve, x, y } => JwkKeyMembers {
                kty: "EC".to_owned(),
                crv: Some(curve.jwk_name().to_owned()),
                x: Some(encode_b64url(x)),
                y: Some(encode_b64url(y)),
                ..JwkKeyMembers::default()
            },
            Self::Rsa { n, e } => JwkKeyMembers {
                kty: "RSA".to_owned(),
                n: Some(encode_b64url(n)),
                e: Some(encode_b64url(e)),
                ..JwkKeyMembers::default()
            },
            Self::Ed25519 { x } => JwkKeyMembers {
                kty: "OKP".to_owned(),
                crv: Some("Ed25519".to_owned()),
                x: Some(encode_b64url(x)),
                ..JwkKeyMembers::default()
            },
        }
    }

    /// The canonical DER `SubjectPublicKeyInfo` for this key.
    pub(crate) fn to_spki_der(&self) -> Vec<u8> {
        let mut algorithm = Vec::new();
        let mut key_bits = vec![0x00]; // no unused bits
        match self {
            Self::Ec { curve, .. } => {
                // id-ecPublicKey 1.2.840.10045.2.1, then the named curve.
                algorithm
                    .extend_from_slice(&[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
                algorithm.extend_from_slice(curve.oid_tlv());
                key_bits.extend_from_slice(&self.ec_point());
            }
            Self::Rsa { n, e } => {
                // rsaEncryption 1.2.840.113549.1.1.1 with NULL parameters.
                algorithm.extend_from_slice(&[
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
                ]);
                let mut integers = Vec::new();
                der_unsigned_integer(n, &mut integers);
                der_unsigned_integer(e, &mut integers);
                der_tlv(TAG_SEQUENCE, &integers, &mut key_bits);
            }
            Self::Ed25519 { x } => {
                // id-Ed25519 1.3.101.112, parameters absent.
                algorithm.extend_from_slice(&[0x06, 0x03, 0x2b, 0x65, 0x70]);
                key_bits.extend_from_slice(x);
            }
        }
        let mut body = Vec::new();
        der_tlv(TAG_SEQUENCE, &algorithm, &mut body);
        der_tlv(TAG_BIT_STRING, &key_bits, &mut body);
        let mut spki = Vec::new();
        der_tlv(TAG_SEQUENCE, &body, &mut spki);
        spki
    }

    /// `0x04 || x || y` for EC keys; empty for the others.
    fn ec_point(&self) -> Vec<u8> {
        match self {
            Self::Ec { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                point
            }
            Self::Rsa { .. } | Self::Ed25519 { .. } => Vec::new(),
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Base64url without padding (RFC 7515 §2), as JWK numbers are written.
pub(crate) fn encode_b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, tolerating (as go-jose does) trailing `=` padding.
fn decode_member(name: &'static str, value: Option<&str>) -> Result<Vec<u8>, PublicKeyError> {
    use base64::Engine as _;
    let value = value.ok_or(PublicKeyError::MissingParameter(name))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| PublicKeyError::BadBase64(name))
}

// === DER writer ===

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_SEQUENCE: u8 = 0x30;

/// Appends one DER tag-length-value with a definite, minimal length.
fn der_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_leading_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

/// Appends a non-negative INTEGER from big-endian magnitude bytes without leading zeros.
fn der_unsigned_integer(magnitude: &[u8], out: &mut Vec<u8>) {
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0x00);
    }
    content.extend_from_slice(magnitude);
    der_tlv(TAG_INTEGER, &content, out);
}

#[cfg(test)]
mod tests;
