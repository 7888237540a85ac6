//! The kubelet's `GET /pods`, as SPIRE's k8s workload attestor calls it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::Full;

use crate::Error;
use crate::transport::{self, Connector, HttpClient, Verify};

/// How much of a non-200 body goes into the error (SPIRE reads 1 KiB).
const STATUS_BODY_BYTES: usize = 1024;

/// Where the kubelet is and how to talk to it.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// `https://<host>:<port>` (secure port) or `http://127.0.0.1:<port>` (read-only port).
    pub url: String,
    /// How to authenticate (only [`KubeletAuth::Anonymous`] over `http`).
    pub auth: KubeletAuth,
    /// How to verify the kubelet's serving certificate (ignored over `http`).
    pub verify: KubeletVerify,
    /// Time allowed for the whole request, body included.
    pub timeout: Duration,
    /// Largest accepted `/pods` body; reading stops there.
    pub max_body_bytes: usize,
}

/// How the agent authenticates to the kubelet.
#[derive(Clone)]
pub enum KubeletAuth {
    /// No credentials (`use_anonymous_authentication`, or the read-only port).
    Anonymous,
    /// `Authorization: Bearer <token>` (the service account token, whitespace-trimmed by the caller).
    Bearer(String),
    /// A client certificate chain and its key (PEM).
    ClientCert {
        /// Certificate chain, leaf first (PEM).
        cert_pem: Vec<u8>,
        /// Private key (PEM: PKCS#8, SEC1 or PKCS#1).
        key_pem: Vec<u8>,
    },
}

/// How the kubelet's serving certificate is verified.
#[derive(Clone, Debug)]
pub enum KubeletVerify {
    /// Not at all (`skip_kubelet_verification`).
    Skip,
    /// Against these CA certificates (PEM).
    Roots {
        /// The CA certificates (PEM).
        ca_pem: Vec<u8>,
        /// The name the certificate must be valid for (and the SNI). `None`: the chain is
        /// verified but not the name, and TLS sessions are never resumed.
        server_name: Option<String>,
    },
}

/// Fetches the kubelet's pod list. Cheap to clone; clones share keep-alive connections.
#[derive(Clone)]
pub struct KubeletClient {
    inner: Arc<Inner>,
}

struct Inner {
    pods_uri: Uri,
    http: HttpClient,
    authorization: Option<HeaderValue>,
    timeout: Duration,
    max_body_bytes: usize,
}

// === impl KubeletConfig ===

impl KubeletConfig {
    /// Default request timeout (SPIRE's).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default body cap: 64 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

    /// A configuration for `url` with the default timeout and body cap.
    pub fn new(url: impl Into<String>, auth: KubeletAuth, verify: KubeletVerify) -> Self {
        Self {
            url: url.into(),
            auth,
            verify,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

// === impl KubeletAuth ===

impl fmt::Debug for KubeletAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::ClientCert { .. } => f.write_str("ClientCert { .. }"),
        }
    }
}

// === impl KubeletClient ===

impl KubeletClient {
    /// A client for `config`; parses the TLS material now, connects on first use.
    pub fn new(config: KubeletConfig) -> Result<Self, Error> {
        let base = config.url.trim_end_matches('/');
        let pods_uri: Uri = format!("{base}/pods")
            .parse()
            .map_err(|e| Error::config(format!("invalid kubelet URL {:?}: {e}", config.url)))?;
        if pods_uri.host().is_none_or(str::is_empty) {
            return Err(Error::config(format!(
                "invalid kubelet URL {:?}: no host",
                config.url
            )));
        }
        let connector = match pods_uri.scheme_str() {
            Some("http") => {
                if !matches!(config.auth, KubeletAuth::Anonymous) {
                    return Err(Error::config("kubelet credentials require an https URL"));
                }
                Connector::new(None, None)?
            }
            Some("https") => {
                let (verify, server_name) = match &config.verify {
                    KubeletVerify::Skip => (Verify::Skip, None),
                    KubeletVerify::Roots {
                        ca_pem,
                        server_name: Some(name),
                    } => (Verify::Roots(ca_pem.clone()), Some(name.as_str())),
                    KubeletVerify::Roots {
                        ca_pem,
                        server_name: None,
                    } => (Verify::ChainOnly(ca_pem.clone()), None),
                };
                let client_cert = match &config.auth {
                    KubeletAuth::ClientCert { cert_pem, key_pem } => {
                        Some((cert_pem.as_slice(), key_pem.as_slice()))
                    }
                    _ => None,
                };
                let tls = transport::tls_config(&verify, client_cert)?;
                Connector::new(Some(tls), server_name)?
            }
            _ => {
                return Err(Error::config(format!(
                    "invalid kubelet URL {:?}: scheme must be https or http",
                    config.url
                )));
            }
        };
        let authorization = match &config.auth {
            KubeletAuth::Bearer(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    Error::config("the kubelet token holds characters not allowed in a header")
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                pods_uri,
                http: transport::http_client(connector),
                authorization,
                timeout: config.timeout,
                max_body_bytes: config.max_body_bytes,
            }),
        })
    }

    /// `GET <url>/pods`: the raw PodList body of a 200 response.
    ///
    /// Any other status is [`Error::UnexpectedStatus`] (with at most 1 KiB of the body); a
    /// body over `max_body_bytes` is [`Error::BodyTooLarge`], found without buffering more.
    pub async fn get_pods(&self) -> Result<Bytes, Error> {
        let timeout = self.inner.timeout;
        tokio::time::timeout(timeout, self.fetch())
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    async fn fetch(&self) -> Result<Bytes, Error> {
        let inner = &self.inner;
        let mut request =
            Request::get(inner.pods_uri.clone()).header(USER_AGENT, transport::user_agent());
        if let Some(value) = &inner.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let response = inner
            .http
            .request(request)
            .await
            .map_err(|e| Error::transport(&format!("GET {}", inner.pods_uri), e))?;
        let status = response.status();
        if status != StatusCode::OK {
            let (start, _) = transport::read_capped(response.into_body(), STATUS_BODY_BYTES).await;
            return Err(Error::UnexpectedStatus {
                code: status.as_u16(),
                body: String::from_utf8_lossy(&start).into_owned(),
            });
        }
        transport::read_body(
            response,
            inner.max_body_bytes,
            &format!("GET {}", inner.pods_uri),
        )
        .await
    }
}

impl fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletClient")
            .field("pods_uri", &self.inner.pods_uri)
            .field("timeout", &self.inner.timeout)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_checked() {
        let bad = |url: &str, auth: KubeletAuth| {
            KubeletClient::new(KubeletConfig::new(url, auth, KubeletVerify::Skip)).unwrap_err()
        };
        assert!(bad("ftp://127.0.0.1:1", KubeletAuth::Anonymous).is_config());
        assert!(bad("https://", KubeletAuth::Anonymous).is_config());
        let error = bad("http://127.0.0.1:10255", KubeletAuth::Bearer("t".into()));
        assert_eq!(
            error.to_string(),
            "kubelet credentials require an https URL"
        );
        let error = bad(
            "https://127.0.0.1:10250",
            KubeletAuth::ClientCert {
                cert_pem: b"nope".to_vec(),
                key_pem: b"nope".to_vec(),
            },
        );
        assert!(error.is_config(), "{error}");
        let client = KubeletClient::new(KubeletConfig::new(
            "http://127.0.0.1:10255/",
            KubeletAuth::Anonymous,
            KubeletVerify::Skip,
        ))
        .unwrap();
        assert_eq!(client.inner.pods_uri, "http://127.0.0.1:10255/pods");
    }

    #[test]
    fn debug_output_redacts_tokens() {
        let text = format!("{:?}", KubeletAuth::Bearer("secret-token".into()));
        assert!(!text.contains("secret-token"));
    }
}
