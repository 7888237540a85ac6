//! KeyManager: where the agent's own SVID key is generated and kept.

mod disk;
mod memory;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use spire_svid::KeyType;

pub use disk::{DiskKeyManager, KEYS_FILE};
pub use memory::MemoryKeyManager;

use crate::{Error, Result};

/// Generates and keeps named private keys. Generating under an existing ID replaces that key.
#[async_trait]
pub trait KeyManager: Send + Sync + fmt::Debug + 'static {
    /// The plugin name used in configuration.
    fn name(&self) -> &'static str;
    /// Whether keys survive a restart (`disk`); an agent with a volatile key manager must
    /// attest again after every restart.
    fn is_persistent(&self) -> bool;
    /// Makes a new key of `key_type` under `id`, replacing any key with that ID. The key is
    /// stored before it is returned.
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key>;
    /// The key stored under `id`.
    async fn key(&self, id: &str) -> Result<Option<Key>>;
}

/// A private key held by a key manager; cheap to clone, usable as an rcgen signer.
#[derive(Clone)]
pub struct Key {
    id: Arc<str>,
    key_type: KeyType,
    pair: Arc<rcgen::KeyPair>,
}

// === impl Key ===

impl Key {
    /// Generates a fresh key of `key_type`.
    pub fn generate(id: &str, key_type: KeyType) -> Result<Self> {
        let pair = match key_type {
            KeyType::EcP256 | KeyType::EcP384 => rcgen::KeyPair::generate_for(algorithm(key_type)),
            KeyType::Rsa2048 => {
                rcgen::KeyPair::generate_rsa_for(algorithm(key_type), rcgen::RsaKeySize::_2048)
            }
            KeyType::Rsa4096 => {
                rcgen::KeyPair::generate_rsa_for(algorithm(key_type), rcgen::RsaKeySize::_4096)
            }
        }
        .map_err(|e| Error::crypto(format!("generating {key_type} key {id:?}"), e))?;
        Ok(Self::from_pair(id, key_type, pair))
    }

    /// Loads a PKCS#8 DER private key that was stored as `key_type`.
    pub fn from_pkcs8(id: &str, key_type: KeyType, pkcs8_der: &[u8]) -> Result<Self> {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8_der);
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, algorithm(key_type))
            .map_err(|e| Error::crypto(format!("loading {key_type} key {id:?}"), e))?;
        Ok(Self::from_pair(id, key_type, pair))
    }

    fn from_pair(id: &str, key_type: KeyType, pair: rcgen::KeyPair) -> Self {
        Self {
            id: id.into(),
            key_type,
            pair: Arc::new(pair),
        }
    }

    /// The ID the key manager keeps it under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// The private key as PKCS#8 DER (for the TLS client identity and persistence).
    pub fn pkcs8_der(&self) -> &[u8] {
        self.pair.serialized_der()
    }

    /// A PKCS#10 request (DER) for this key with an empty subject and no SANs: the server
    /// takes only the public key and decides the identity itself.
    pub fn csr_der(&self) -> Result<Vec<u8>> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(self)
            .map_err(|e| Error::crypto("building CSR", e))?;
        Ok(csr.der().to_vec())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl PublicKeyData for Key {
    fn der_bytes(&self) -> &[u8] {
        self.pair.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.pair.algorithm()
    }
}

impl SigningKey for Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair.sign(msg)
    }
}

/// The signature algorithm each key type signs with.
pub fn algorithm(key_type: KeyType) -> &'static SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

#[cfg(test)]
mod tests;
