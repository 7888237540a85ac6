use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::NodeAttestor;
use crate::{Error, Result};

/// Nonce length on both sides of the exchange.
const NONCE_LEN: usize = 32;

/// `NodeAttestor "x509pop"` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct X509PopConfig {
    /// `private_key_path`: PEM key (PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub private_key_path: PathBuf,
    /// `certificate_path`: PEM certificate, leaf first (more certificates may follow).
    pub certificate_path: PathBuf,
    /// `intermediates_path`: optional PEM intermediates appended after the certificate file's.
    pub intermediates_path: Option<PathBuf>,
}

/// `NodeAttestor "x509pop"`: proves possession of a certificate's private key. The files are
/// read on every attestation, so a renewed certificate is picked up by the next
/// re-attestation. ECDSA keys on P-256 and P-521 and RSA keys are supported (Go signs the
/// SHA-256 digest as-is, which aws-lc-rs can reproduce only for those curves).
#[derive(Debug)]
pub struct X509PopAttestor {
    config: X509PopConfig,
}

/// `{"certificates": [<base64 DER>, …]}`.
#[derive(Serialize, Deserialize)]
struct AttestationPayload {
    certificates: Vec<String>,
}

#[derive(Deserialize)]
struct Challenge {
    #[serde(default)]
    rsa_signature: Option<NonceChallenge>,
    #[serde(default)]
    ecdsa_signature: Option<NonceChallenge>,
}

#[derive(Deserialize)]
struct NonceChallenge {
    nonce: String,
}

#[derive(Serialize, Default)]
struct Response {
    #[serde(skip_serializing_if = "Option::is_none")]
    rsa_signature: Option<RsaResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ecdsa_signature: Option<EcdsaResponse>,
}

#[derive(Serialize)]
struct RsaResponse {
    nonce: String,
    signature: String,
}

#[derive(Serialize)]
struct EcdsaResponse {
    nonce: String,
    r: String,
    s: String,
}

enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

// === impl X509PopAttestor ===

impl X509PopAttestor {
    /// Checks that the configured files exist and hold a certificate and its key.
    pub fn new(config: X509PopConfig) -> Result<Self> {
        if config.private_key_path.as_os_str().is_empty() {
            return Err(Error::Config("private_key_path is required".into()));
        }
        if config.certificate_path.as_os_str().is_empty() {
            return Err(Error::Config("certificate_path is required".into()));
        }
        let attestor = Self { config };
        let chain = attestor.chain()?;
        attestor.key_for(&chain)?;
        Ok(attestor)
    }

    /// The certificate chain as configured: leaf first.
    fn chain(&self) -> Result<Vec<Vec<u8>>> {
        let mut chain = certificates(&self.config.certificate_path)?;
        if chain.is_empty() {
            return Err(Error::Config(format!(
                "no certificate found in {}",
                self.config.certificate_path.display()
            )));
        }
        if let Some(path) = &self.config.intermediates_path {
            chain.extend(certificates(path)?);
        }
        Ok(chain)
    }

    /// The private key, checked against the leaf's public key.
    fn key_for(&self, chain: &[Vec<u8>]) -> Result<PrivateKey> {
        let key = load_key(&self.config.private_key_path)?;
        let leaf_der = chain.first().map(Vec::as_slice).unwrap_or_default();
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| Error::crypto("parsing x509pop certificate", e))?;
        let leaf_public = leaf.public_key().subject_public_key.data.as_ref();
        let key_public = match &key {
            PrivateKey::Ecdsa(k) => k.public_key().as_ref(),
            PrivateKey::Rsa(k) => k.public_key().as_ref(),
        };
        if leaf_public != key_public {
            return Err(Error::Config(format!(
                "{} does not hold the key of {}",
                self.config.private_key_path.display(),
                self.config.certificate_path.display()
            )));
        }
        Ok(key)
    }
}

#[async_trait]
impl NodeAttestor for X509PopAttestor {
    fn name(&self) -> &'static str {
        "x509pop"
    }

    async fn payload(&self) -> Result<Vec<u8>> {
        let payload = AttestationPayload {
            certificates: self.chain()?.iter().map(|c| STANDARD.encode(c)).collect(),
        };
        serde_json::to_vec(&payload).map_err(|e| Error::crypto("encoding x509pop payload", e))
    }

    async fn challenge_response(&self, challenge: &[u8]) -> Result<Vec<u8>> {
        let challenge: Challenge = serde_json::from_slice(challenge)
            .map_err(|e| Error::Protocol(format!("malformed x509pop challenge: {e}")))?;
        let key = self.key_for(&self.chain()?)?;
        let mut own_nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut own_nonce).map_err(|e| Error::crypto("random nonce", e))?;
        let response = match (&key, challenge.ecdsa_signature, challenge.rsa_signature) {
            (PrivateKey::Ecdsa(k), Some(c), _) => {
                let message = signed_message(&c.nonce, &own_nonce)?;
                let (r, s) = sign_ecdsa(k, &message)?;
                Response {
                    ecdsa_signature: Some(EcdsaResponse {
                        nonce: STANDARD.encode(own_nonce),
                        r: STANDARD.encode(r),
                        s: STANDARD.encode(s),
                    }),
                    ..Response::default()
                }
            }
            (PrivateKey::Rsa(k), _, Some(c)) => {
                let message = signed_message(&c.nonce, &own_nonce)?;
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PSS_SHA256,
                    &SystemRandom::new(),
                    &message,
                    &mut sig,
                )
                .map_err(|e| Error::crypto("RSA-PSS signing", e))?;
                Response {
                    rsa_signature: Some(RsaResponse {
                        nonce: STANDARD.encode(own_nonce),
                        signature: STANDARD.encode(sig),
                    }),
                    ..Response::default()
                }
            }
            _ => {
                return Err(Error::Protocol(
                    "x509pop challenge does not match the key type".into(),
                ));
            }
        };
        serde_json::to_vec(&response).map_err(|e| Error::crypto("encoding x509pop response", e))
    }
}

/// `challenge nonce ‖ own nonce`: the signers hash it with SHA-256, which gives exactly the
/// digest SPIRE signs.
fn signed_message(challenge_nonce_b64: &str, own_nonce: &[u8; NONCE_LEN]) -> Result<Vec<u8>> {
    let challenge_nonce = STANDARD
        .decode(challenge_nonce_b64)
        .map_err(|_| Error::Protocol("invalid challenge nonce".into()))?;
    if challenge_nonce.len() != NONCE_LEN {
        return Err(Error::Protocol("invalid challenge nonce".into()));
    }
    let mut message = challenge_nonce;
    message.extend_from_slice(own_nonce);
    Ok(message)
}

/// ECDSA over SHA-256 of `message`; `r` and `s` as minimal big-endian integers (Go's
/// `big.Int.Bytes`).
fn sign_ecdsa(key: &EcdsaKeyPair, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let sig = key
        .sign(&SystemRandom::new(), message)
        .map_err(|e| Error::crypto("ECDSA signing", e))?;
    let fixed = sig.as_ref();
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let trim = |b: &[u8]| {
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        b[start..].to_vec()
    };
    Ok((trim(r), trim(s)))
}

fn certificates(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let blocks =
        pem::parse_many(&bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect())
}

fn load_key(path: &Path) -> Result<PrivateKey> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let blocks =
        pem::parse_many(&bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let ec_algs = [
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &signature::ECDSA_P521_SHA256_FIXED_SIGNING,
    ];
    for block in blocks {
        let der = block.contents();
        match block.tag() {
            "PRIVATE KEY" => {
                if let Some(k) = ec_algs
                    .iter()
                    .find_map(|alg| EcdsaKeyPair::from_pkcs8(alg, der).ok())
                {
                    return Ok(PrivateKey::Ecdsa(k));
                }
                if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
                    return Ok(PrivateKey::Rsa(k));
                }
            }
            "EC PRIVATE KEY" => {
                if let Some(k) = ec_algs
                    .iter()
                    .find_map(|alg| EcdsaKeyPair::from_private_key_der(alg, der).ok())
                {
                    return Ok(PrivateKey::Ecdsa(k));
                }
            }
            "RSA PRIVATE KEY" => {
                if let Ok(k) = RsaKeyPair::from_der(der) {
                    return Ok(PrivateKey::Rsa(k));
                }
            }
            _ => continue,
        }
        return Err(Error::Config(format!(
            "{}: unsupported private key (ECDSA P-256/P-521 or RSA expected)",
            path.display()
        )));
    }
    Err(Error::Config(format!(
        "no private key found in {}",
        path.display()
    )))
}

#[cfg(test)]
mod tests;
