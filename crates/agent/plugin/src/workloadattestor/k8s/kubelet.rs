//! The real [`PodListSource`]: the kubelet's `/pods` through [`spire_k8s::kubelet`], with
//! the CA, token and client certificate read again every `reload_interval`.
//!
//! Secure port: `https://<node name or 127.0.0.1>:<port>`, authenticated by bearer token,
//! client certificate or nothing; the serving certificate is not verified
//! (`skip_kubelet_verification`), or verified against `kubelet_ca_path` — with the host name
//! when a node name is known, chain only otherwise (the kubelet's certificate does not name
//! 127.0.0.1). Read-only port: `http://127.0.0.1:<port>`, no credentials, nothing to reload.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use spire_k8s::kubelet::{KubeletAuth, KubeletClient, KubeletConfig, KubeletVerify};
use tokio::time::Instant;

use super::config::{K8sConfig, KubeletCredentials, KubeletPort};
use super::poller::{FetchError, PodListSource};

/// How the kubelet is reached; fixed at configuration.
#[derive(Clone, Debug)]
struct Target {
    url: String,
    port: KubeletPort,
    credentials: KubeletCredentials,
    /// `None`: skip verification; else the CA file and the name to verify.
    verify: Option<(std::path::PathBuf, Option<String>)>,
    timeout: Duration,
    max_body_bytes: usize,
}

/// The files' contents the client was built from.
#[derive(Clone, PartialEq, Eq)]
struct Material {
    auth: AuthMaterial,
    ca_pem: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Eq)]
enum AuthMaterial {
    Anonymous,
    Token(String),
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

struct Loaded {
    material: Material,
    client: KubeletClient,
    loaded_at: Instant,
}

/// The kubelet as a [`PodListSource`].
pub struct KubeletSource {
    target: Target,
    reload_interval: Duration,
    loaded: Mutex<Loaded>,
}

// === impl KubeletSource ===

impl KubeletSource {
    /// Reads the credentials and builds the client now, so configuration errors (a missing
    /// token or CA, a key that does not match) surface at startup as in SPIRE.
    pub fn new(
        config: &K8sConfig,
        node_name: Option<String>,
        timeout: Duration,
        max_body_bytes: usize,
    ) -> Result<Self, String> {
        let (url, verify) = match config.port {
            KubeletPort::ReadOnly(port) => (format!("http://127.0.0.1:{port}"), None),
            KubeletPort::Secure(port) => {
                let host = node_name.as_deref().unwrap_or("127.0.0.1");
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                };
                let verify = (!config.skip_kubelet_verification)
                    .then(|| (config.kubelet_ca_path.clone(), node_name.clone()));
                (format!("https://{host}:{port}"), verify)
            }
        };
        let target = Target {
            url,
            port: config.port,
            credentials: match config.port {
                KubeletPort::ReadOnly(_) => KubeletCredentials::Anonymous,
                KubeletPort::Secure(_) => config.credentials.clone(),
            },
            verify,
            timeout,
            max_body_bytes,
        };
        let material = target.load()?;
        let client = target.build(&material)?;
        Ok(Self {
            target,
            reload_interval: config.reload_interval,
            loaded: Mutex::new(Loaded {
                material,
                client,
                loaded_at: Instant::now(),
            }),
        })
    }

    /// The kubelet URL (without `/pods`).
    pub fn url(&self) -> &str {
        &self.target.url
    }

    /// The client to use now, rebuilt when the files changed since the last reload.
    fn client(&self) -> Result<KubeletClient, String> {
        let mut loaded = self.lock();
        let now = Instant::now();
        if matches!(self.target.port, KubeletPort::ReadOnly(_))
            || now.duration_since(loaded.loaded_at) < self.reload_interval
        {
            return Ok(loaded.client.clone());
        }
        let material = self.target.load()?;
        if material != loaded.material {
            tracing::debug!(url = %self.target.url, "kubelet credentials changed; new client");
            loaded.client = self.target.build(&material)?;
            loaded.material = material;
        }
        loaded.loaded_at = now;
        Ok(loaded.client.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Loaded> {
        self.loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl PodListSource for KubeletSource {
    async fn fetch_pods(&self) -> Result<Bytes, FetchError> {
        let client = self.client()?;
        Ok(client.get_pods().await?)
    }
}

impl std::fmt::Debug for KubeletSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletSource")
            .field("url", &self.target.url)
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

// === impl Target ===

impl Target {
    fn load(&self) -> Result<Material, String> {
        let ca_pem = match &self.verify {
            Some((path, _)) => Some(read(path, "kubelet CA")?),
            None => None,
        };
        let auth = match &self.credentials {
            KubeletCredentials::Anonymous => AuthMaterial::Anonymous,
            KubeletCredentials::Token(path) => {
                let token = read(path, "token")?;
                AuthMaterial::Token(String::from_utf8_lossy(&token).trim().to_owned())
            }
            KubeletCredentials::ClientCert {
                certificate_path,
                private_key_path,
            } => AuthMaterial::ClientCert {
                cert_pem: read(certificate_path, "certificate")?,
                key_pem: read(private_key_path, "private key")?,
            },
        };
        Ok(Material { auth, ca_pem })
    }

    fn build(&self, material: &Material) -> Result<KubeletClient, String> {
        let auth = match &material.auth {
            AuthMaterial::Anonymous => KubeletAuth::Anonymous,
            AuthMaterial::Token(token) => KubeletAuth::Bearer(token.clone()),
            AuthMaterial::ClientCert { cert_pem, key_pem } => KubeletAuth::ClientCert {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
        };
        let verify = match (&self.verify, &material.ca_pem) {
            (Some((_, server_name)), Some(ca_pem)) => KubeletVerify::Roots {
                ca_pem: ca_pem.clone(),
                server_name: server_name.clone(),
            },
            _ => KubeletVerify::Skip,
        };
        let mut config = KubeletConfig::new(&self.url, auth, verify);
        config.timeout = self.timeout;
        config.max_body_bytes = self.max_body_bytes;
        KubeletClient::new(config).map_err(|e| format!("unable to create kubelet client: {e}"))
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("unable to load {what}: open {}: {e}", path.display()))
}
