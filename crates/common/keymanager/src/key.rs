//! [`Key`]: a private key held by a key manager, and the map the built-ins keep keys in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use spire_svid::KeyType;

use crate::{Error, Result};

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

    /// Wraps an already loaded key pair (e.g. an upstream CA key read from PEM).
    pub fn from_pair(id: &str, key_type: KeyType, pair: rcgen::KeyPair) -> Self {
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

    /// The private key as PKCS#8 DER (for persistence and TLS client identities).
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

/// The signature algorithm each key type signs certificates (and CSRs) with.
pub fn algorithm(key_type: KeyType) -> &'static SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

/// The keys a key manager holds, by ID.
#[derive(Debug, Default)]
pub(crate) struct KeyMap(Mutex<BTreeMap<String, Key>>);

// === impl KeyMap ===

impl KeyMap {
    pub(crate) fn new(keys: BTreeMap<String, Key>) -> Self {
        Self(Mutex::new(keys))
    }

    /// Exclusive access, for changes.
    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Key>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key stored under `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Key> {
        self.lock().get(id).cloned()
    }
}
