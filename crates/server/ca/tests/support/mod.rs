//! Shared set-up for the CA tests: a real SQLite datastore in a temp dir and a manual clock.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test-only helpers shared by several test binaries

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use spire_id::{SpiffeId, TrustDomain};
use spire_server_ca::{CaConfig, CaManager, Plugins};
use spire_server_datastore::DataStore;
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_plugin::keymanager::KeyManager;
use spire_time::{ManualClock, SharedClock};
use x509_parser::prelude::{FromDer, X509Certificate};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub datastore: Arc<dyn DataStore>,
    pub config: CaConfig,
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let datastore = open_store(&dir).await;
        let td = TrustDomain::new("example.org").unwrap();
        Self {
            dir,
            clock: ManualClock::at_fixed_instant(),
            datastore,
            config: CaConfig::new(td),
        }
    }

    pub fn shared_clock(&self) -> SharedClock {
        Arc::new(self.clock.clone())
    }

    pub async fn manager(&self, key_manager: Arc<dyn KeyManager>) -> CaManager {
        CaManager::new(
            self.config.clone(),
            self.shared_clock(),
            Plugins {
                key_manager,
                upstream_authority: None,
            },
            self.datastore.clone(),
        )
        .await
        .unwrap()
    }

    pub fn now(&self) -> SystemTime {
        spire_time::Clock::now(&self.clock)
    }

    pub fn td(&self) -> &TrustDomain {
        &self.config.trust_domain
    }

    pub fn id(&self, path: &str) -> SpiffeId {
        SpiffeId::from_path(self.td().clone(), path).unwrap()
    }

    pub async fn bundle_roots(&self) -> Vec<Vec<u8>> {
        self.datastore
            .fetch_bundle(self.td())
            .await
            .unwrap()
            .map(|b| b.x509_authorities.into_iter().map(|a| a.asn1).collect())
            .unwrap_or_default()
    }
}

pub async fn open_store(dir: &tempfile::TempDir) -> Arc<dyn DataStore> {
    let path = dir.path().join("datastore.sqlite3");
    let config = SqlConfig {
        database_type: "sqlite3".into(),
        connection_string: path.to_string_lossy().into_owned(),
    };
    Arc::new(SqlStore::open(&config).await.unwrap())
}

/// A P-256 key and its DER SPKI.
pub fn workload_key() -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    (key, spki)
}

/// Mints a workload SVID for `id` (fresh P-256 key, no DNS names) with the active CA.
pub fn mint(manager: &CaManager, id: &SpiffeId, ttl: Duration) -> Vec<Vec<u8>> {
    let (_, spki) = workload_key();
    let params = spire_server_ca::X509SvidParams {
        spiffe_id: id,
        dns_names: &[],
        ttl,
    };
    manager.ca().sign_workload_x509_svid(&spki, params).unwrap()
}

/// A CSR for `key` that asks for `uri` and a DNS name of its own choosing.
pub fn csr_asking_for(key: &KeyPair, uri: &str, dns: &str) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "attacker");
    params.subject_alt_names = vec![
        SanType::URI(uri.try_into().unwrap()),
        SanType::DnsName(dns.try_into().unwrap()),
    ];
    params.serialize_request(key).unwrap().der().to_vec()
}

pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Verifies `chain` (leaf first) up to one of `roots` with webpki at `now`, as a TLS peer would.
pub fn verify_chain(chain: &[Vec<u8>], roots: &[Vec<u8>], now: SystemTime) -> Result<(), String> {
    use rustls_pki_types::{CertificateDer, UnixTime};
    let anchors: Vec<_> = roots
        .iter()
        .map(|r| {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(r.as_slice()))
                .unwrap()
                .to_owned()
        })
        .collect();
    let leaf_der = CertificateDer::from(chain[0].as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| e.to_string())?;
    let intermediates: Vec<_> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(secs),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
