//! Test fixtures shared by the agent endpoint suites (`spire-agent-workload` and, by path,
//! `spire-agent-sds`): test CAs, SVIDs minted under them with SPIRE's workload profile, entries
//! for this process, and a real agent cache.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use spire_agent_cache::{Cache, CacheConfig, Entry, IssuedSvid};
use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_svid::{Bundle, X509Authority};

pub const TRUST_DOMAIN: &str = "example.org";

/// A self-signed test CA for one trust domain.
pub struct TestCa {
    pub trust_domain: TrustDomain,
    pub root_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        Self::for_domain(TRUST_DOMAIN)
    }

    pub fn for_domain(td: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::OrganizationName, "SPIFFE");
        params
            .subject_alt_names
            .push(SanType::URI(format!("spiffe://{td}").try_into().unwrap()));
        let cert = params.self_signed(&key).unwrap();
        Self {
            trust_domain: TrustDomain::new(td).unwrap(),
            root_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// This CA's trust domain bundle.
    pub fn bundle(&self) -> Bundle {
        let mut bundle = Bundle::new(self.trust_domain.clone());
        bundle.x509_authorities.push(X509Authority {
            asn1: self.root_der.clone(),
            tainted: false,
        });
        bundle
    }

    /// An X509-SVID for `spiffe_id` (SPIRE's workload profile, `CN` = `dns` when given).
    pub fn mint(&self, spiffe_id: &SpiffeId) -> IssuedSvid {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "SPIRE");
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.to_string().try_into().unwrap()));
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        IssuedSvid {
            chain: vec![cert.der().to_vec()],
            private_key: key.serialize_der(),
            not_before,
            not_after,
        }
    }
}

pub fn trust_domain() -> TrustDomain {
    TrustDomain::new(TRUST_DOMAIN).unwrap()
}

pub fn workload_id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TRUST_DOMAIN}/{path}")).unwrap()
}

/// `unix:uid:<effective uid of this process>`, what the unix attestor finds for the tests.
pub fn my_uid_selector() -> Selector {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    Selector::new("unix", &format!("uid:{uid}")).unwrap()
}

pub fn entry(id: &str, path: &str, selectors: &[Selector]) -> Entry {
    Entry {
        id: id.to_owned(),
        spiffe_id: workload_id(path),
        parent_id: workload_id("spire/agent/test"),
        selectors: selectors.iter().cloned().collect::<SelectorSet>(),
        federates_with: Vec::new(),
        dns_names: Vec::new(),
        hint: String::new(),
        revision_number: 1,
        created_at: 1_700_000_000,
        x509_svid_ttl: 0,
        store_svid: false,
        admin: false,
        downstream: false,
    }
}

pub fn cache(ca: &TestCa) -> Cache {
    Cache::new(
        CacheConfig {
            trust_domain: trust_domain(),
            x509_svid_cache_max_size: 1000,
        },
        ca.bundle(),
    )
}

/// Sets the cache's entries and mints an SVID for each.
pub fn set_entries(cache: &Cache, ca: &TestCa, entries: Vec<Entry>) {
    let svids = entries
        .iter()
        .map(|e| (e.id.clone(), ca.mint(&e.spiffe_id)))
        .collect();
    cache.update_entries(entries);
    cache.store_svids(svids);
}
