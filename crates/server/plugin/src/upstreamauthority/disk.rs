use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rcgen::{Issuer, SubjectPublicKeyInfo};
use spire_svid::KeyType;
use spire_time::SharedClock;

use super::{MintedX509Ca, UpstreamAuthority};
use crate::keymanager::Key;
use crate::x509::{self, parse_certificate, read_pem_certificates};
use crate::{Error, Result};

/// `UpstreamAuthority "disk"` settings (`plugin_data`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUpstreamConfig {
    /// `cert_file_path`: the upstream signing certificate, optionally followed by its chain.
    pub cert_file_path: PathBuf,
    /// `key_file_path`: the upstream private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub key_file_path: PathBuf,
    /// `bundle_file_path`: the upstream roots. When absent, the signing certificate must be a
    /// self-signed root and is itself the bundle.
    pub bundle_file_path: Option<PathBuf>,
}

/// Signs the server CA with a certificate and key read from disk.
#[derive(Debug)]
pub struct DiskUpstreamAuthority {
    issuer_der: Vec<u8>,
    key: Key,
    intermediates: Vec<Vec<u8>>,
    roots: Vec<Vec<u8>>,
    clock: SharedClock,
}

// === impl DiskUpstreamAuthority ===

impl DiskUpstreamAuthority {
    /// Loads and checks the files: the key must match the certificate, and without a bundle
    /// file the certificate must be self-signed.
    pub fn load(config: &DiskUpstreamConfig, clock: SharedClock) -> Result<Self> {
        if config.cert_file_path.as_os_str().is_empty()
            || config.key_file_path.as_os_str().is_empty()
        {
            return Err(Error::Config(
                "cert_file_path and key_file_path are required".into(),
            ));
        }
        let chain = read_pem_certificates(&config.cert_file_path)?;
        let key = read_key(&config.key_file_path)?;
        let issuer_der = chain[0].clone();
        let issuer = parse_certificate(&issuer_der)?;
        if issuer.public_key().raw != key.public_key_der().as_slice() {
            return Err(Error::Config(format!(
                "{} does not match the certificate in {}",
                config.key_file_path.display(),
                config.cert_file_path.display()
            )));
        }
        let (intermediates, roots) = match &config.bundle_file_path {
            Some(path) => {
                let roots = read_pem_certificates(path)?;
                let intermediates = chain
                    .iter()
                    .filter(|c| !roots.contains(c))
                    .cloned()
                    .collect();
                (intermediates, roots)
            }
            None => {
                if chain.len() != 1 || issuer.subject() != issuer.issuer() {
                    return Err(Error::Config(
                        "with no bundle_file_path, cert_file_path must hold one self-signed CA certificate".into(),
                    ));
                }
                (Vec::new(), vec![issuer_der.clone()])
            }
        };
        Ok(Self {
            issuer_der,
            key,
            intermediates,
            roots,
            clock,
        })
    }
}

#[async_trait]
impl UpstreamAuthority for DiskUpstreamAuthority {
    fn name(&self) -> &'static str {
        "disk"
    }

    async fn mint_x509_ca(&self, csr_der: &[u8], preferred_ttl: Duration) -> Result<MintedX509Ca> {
        let csr = x509::read_ca_csr(csr_der)?;
        let [uri] = csr.uris.as_slice() else {
            return Err(Error::InvalidRequest(
                "CSR must have exactly one URI SAN".into(),
            ));
        };
        let upstream = parse_certificate(&self.issuer_der)?;
        let now = self.clock.now();
        let not_after = (now + preferred_ttl).min(x509::not_after(&upstream));
        let mut params = x509::ca_params(
            csr.subject,
            uri,
            &csr.public_key,
            now,
            not_after,
            x509::random_serial(),
        )?;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.issuer_der.as_slice().into(), &self.key)
            .map_err(|e| Error::crypto("loading upstream certificate", e))?;
        let public_key = SubjectPublicKeyInfo::from_der(&csr.public_key)
            .map_err(|e| Error::crypto("reading CSR public key", e))?;
        let cert = params
            .signed_by(&public_key, &issuer)
            .map_err(|e| Error::crypto("signing intermediate CA", e))?;
        let mut x509_ca_chain = vec![cert.der().to_vec()];
        x509_ca_chain.extend(self.intermediates.iter().cloned());
        Ok(MintedX509Ca {
            x509_ca_chain,
            upstream_x509_roots: self.roots.clone(),
        })
    }
}

fn read_key(path: &Path) -> Result<Key> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let pair = rcgen::KeyPair::from_pem(&pem)
        .map_err(|e| Error::crypto(format!("parsing {}", path.display()), e))?;
    let key_type = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
        KeyType::EcP256
    } else if pair.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
        KeyType::EcP384
    } else if pair.algorithm() == &rcgen::PKCS_RSA_SHA256 {
        KeyType::Rsa2048
    } else {
        return Err(Error::Config(format!(
            "{}: unsupported key algorithm",
            path.display()
        )));
    };
    Ok(Key::from_pair("upstream", key_type, pair))
}
