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
    /// `jwt_key_type`; `None` = `ca_key_type` (see [`CaConfig::jwt_key_type`]).
    pub jwt_key_type: Option<KeyType>,
    /// `default_jwt_svid_ttl` (default 5m), used when an entry or a mint request has no TTL.
    pub default_jwt_svid_ttl: Duration,
    /// `jwt_issuer`: the `iss` claim of every JWT-SVID; `None` = no `iss`.
    pub jwt_issuer: Option<String>,
    /// `disable_jwt_svids`: no JWT keys are made and no JWT-SVID is signed.
    pub disable_jwt_svids: bool,
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
            jwt_key_type: None,
            default_jwt_svid_ttl: Duration::from_secs(300),
            jwt_issuer: None,
            disable_jwt_svids: false,
        }
    }

    /// The key type of JWT signing keys: `jwt_key_type`, else `ca_key_type`.
    pub fn jwt_key_type(&self) -> KeyType {
        self.jwt_key_type.unwrap_or(self.ca_key_type)
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
