//! `NodeAttestor "x509pop"`: the agent proves possession of the key of a certificate that
//! chains to a configured CA bundle (compat §13). Mode `external_pki` only.
//!
//! Payload `{"certificates": [<b64 DER leaf>, <intermediates>…]}`; the server answers with a
//! 32-byte nonce (`ecdsa_signature` or `rsa_signature` by leaf key type); the agent signs
//! `SHA-256(challenge_nonce ‖ response_nonce)` (ECDSA over the digest as-is, RSA-PSS SHA-256).
//! The agent ID is `spiffe://<td>/spire/agent/x509pop/<hex SHA-1 of the leaf DER>`.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, RsaPssSaltLength, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use spire_id::{Selector, SpiffeId, TrustDomain};
use spire_time::SharedClock;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use super::{AttestCode, Attestation, Challenger, NodeAttestor, is_safe_segment};
use crate::x509::read_pem_certificates;
use crate::{Error, Result};

/// At most this many intermediates follow the leaf (SPIRE's `max_intermediates`).
pub(crate) const MAX_INTERMEDIATES: usize = 4;
const NONCE_LEN: usize = 32;
/// Longest big-endian ECDSA `r`/`s` accepted (P-384 needs 48; leaves room for P-521 sizes).
const MAX_SCALAR_LEN: usize = 66;

/// Go signs PSS with the longest salt by default; the digest length is the other common
/// choice. Either proves possession.
static RSA_ALGS: &[&dyn VerificationAlgorithm] = &[
    &const { signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max) },
    &signature::RSA_PSS_2048_8192_SHA256,
];
static P256_ALGS: &[&dyn VerificationAlgorithm] = &[&signature::ECDSA_P256_SHA256_ASN1];
static P384_ALGS: &[&dyn VerificationAlgorithm] = &[&signature::ECDSA_P384_SHA256_ASN1];

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// `NodeAttestor "x509pop"` settings (`plugin_data`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct X509PopConfig {
    /// `ca_bundle_path` and `ca_bundle_paths`: PEM files of the CAs agents' certificates chain to.
    pub ca_bundle_paths: Vec<PathBuf>,
}

/// Verifies proof of possession of a certificate key.
#[derive(Debug)]
pub struct X509PopAttestor {
    trust_domain: TrustDomain,
    roots: Vec<CertificateDer<'static>>,
    clock: SharedClock,
}

#[derive(Deserialize)]
struct Payload {
    certificates: Vec<String>,
}

/// Challenge and response share one shape: the nonce, plus the signature in a response.
#[derive(Default, Deserialize, Serialize)]
struct Exchange {
    #[serde(skip_serializing_if = "Option::is_none")]
    ecdsa_signature: Option<EcdsaPart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rsa_signature: Option<RsaPart>,
}

#[derive(Default, Deserialize, Serialize)]
struct EcdsaPart {
    nonce: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    r: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    s: String,
}

#[derive(Default, Deserialize, Serialize)]
struct RsaPart {
    nonce: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    signature: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafKey {
    P256,
    P384,
    Rsa,
}

// === impl X509PopAttestor ===

impl X509PopAttestor {
    /// The plugin name.
    pub const NAME: &'static str = "x509pop";

    /// Loads the CA bundle files; at least one certificate is required.
    pub fn load(
        config: &X509PopConfig,
        trust_domain: TrustDomain,
        clock: SharedClock,
    ) -> Result<Self> {
        if config.ca_bundle_paths.is_empty() {
            return Err(Error::Config(
                "x509pop: ca_bundle_path or ca_bundle_paths is required".into(),
            ));
        }
        let mut roots = Vec::new();
        for path in &config.ca_bundle_paths {
            roots.extend(read_pem_certificates(path)?);
        }
        Self::from_roots(roots, trust_domain, clock)
    }

    /// An attestor trusting these DER CA certificates.
    pub fn from_roots(
        roots: Vec<Vec<u8>>,
        trust_domain: TrustDomain,
        clock: SharedClock,
    ) -> Result<Self> {
        for root in &roots {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(root.as_slice()))
                .map_err(|e| Error::Config(format!("x509pop: unusable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::Config(
                "x509pop: the CA bundle holds no certificate".into(),
            ));
        }
        Ok(Self {
            trust_domain,
            roots: roots.into_iter().map(CertificateDer::from).collect(),
            clock,
        })
    }

    fn verify_chain(&self, chain: &[Vec<u8>]) -> Result<()> {
        let anchors: Vec<TrustAnchor<'_>> = self
            .roots
            .iter()
            .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
            .collect();
        let leaf = CertificateDer::from(chain[0].as_slice());
        let leaf = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| denied(format!("invalid leaf certificate: {e}")))?;
        let intermediates: Vec<CertificateDer<'_>> = chain[1..]
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let since_epoch = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| denied(format!("certificate verification failed: {e}")))?;
        Ok(())
    }

    fn selectors(&self, leaf: &X509Certificate<'_>, chain: &[Vec<u8>]) -> Result<Vec<Selector>> {
        let mut values = Vec::new();
        if let Some(cn) = leaf
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            values.push(format!("subject:cn:{cn}"));
        }
        for cert in &chain[1..] {
            values.push(format!("ca:fingerprint:{}", sha1_hex(cert)));
        }
        values.push(format!("serialnumber:{}", hex(&leaf.serial.to_bytes_be())));
        let prefix = format!("x509pop://{}/", self.trust_domain.name());
        for ext in leaf.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name
                        && let Some((key, value)) =
                            uri.strip_prefix(&prefix).and_then(|kv| kv.split_once('/'))
                    {
                        values.push(format!("san:{key}:{value}"));
                    }
                }
            }
        }
        values
            .iter()
            .map(|v| {
                Selector::new(Self::NAME, v).map_err(|e| failure(AttestCode::InvalidArgument, e))
            })
            .collect()
    }
}

#[async_trait]
impl NodeAttestor for X509PopAttestor {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn attest(
        &self,
        payload: Vec<u8>,
        challenger: &mut dyn Challenger,
    ) -> Result<Attestation> {
        let payload: Payload = serde_json::from_slice(&payload)
            .map_err(|e| invalid(format!("failed to unmarshal data: {e}")))?;
        if payload.certificates.is_empty() {
            return Err(invalid("no certificate to attest"));
        }
        // Bounded before any parsing or path building (crafted-chain CPU, SPIRE 1.14.2).
        if payload.certificates.len() > 1 + MAX_INTERMEDIATES {
            return Err(invalid(format!(
                "too many intermediates: at most {MAX_INTERMEDIATES} are allowed"
            )));
        }
        let chain = payload
            .certificates
            .iter()
            .map(|c| B64.decode(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("unable to decode certificate: {e}")))?;
        let (_, leaf) = X509Certificate::from_der(&chain[0])
            .map_err(|e| invalid(format!("unable to parse leaf certificate: {e}")))?;
        self.verify_chain(&chain)?;
        let key = leaf_key(&leaf)?;

        let mut challenge_nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut challenge_nonce)
            .map_err(|_| failure(AttestCode::Internal, "failed to generate challenge"))?;
        let nonce = B64.encode(challenge_nonce);
        let challenge = match key {
            LeafKey::Rsa => Exchange {
                rsa_signature: Some(RsaPart {
                    nonce,
                    ..RsaPart::default()
                }),
                ..Exchange::default()
            },
            LeafKey::P256 | LeafKey::P384 => Exchange {
                ecdsa_signature: Some(EcdsaPart {
                    nonce,
                    ..EcdsaPart::default()
                }),
                ..Exchange::default()
            },
        };
        let challenge = serde_json::to_vec(&challenge).map_err(|e| {
            failure(
                AttestCode::Internal,
                format!("failed to marshal challenge: {e}"),
            )
        })?;
        let response = challenger.challenge(challenge).await?;
        let response: Exchange = serde_json::from_slice(&response)
            .map_err(|e| invalid(format!("unable to unmarshal challenge response: {e}")))?;
        verify_response(
            key,
            leaf.public_key().subject_public_key.data.as_ref(),
            &challenge_nonce,
            &response,
        )?;

        let fingerprint = sha1_hex(&chain[0]);
        if !is_safe_segment(&fingerprint) {
            return Err(failure(AttestCode::Internal, "bad fingerprint"));
        }
        let agent_id = SpiffeId::from_segments(
            self.trust_domain.clone(),
            &["spire", "agent", Self::NAME, &fingerprint],
        )
        .map_err(|e| {
            failure(
                AttestCode::Internal,
                format!("failed to make agent ID: {e}"),
            )
        })?;
        Ok(Attestation {
            agent_id,
            selectors: self.selectors(&leaf, &chain)?,
            can_reattest: true,
        })
    }
}

fn leaf_key(leaf: &X509Certificate<'_>) -> Result<LeafKey> {
    let spki = leaf.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    if algorithm == OID_RSA {
        return Ok(LeafKey::Rsa);
    }
    if algorithm == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.to_id_string());
        return match curve.as_deref() {
            Some(OID_P256) => Ok(LeafKey::P256),
            Some(OID_P384) => Ok(LeafKey::P384),
            _ => Err(invalid("unsupported elliptic curve")),
        };
    }
    Err(invalid(format!("unsupported private key type {algorithm}")))
}

/// Checks the agent's signature over `SHA-256(challenge_nonce ‖ response_nonce)`.
fn verify_response(
    key: LeafKey,
    public_key: &[u8],
    challenge_nonce: &[u8],
    response: &Exchange,
) -> Result<()> {
    let (response_nonce, signature, algorithms): (_, _, &[&'static dyn VerificationAlgorithm]) =
        match (key, response) {
            (
                LeafKey::Rsa,
                Exchange {
                    rsa_signature: Some(rsa),
                    ..
                },
            ) => (&rsa.nonce, decode(&rsa.signature, "signature")?, RSA_ALGS),
            (
                LeafKey::P256 | LeafKey::P384,
                Exchange {
                    ecdsa_signature: Some(ec),
                    ..
                },
            ) => {
                let r = decode(&ec.r, "r")?;
                let s = decode(&ec.s, "s")?;
                let der = ecdsa_der(&r, &s).ok_or_else(|| invalid("invalid ECDSA signature"))?;
                let algorithms = if key == LeafKey::P256 {
                    P256_ALGS
                } else {
                    P384_ALGS
                };
                (&ec.nonce, der, algorithms)
            }
            _ => return Err(invalid("expected a signature of the leaf key's type")),
        };
    let response_nonce = decode(response_nonce, "nonce")?;
    if response_nonce.len() != NONCE_LEN {
        return Err(invalid("invalid response nonce"));
    }
    if challenge_nonce.len() != NONCE_LEN {
        return Err(invalid("invalid challenge nonce"));
    }
    // ECDSA-with-SHA-256 and PSS-SHA-256 hash the message once: verifying them over the
    // concatenation checks a signature made over its SHA-256 digest (SPIRE's prehash).
    let mut message = Vec::with_capacity(2 * NONCE_LEN);
    message.extend_from_slice(challenge_nonce);
    message.extend_from_slice(&response_nonce);
    let ok = algorithms.iter().any(|alg| {
        UnparsedPublicKey::new(*alg, public_key)
            .verify(&message, &signature)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(denied("challenge response verification failed"))
    }
}

/// `SEQUENCE { INTEGER r, INTEGER s }` from big-endian magnitudes.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Option<Vec<u8>> {
    let int = |v: &[u8]| -> Option<Vec<u8>> {
        let v: Vec<u8> = v.iter().skip_while(|b| **b == 0).copied().collect();
        if v.is_empty() || v.len() > MAX_SCALAR_LEN {
            return None;
        }
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push(u8::try_from(v.len() + usize::from(pad)).ok()?);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(&v);
        Some(out)
    };
    let (r, s) = (int(r)?, int(s)?);
    let len = u8::try_from(r.len() + s.len()).ok()?;
    let mut out = vec![0x30];
    if len >= 0x80 {
        out.push(0x81);
    }
    out.push(len);
    out.extend(r);
    out.extend(s);
    Some(out)
}

fn decode(value: &str, what: &str) -> Result<Vec<u8>> {
    B64.decode(value)
        .map_err(|e| invalid(format!("unable to decode {what}: {e}")))
}

fn sha1_hex(der: &[u8]) -> String {
    hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn invalid(message: impl std::fmt::Display) -> Error {
    failure(AttestCode::InvalidArgument, message)
}

fn denied(message: impl std::fmt::Display) -> Error {
    failure(AttestCode::PermissionDenied, message)
}

fn failure(code: AttestCode, message: impl std::fmt::Display) -> Error {
    Error::plugin_failure(X509PopAttestor::NAME, code, message)
}

#[cfg(test)]
mod tests;
