use serde::{Deserialize, Serialize};
use spire_id::TrustDomain;

/// A trust domain's bundle as SPIRE keeps it: X.509 roots, JWT signing keys, a refresh hint
/// and a sequence number (the shape of `spire.api.types.Bundle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Whose bundle this is.
    pub trust_domain: TrustDomain,
    /// X.509 authorities (DER certificates), in insertion order.
    pub x509_authorities: Vec<X509Authority>,
    /// JWT signing keys.
    pub jwt_authorities: Vec<JwtAuthority>,
    /// Seconds between refreshes that consumers should use; 0 = unset.
    pub refresh_hint: i64,
    /// Bumped on every change of the stored bundle.
    pub sequence_number: u64,
}

/// One X.509 root of trust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X509Authority {
    /// The DER certificate.
    #[serde(with = "crate::serde_der::bytes")]
    pub asn1: Vec<u8>,
    /// Set when the authority is tainted (agents re-sign SVIDs issued under it).
    #[serde(default)]
    pub tainted: bool,
}

/// One JWT signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtAuthority {
    /// The `kid` tokens carry.
    pub key_id: String,
    /// The DER `SubjectPublicKeyInfo`.
    #[serde(with = "crate::serde_der::bytes")]
    pub public_key: Vec<u8>,
    /// Unix seconds after which the key is no longer used; 0 = no expiry.
    pub expires_at: i64,
    /// Set when the key is tainted.
    #[serde(default)]
    pub tainted: bool,
}

// === impl Bundle ===

impl Bundle {
    /// An empty bundle for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            refresh_hint: 0,
            sequence_number: 0,
        }
    }

    /// Adds the authorities of `other` that this bundle lacks (by DER / by key ID) and reports
    /// whether anything changed. The sequence number is the caller's to bump.
    pub fn merge(&mut self, other: &Bundle) -> bool {
        let mut changed = false;
        for authority in &other.x509_authorities {
            if !self
                .x509_authorities
                .iter()
                .any(|a| a.asn1 == authority.asn1)
            {
                self.x509_authorities.push(authority.clone());
                changed = true;
            }
        }
        for key in &other.jwt_authorities {
            if !self.jwt_authorities.iter().any(|k| k.key_id == key.key_id) {
                self.jwt_authorities.push(key.clone());
                changed = true;
            }
        }
        changed
    }
}
