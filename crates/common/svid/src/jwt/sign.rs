//! Minting JWT-SVIDs.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde::Serialize;
use spire_id::SpiffeId;

use super::{JwtAlgorithm, JwtError, b64url};
use crate::KeyType;

/// What a JWT-SVID asserts. The server fills it from the entry, never from the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtClaims {
    /// `sub`: the workload's SPIFFE ID.
    pub subject: SpiffeId,
    /// `aud`: one or more audiences; always written as a list.
    pub audience: Vec<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `iss` (`jwt_issuer`), left out when `None`.
    pub issuer: Option<String>,
}

/// A JWT authority's private key, ready to sign: the header is encoded once, so a token costs
/// one claims encoding and one signature.
pub struct JwtSigner {
    kid: String,
    algorithm: JwtAlgorithm,
    key: SigningKey,
    /// `base64url(header) + "."`.
    header_prefix: String,
    rng: SystemRandom,
}

enum SigningKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The payload as SPIRE writes it: members in Go's map order (sorted).
#[derive(Serialize)]
struct Payload<'a> {
    aud: &'a [String],
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    sub: &'a SpiffeId,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

// === impl JwtSigner ===

impl JwtSigner {
    /// Loads a PKCS#8 private key of `key_type` to sign as `kid`. EC keys sign with ES256 or
    /// ES384 by curve and RSA keys with RS256, as SPIRE does.
    pub fn from_pkcs8(kid: &str, key_type: KeyType, pkcs8_der: &[u8]) -> Result<Self, JwtError> {
        let unusable = |e: aws_lc_rs::error::KeyRejected| {
            JwtError::Signing(format!("unusable {key_type} key {kid:?}: {e}"))
        };
        let (algorithm, key) = match key_type {
            KeyType::EcP256 => (
                JwtAlgorithm::Es256,
                SigningKey::Ecdsa(
                    EcdsaKeyPair::from_pkcs8(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        pkcs8_der,
                    )
                    .map_err(unusable)?,
                ),
            ),
            KeyType::EcP384 => (
                JwtAlgorithm::Es384,
                SigningKey::Ecdsa(
                    EcdsaKeyPair::from_pkcs8(
                        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                        pkcs8_der,
                    )
                    .map_err(unusable)?,
                ),
            ),
            KeyType::Rsa2048 | KeyType::Rsa4096 => (
                JwtAlgorithm::Rs256,
                SigningKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8_der).map_err(unusable)?),
            ),
        };
        let header = serde_json::to_vec(&Header {
            alg: algorithm.as_str(),
            kid,
            typ: "JWT",
        })
        .map_err(|e| JwtError::Signing(e.to_string()))?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm,
            key,
            header_prefix: format!("{}.", b64url(&header)),
            rng: SystemRandom::new(),
        })
    }

    /// The `kid` tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign(&self, claims: &JwtClaims) -> Result<String, JwtError> {
        let payload = serde_json::to_vec(&Payload {
            aud: &claims.audience,
            exp: claims.expires_at,
            iat: claims.issued_at,
            iss: claims.issuer.as_deref(),
            sub: &claims.subject,
        })
        .map_err(|e| JwtError::Signing(e.to_string()))?;
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 2 + 140);
        token.push_str(&self.header_prefix);
        token.push_str(&b64url(&payload));
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64url(&signature));
        Ok(token)
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, JwtError> {
        let failed = |_| JwtError::Signing("signature failed".to_owned());
        match &self.key {
            SigningKey::Ecdsa(pair) => Ok(pair
                .sign(&self.rng, message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            SigningKey::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}
