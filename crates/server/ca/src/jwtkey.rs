//! JWT signing keys and JWT-SVID minting: a key-manager key with its `kid` and lifetime, the
//! signer built from it once, and [`Ca::sign_workload_jwt_svid`].

use std::fmt;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use spire_id::SpiffeId;
use spire_server_plugin::keymanager::Key;
use spire_svid::jwt::{JwtAlgorithm, JwtClaims, JwtSigner};
use spire_svid::{JwtAuthority, KeyType};
use spire_time::to_unix_seconds;

use crate::x509ca::Ca;
use crate::{Error, Result};

/// Length of a generated `kid`.
pub const KID_LEN: usize = 32;
/// The characters a generated `kid` is made of.
const KID_ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One JWT signing authority: a key-manager key, the `kid` tokens name it by, and its
/// lifetime. The signer is built once, when the key is made or loaded.
pub struct JwtKey {
    kid: String,
    key_type: KeyType,
    public_key: Vec<u8>,
    issued_at: SystemTime,
    not_after: SystemTime,
    signer: JwtSigner,
}

/// A freshly signed JWT-SVID and the times it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSvid {
    /// The compact JWS.
    pub token: String,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds (capped at the signing key's expiry).
    pub expires_at: i64,
}

// === impl JwtKey ===

impl JwtKey {
    /// Wraps a key-manager key as the JWT authority `kid`, valid from `issued_at` until
    /// `not_after` (both whole seconds, as the journal keeps them).
    pub fn new(
        key: &Key,
        kid: String,
        issued_at: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self> {
        let signer = JwtSigner::from_pkcs8(&kid, key.key_type(), key.pkcs8_der())?;
        Ok(Self {
            kid,
            key_type: key.key_type(),
            public_key: key.public_key_der(),
            issued_at,
            not_after,
            signer,
        })
    }

    /// The `kid` tokens carry; also the authority ID SPIRE shows for JWT keys.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's type (`jwt_key_type`).
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The JWS algorithm tokens are signed with (ES256 for P-256, RS256 for RSA).
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.signer.algorithm()
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    /// When the key was made.
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// End of validity; no token outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The key as published in the bundle.
    pub fn authority(&self) -> JwtAuthority {
        JwtAuthority {
            key_id: self.kid.clone(),
            public_key: self.public_key.clone(),
            expires_at: to_unix_seconds(self.not_after),
            tainted: false,
        }
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A fresh `kid`: [`KID_LEN`] characters of `[a-zA-Z0-9]`, uniformly drawn.
pub(crate) fn random_kid() -> Result<String> {
    // 248 = 4 × 62: bytes at or above it are dropped so every character is equally likely.
    const LIMIT: u8 = 248;
    let rng = SystemRandom::new();
    let mut kid = String::with_capacity(KID_LEN);
    let mut buf = [0u8; 2 * KID_LEN];
    while kid.len() < KID_LEN {
        rng.fill(&mut buf).map_err(|_| Error::Random)?;
        for byte in buf.iter().filter(|b| **b < LIMIT) {
            if kid.len() == KID_LEN {
                break;
            }
            kid.push(char::from(KID_ALPHABET[usize::from(byte % 62)]));
        }
    }
    Ok(kid)
}

// === impl Ca ===

impl Ca {
    pub(crate) fn set_active_jwt_key(&self, key: Arc<JwtKey>) {
        *self
            .active_jwt
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    /// The JWT key currently signing.
    pub fn active_jwt_key(&self) -> Result<Arc<JwtKey>> {
        self.active_jwt
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::NoActiveJwtKey)
    }

    /// `disable_jwt_svids`: the server makes no JWT keys and signs no JWT-SVIDs.
    pub fn jwt_svids_disabled(&self) -> bool {
        self.config.disable_jwt_svids
    }

    /// Mints a JWT-SVID for `spiffe_id` and `audience` with the active JWT key: `iat` now,
    /// `exp` after `ttl` (zero = `default_jwt_svid_ttl`) but never after the key expires,
    /// `iss` = `jwt_issuer` when configured.
    pub fn sign_workload_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
    ) -> Result<JwtSvid> {
        if audience.is_empty() {
            return Err(Error::InvalidRequest(
                "at least one audience is required".into(),
            ));
        }
        let key = self.active_jwt_key()?;
        let ttl = if ttl.is_zero() {
            self.config.default_jwt_svid_ttl
        } else {
            ttl
        };
        let now = self.clock.now();
        let expires = now
            .checked_add(ttl)
            .map_or(key.not_after, |t| t.min(key.not_after));
        let claims = JwtClaims {
            subject: spiffe_id.clone(),
            audience: audience.to_vec(),
            expires_at: to_unix_seconds(expires),
            issued_at: to_unix_seconds(now),
            issuer: self.config.jwt_issuer.clone(),
        };
        let token = key.signer.sign(&claims)?;
        Ok(JwtSvid {
            token,
            issued_at: claims.issued_at,
            expires_at: claims.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn kids_are_32_alphanumerics_and_differ() {
        let a = random_kid().unwrap();
        let b = random_kid().unwrap();
        for kid in [&a, &b] {
            assert_eq!(kid.len(), KID_LEN);
            assert!(kid.bytes().all(|c| c.is_ascii_alphanumeric()), "{kid}");
        }
        assert_ne!(a, b);
    }
}
