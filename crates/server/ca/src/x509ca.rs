use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, SanType, SubjectPublicKeyInfo,
};
use spire_id::SpiffeId;
use spire_server_plugin::keymanager::Key;
use spire_server_plugin::x509::{self as x509util, dn_value, ia5};
use spire_time::SharedClock;

use crate::config::CaConfig;
use crate::jwtkey::JwtKey;
use crate::{Error, Result};

/// One X.509 signing authority: a key and its CA certificate (plus the upstream chain when an
/// UpstreamAuthority signed it).
pub struct X509Ca {
    key: Key,
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
    issuer: Issuer<'static, Key>,
    not_before: SystemTime,
    not_after: SystemTime,
    authority_id: String,
    upstream_authority_id: String,
}

/// What a workload SVID is made from: everything comes from the registration entry.
#[derive(Clone, Copy, Debug)]
pub struct X509SvidParams<'a> {
    /// The entry's SPIFFE ID.
    pub spiffe_id: &'a SpiffeId,
    /// The entry's DNS names; the first becomes the CN.
    pub dns_names: &'a [String],
    /// The entry's X509-SVID TTL; zero = the server default.
    pub ttl: Duration,
}

/// The minting side of the CA: cheap to clone, always signs with the authority (X.509 CA or
/// JWT key) that is active at the moment of the call.
#[derive(Clone)]
pub struct Ca {
    pub(crate) config: Arc<CaConfig>,
    pub(crate) clock: SharedClock,
    active: Arc<RwLock<Option<Arc<X509Ca>>>>,
    pub(crate) active_jwt: Arc<RwLock<Option<Arc<JwtKey>>>>,
}

// === impl X509Ca ===

impl X509Ca {
    /// Wraps a CA certificate and its key. `chain` is empty for a self-signed CA, or the CA
    /// certificate followed by upstream intermediates.
    pub fn new(key: Key, certificate: Vec<u8>, chain: Vec<Vec<u8>>) -> Result<Self> {
        let cert = x509util::parse_certificate(&certificate)?;
        let not_before = spire_time::from_unix_seconds(cert.validity().not_before.timestamp());
        let not_after = x509util::not_after(&cert);
        let authority_id = x509util::authority_id(&cert)?;
        let upstream_authority_id = upstream_authority_id(&chain)?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(Error::InvalidRequest(
                "CA certificate does not match its key".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&certificate.as_slice().into(), key.clone())
            .map_err(|source| Error::Certificate {
                context: "loading CA certificate",
                source,
            })?;
        Ok(Self {
            key,
            certificate,
            chain,
            issuer,
            not_before,
            not_after,
            authority_id,
            upstream_authority_id,
        })
    }

    /// The subject key ID (lowercase hex) of the upstream authority that signed this CA's
    /// chain, empty for a self-signed CA.
    pub fn upstream_authority_id(&self) -> &str {
        &self.upstream_authority_id
    }

    /// The DER CA certificate.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The chain SVIDs carry after the leaf: empty when self-signed, else the CA certificate
    /// and the upstream intermediates.
    pub fn upstream_chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// Start of validity (already backdated by the cushion).
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity; no SVID outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Hex key identifier of the CA's public key.
    pub fn authority_id(&self) -> &str {
        &self.authority_id
    }

    /// The signing key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Signs a leaf with the X509-SVID profile SPIRE uses for workloads, agents and servers:
    /// subject `C=US, O=SPIRE` (+ CN), one URI SAN, KU digitalSignature|keyEncipherment|
    /// keyAgreement, EKU serverAuth+clientAuth, CA:false, random serial, notBefore −10 s,
    /// notAfter capped at the CA's. Returns the chain to hand out, leaf first.
    fn sign_leaf(
        &self,
        public_key_der: &[u8],
        spiffe_id: &SpiffeId,
        dns_names: &[String],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Vec<Vec<u8>>> {
        let public_key = SubjectPublicKeyInfo::from_der(public_key_der).map_err(|source| {
            Error::Certificate {
                context: "reading the public key",
                source,
            }
        })?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CountryName, dn_value("US"));
        subject.push(DnType::OrganizationName, dn_value("SPIRE"));
        if let Some(first) = dns_names.first() {
            subject.push(DnType::CommonName, dn_value(first));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.subject_alt_names = std::iter::once(Ok(SanType::URI(ia5(&spiffe_id.to_string())?)))
            .chain(dns_names.iter().map(|d| Ok(SanType::DnsName(ia5(d)?))))
            .collect::<Result<_, spire_server_plugin::Error>>()?;
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
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(x509util::random_serial());
        params.not_before = (now - x509util::NOT_BEFORE_CUSHION).into();
        params.not_after = (now + ttl).min(self.not_after).into();
        let leaf = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|source| Error::Certificate {
                context: "signing X509-SVID",
                source,
            })?;
        let mut chain = Vec::with_capacity(1 + self.chain.len());
        chain.push(leaf.der().to_vec());
        chain.extend(self.chain.iter().cloned());
        Ok(chain)
    }
}

impl fmt::Debug for X509Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Ca")
            .field("authority_id", &self.authority_id)
            .field("not_after", &self.not_after)
            .field("upstream_chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

// === impl Ca ===

impl Ca {
    pub(crate) fn new(config: Arc<CaConfig>, clock: SharedClock) -> Self {
        Self {
            config,
            clock,
            active: Arc::default(),
            active_jwt: Arc::default(),
        }
    }

    pub(crate) fn set_active(&self, ca: Arc<X509Ca>) {
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(ca);
    }

    /// The authority currently signing.
    pub fn active(&self) -> Result<Arc<X509Ca>> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::NoActiveAuthority)
    }

    /// Mints a workload X509-SVID from a CSR: the CSR's signature is checked and only its
    /// public key is used; ID, DNS names and TTL come from `params` (the entry).
    pub fn sign_workload_x509_svid_from_csr(
        &self,
        csr_der: &[u8],
        params: X509SvidParams<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        let public_key = spire_svid::verify_csr(csr_der)?;
        self.sign_workload_x509_svid(&public_key, params)
    }

    /// Mints a workload X509-SVID for a DER `SubjectPublicKeyInfo`.
    pub fn sign_workload_x509_svid(
        &self,
        public_key_der: &[u8],
        params: X509SvidParams<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        let ttl = if params.ttl.is_zero() {
            self.config.default_x509_svid_ttl
        } else {
            params.ttl
        };
        self.active()?.sign_leaf(
            public_key_der,
            params.spiffe_id,
            params.dns_names,
            ttl,
            self.clock.now(),
        )
    }

    /// Mints an agent SVID (no CN, no DNS names; `agent_ttl` or the default TTL).
    pub fn sign_agent_x509_svid(
        &self,
        public_key_der: &[u8],
        agent_id: &SpiffeId,
    ) -> Result<Vec<Vec<u8>>> {
        let ttl = self
            .config
            .agent_ttl
            .unwrap_or(self.config.default_x509_svid_ttl);
        self.active()?
            .sign_leaf(public_key_der, agent_id, &[], ttl, self.clock.now())
    }

    /// Mints the server's own SVID, `spiffe://<td>/spire/server`.
    pub fn sign_server_x509_svid(&self, public_key_der: &[u8]) -> Result<Vec<Vec<u8>>> {
        let id = SpiffeId::server_id(&self.config.trust_domain);
        self.active()?.sign_leaf(
            public_key_der,
            &id,
            &[],
            self.config.default_x509_svid_ttl,
            self.clock.now(),
        )
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.config.trust_domain)
            .finish_non_exhaustive()
    }
}

/// The authority key identifier of the last certificate of an upstream-signed chain (the key
/// of the upstream root that signed it), as lowercase hex; empty for a self-signed CA.
fn upstream_authority_id(chain: &[Vec<u8>]) -> Result<String> {
    use x509_parser::extensions::ParsedExtension;
    let Some(last) = chain.last() else {
        return Ok(String::new());
    };
    let cert = x509util::parse_certificate(last)?;
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityKeyIdentifier(aki) = ext.parsed_extension()
            && let Some(id) = &aki.key_identifier
        {
            return Ok(hex::encode(id.0));
        }
    }
    Ok(String::new())
}
