//! JWT-SVIDs (JWT-SVID.md): compact JWS tokens signed by a trust domain's JWT authority.
//!
//! [`JwtSigner`] mints them the way SPIRE does (header `alg`, `kid`, `typ: JWT`; claims `aud`
//! as a list, `exp`, `iat`, optional `iss`, `sub`). [`validate_jwt_svid`] applies SPIRE's
//! validation rules in SPIRE's order and fails with SPIRE's messages, which Workload API
//! clients see verbatim. [`parse_jwt_svid_unverified`] reads the claims an agent needs to
//! cache a token it was handed by its server.
//!
//! Compact serialization only: a JWS in JSON form, or with more than one signature, is not a
//! JWT-SVID. The crypto is aws-lc-rs; the JOSE framing is a split on `.` and two JSON
//! documents, small enough that a general JOSE library would add only surface.

use std::fmt;

use spire_id::go_fmt::{quote, quote_list};

mod sign;
mod validate;

pub use sign::{JwtClaims, JwtSigner};
pub use validate::{
    JWT_LEEWAY_SECONDS, UnverifiedJwtSvid, ValidatedJwtSvid, parse_jwt_svid_unverified,
    validate_jwt_svid,
};

/// The JWS algorithms a JWT-SVID may be signed with (JWT-SVID.md §3), in the order SPIRE lists
/// them in its error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// ECDSA P-256 SHA-256.
    Es256,
    /// ECDSA P-384 SHA-384.
    Es384,
    /// ECDSA P-521 SHA-512.
    Es512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    Rs512,
    /// RSASSA-PSS SHA-256.
    Ps256,
    /// RSASSA-PSS SHA-384.
    Ps384,
    /// RSASSA-PSS SHA-512.
    Ps512,
}

/// Every allowed algorithm, in SPIRE's order.
pub const JWT_ALGORITHMS: [JwtAlgorithm; 9] = [
    JwtAlgorithm::Es256,
    JwtAlgorithm::Es384,
    JwtAlgorithm::Es512,
    JwtAlgorithm::Rs256,
    JwtAlgorithm::Rs384,
    JwtAlgorithm::Rs512,
    JwtAlgorithm::Ps256,
    JwtAlgorithm::Ps384,
    JwtAlgorithm::Ps512,
];

/// Why a JWT-SVID could not be minted or was refused. `Display` is the message SPIRE returns
/// for the same failure (Workload API `ValidateJWTSVID` sends it as the status message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a compact JWS with a readable header, or an algorithm outside the allow-list.
    #[error("unable to parse JWT token: {0}")]
    Parse(String),
    /// The header has no `kid`.
    #[error("token header missing key id")]
    MissingKeyId,
    /// The header's `typ` is present and neither `JWT` nor `JOSE`.
    #[error("token header type not equal to either JWT or JOSE")]
    BadType,
    /// The payload is not a JSON object with well-typed registered claims.
    #[error("unable to get claims from token: {0}")]
    Claims(String),
    /// No `sub`.
    #[error("token missing subject claim")]
    MissingSubject,
    /// No `exp`.
    #[error("token missing exp claim")]
    MissingExpiry,
    /// `sub` is not a SPIFFE ID.
    #[error("token has in invalid subject claim: {0}")]
    InvalidSubject(String),
    /// No bundle (or no JWT authority) for the subject's trust domain.
    #[error("no keys found for trust domain {}", quote(.0))]
    NoKeys(String),
    /// The trust domain has keys, but none with this `kid`.
    #[error("public key {} not found in trust domain {}", quote(.kid), quote(.trust_domain))]
    KeyNotFound {
        /// The token's `kid`.
        kid: String,
        /// The subject's trust domain.
        trust_domain: String,
    },
    /// The signature does not verify with the key (or the key does not suit the algorithm).
    #[error("go-jose/go-jose: error in cryptographic primitive")]
    Signature,
    /// `aud` does not contain any expected audience.
    #[error("expected audience in {} (audience={})", quote_list(.expected), quote_list(.actual))]
    Audience {
        /// The audiences the validator accepts.
        expected: Vec<String>,
        /// The token's audiences.
        actual: Vec<String>,
    },
    /// `exp` is more than the leeway in the past.
    #[error("token has expired")]
    Expired,
    /// `nbf` is more than the leeway in the future.
    #[error("go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)")]
    NotValidYet,
    /// `iat` is more than the leeway in the future.
    #[error("go-jose/go-jose/jwt: validation field, token issued in the future (iat)")]
    IssuedInTheFuture,
    /// The signing key cannot be used (wrong type, unreadable PKCS#8) or signing failed.
    #[error("unable to sign JWT-SVID: {0}")]
    Signing(String),
}

// === impl JwtAlgorithm ===

impl JwtAlgorithm {
    /// The JOSE name, e.g. `ES256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
        }
    }

    /// The algorithm with this JOSE name, if it is allowed for JWT-SVIDs.
    pub fn from_name(name: &str) -> Option<Self> {
        JWT_ALGORITHMS.into_iter().find(|a| a.as_str() == name)
    }

    fn is_ecdsa(self) -> bool {
        matches!(self, Self::Es256 | Self::Es384 | Self::Es512)
    }

    fn verification(self) -> &'static dyn aws_lc_rs::signature::VerificationAlgorithm {
        use aws_lc_rs::signature as s;
        match self {
            Self::Es256 => &s::ECDSA_P256_SHA256_FIXED,
            Self::Es384 => &s::ECDSA_P384_SHA384_FIXED,
            Self::Es512 => &s::ECDSA_P521_SHA512_FIXED,
            Self::Rs256 => &s::RSA_PKCS1_2048_8192_SHA256,
            Self::Rs384 => &s::RSA_PKCS1_2048_8192_SHA384,
            Self::Rs512 => &s::RSA_PKCS1_2048_8192_SHA512,
            Self::Ps256 => &s::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &s::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &s::RSA_PSS_2048_8192_SHA512,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Base64url without padding, as JWS segments are written.
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests;
