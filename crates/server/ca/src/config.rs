use std::time::Duration;

use spire_id::TrustDomain;
use spire_svid::KeyType;

/// The server settings the CA uses (`server {}` keys of the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaConfig {
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `ca_subject`; SPIRE's default is `C=US, O=SPIFFE`.
    pub ca_subject: CaSubject,
    /// `ca_key_type` (default ec-p256).
    pub ca_key_type: KeyType,
    /// `ca_ttl` (default 24h).
    pub ca_ttl: Duration,
    /// `default_x509_svid_ttl` (default 1h), used when an entry has no TTL of its own.
    pub default_x509_svid_ttl: Duration,
    /// `agent_ttl`; `None` = `default_x509_svid_ttl`.
    pub agent_ttl: Option<Duration>,
}

/// `ca_subject { country, organization, common_name }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSubject {
    /// Countries (C).
    pub country: Vec<String>,
    /// Organizations (O).
    pub organization: Vec<String>,
    /// Common name (CN); empty = none.
    pub common_name: String,
}

// === impl CaConfig ===

impl CaConfig {
    /// SPIRE's defaults for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            ca_subject: CaSubject::default(),
            ca_key_type: KeyType::EcP256,
            ca_ttl: Duration::from_secs(24 * 3600),
            default_x509_svid_ttl: Duration::from_secs(3600),
            agent_ttl: None,
        }
    }
}

impl Default for CaSubject {
    fn default() -> Self {
        Self {
            country: vec!["US".into()],
            organization: vec!["SPIFFE".into()],
            common_name: String::new(),
        }
    }
}
