use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The key types SPIRE accepts for `ca_key_type`, `jwt_key_type` and workload keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// ECDSA over P-256 with SHA-256 (SPIRE's default everywhere).
    #[default]
    #[serde(rename = "ec-p256")]
    EcP256,
    /// ECDSA over P-384 with SHA-384.
    #[serde(rename = "ec-p384")]
    EcP384,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 4096 with PKCS#1 v1.5 SHA-256 signatures.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

/// A key-type name SPIRE does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key type {0:?} is unknown; expected one of ec-p256, ec-p384, rsa-2048, rsa-4096")]
pub struct UnknownKeyType(pub String);

// === impl KeyType ===

impl KeyType {
    /// The configuration name, e.g. `ec-p256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcP256 => "ec-p256",
            Self::EcP384 => "ec-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa4096 => "rsa-4096",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = UnknownKeyType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ec-p256" => Ok(Self::EcP256),
            "ec-p384" => Ok(Self::EcP384),
            "rsa-2048" => Ok(Self::Rsa2048),
            "rsa-4096" => Ok(Self::Rsa4096),
            other => Err(UnknownKeyType(other.to_owned())),
        }
    }
}
