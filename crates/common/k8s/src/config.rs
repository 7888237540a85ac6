//! Where the apiserver is and how to authenticate: from a kubeconfig file or from the
//! in-cluster service account.
//!
//! Files named by the configuration (CA, client certificate and key) are read once, when the
//! configuration is loaded. Bearer token *files* (a kubeconfig's `tokenFile`, the in-cluster
//! token) are read at load and then re-read by the client at most every
//! [`TOKEN_FILE_REFRESH`], because projected service-account tokens rotate on disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use crate::Error;
use crate::transport::Verify;

mod kubeconfig;
#[cfg(test)]
mod tests;

/// How long a bearer token read from a file is used before the file is read again
/// (client-go re-reads token files every minute too). A failed re-read keeps the previous
/// token and tries again after the same interval.
pub const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

/// The in-cluster service account directory.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where the apiserver is and how to authenticate to it. Secrets are redacted from `Debug`.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://host:port`, optionally with a path prefix.
    server: String,
    /// The name to verify instead of the server URL's host.
    tls_server_name: Option<String>,
    verify: Verify,
    /// Client certificate chain and key (PEM).
    client_cert: Option<(Vec<u8>, Vec<u8>)>,
    token: Option<TokenConfig>,
}

#[derive(Clone)]
enum TokenConfig {
    Static(String),
    /// A token file and the token read from it at load time.
    File {
        path: PathBuf,
        initial: String,
    },
}

/// The `Authorization` header source of a client.
#[derive(Debug)]
pub(crate) enum Bearer {
    None,
    Static(HeaderValue),
    File(TokenFile),
}

/// A token file with its cached content.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    /// The header made from the last good read, and when the file was last read.
    cached: Mutex<(Option<HeaderValue>, Instant)>,
}

// === impl ClientConfig ===

impl ClientConfig {
    /// A configuration for `server` (`https://host:port`), trusting the system roots,
    /// without credentials; refine it with the `with_*` methods.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            tls_server_name: None,
            verify: Verify::System,
            client_cert: None,
            token: None,
        }
    }

    /// Reads the current context of the kubeconfig at `path`.
    ///
    /// Supported: `current-context`; `contexts[].context.{cluster,user}`;
    /// `clusters[].cluster.{server, certificate-authority(-data), insecure-skip-tls-verify,
    /// tls-server-name}`; `users[].user.{token, tokenFile, client-certificate(-data),
    /// client-key(-data)}`. Relative paths resolve against the kubeconfig's directory.
    /// `exec` and `auth-provider` users are refused.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, Error> {
        kubeconfig::load(path)
    }

    /// The in-cluster configuration: `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`
    /// and `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`.
    pub fn in_cluster() -> Result<Self, Error> {
        Self::in_cluster_from(
            |name| std::env::var(name).ok(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// [`in_cluster`](Self::in_cluster) with the environment read through `env` and the
    /// service account files taken from `dir` (for tests).
    pub fn in_cluster_from(
        env: impl Fn(&str) -> Option<String>,
        dir: &Path,
    ) -> Result<Self, Error> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let (Some(host), Some(port)) = (
            var("KUBERNETES_SERVICE_HOST"),
            var("KUBERNETES_SERVICE_PORT"),
        ) else {
            return Err(Error::config(
                "unable to load in-cluster configuration: KUBERNETES_SERVICE_HOST and \
                 KUBERNETES_SERVICE_PORT must be defined",
            ));
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let token_path = dir.join("token");
        let initial = read_token_file(&token_path)?;
        let ca = read_file(&dir.join("ca.crt"), "CA certificate")?;
        Ok(Self {
            server: format!("https://{host}:{port}"),
            tls_server_name: None,
            verify: Verify::Roots(ca),
            client_cert: None,
            token: Some(TokenConfig::File {
                path: token_path,
                initial,
            }),
        })
    }

    /// The kubeconfig at `kube_config_file`, or the in-cluster configuration when it is
    /// `None` or empty (SPIRE's `kube_config_file` semantics).
    pub fn load(kube_config_file: Option<&Path>) -> Result<Self, Error> {
        match kube_config_file {
            Some(path) if !path.as_os_str().is_empty() => Self::from_kubeconfig(path),
            _ => Self::in_cluster(),
        }
    }

    /// Trusts only the CA certificates in `pem` (checked when the client is built).
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.verify = Verify::Roots(pem.into());
        self
    }

    /// Does not verify the apiserver's certificate at all.
    pub fn with_insecure_skip_tls_verify(mut self) -> Self {
        self.verify = Verify::Skip;
        self
    }

    /// Verifies the apiserver's certificate for `name` instead of the URL's host.
    pub fn with_tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls_server_name = Some(name.into());
        self
    }

    /// Authenticates with this bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(TokenConfig::Static(token.into()));
        self
    }

    /// Authenticates with the bearer token in `path`, re-read every
    /// [`TOKEN_FILE_REFRESH`]. The file is read now and must hold a token.
    pub fn with_token_file(mut self, path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let initial = read_token_file(&path)?;
        self.token = Some(TokenConfig::File { path, initial });
        Ok(self)
    }

    /// Authenticates with a client certificate chain and its key (PEM).
    pub fn with_client_cert(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.client_cert = Some((cert_pem, key_pem));
        self
    }

    /// The apiserver URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn tls_server_name(&self) -> Option<&str> {
        self.tls_server_name.as_deref()
    }

    pub(crate) fn verify(&self) -> &Verify {
        &self.verify
    }

    pub(crate) fn client_cert(&self) -> Option<(&[u8], &[u8])> {
        self.client_cert
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice()))
    }

    pub(crate) fn bearer(&self) -> Result<Bearer, Error> {
        Ok(match &self.token {
            None => Bearer::None,
            Some(TokenConfig::Static(token)) => Bearer::Static(bearer_header(token)?),
            Some(TokenConfig::File { path, initial }) => Bearer::File(TokenFile {
                path: path.clone(),
                cached: Mutex::new((Some(bearer_header(initial)?), Instant::now())),
            }),
        })
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verify = match &self.verify {
            Verify::Roots(_) => "ca",
            Verify::System => "system roots",
            Verify::ChainOnly(_) => "ca (chain only)",
            Verify::Skip => "insecure-skip-tls-verify",
        };
        let token = match &self.token {
            None => "none".to_owned(),
            Some(TokenConfig::Static(_)) => "<redacted>".to_owned(),
            Some(TokenConfig::File { path, .. }) => format!("file {}", path.display()),
        };
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("tls_server_name", &self.tls_server_name)
            .field("verify", &verify)
            .field("client_cert", &self.client_cert.is_some())
            .field("token", &token)
            .finish()
    }
}

// === impl Bearer ===

impl Bearer {
    /// The `Authorization` header value for the next request.
    pub(crate) async fn header(&self) -> Result<Option<HeaderValue>, Error> {
        match self {
            Self::None => Ok(None),
            Self::Static(value) => Ok(Some(value.clone())),
            Self::File(file) => file.header().await.map(Some),
        }
    }
}

// === impl TokenFile ===

impl TokenFile {
    async fn header(&self) -> Result<HeaderValue, Error> {
        {
            let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            if let (Some(value), read_at) = &*cached
                && read_at.elapsed() < TOKEN_FILE_REFRESH
            {
                return Ok(value.clone());
            }
        }
        let read = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|source| Error::File {
                what: "token file",
                path: self.path.clone(),
                source,
            })
            .and_then(|text| token_from(&self.path, &text))
            .and_then(|token| bearer_header(&token));
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached.1 = Instant::now();
        match (read, &cached.0) {
            (Ok(value), _) => {
                cached.0 = Some(value.clone());
                Ok(value)
            }
            (Err(error), Some(previous)) => {
                tracing::warn!(%error, "Unable to re-read the bearer token file; keeping the previous token");
                Ok(previous.clone())
            }
            (Err(error), None) => Err(error),
        }
    }
}

// === helpers ===

fn bearer_header(token: &str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| Error::config("the bearer token holds characters not allowed in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

pub(crate) fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::File {
        what,
        path: path.to_owned(),
        source,
    })
}

fn read_token_file(path: &Path) -> Result<String, Error> {
    let bytes = read_file(path, "token file")?;
    token_from(path, &String::from_utf8_lossy(&bytes))
}

/// The token in a token file: its content without surrounding whitespace, not empty.
fn token_from(path: &Path, text: &str) -> Result<String, Error> {
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::config(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}
