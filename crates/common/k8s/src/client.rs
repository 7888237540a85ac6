//! [`ApiClient`]: the kube-apiserver calls spire-server and spire-agent make.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::Full;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Bearer;
use crate::transport::{self, Connector, HttpClient};
use crate::types::{ConfigMap, Namespace, Node, Pod, TokenReviewStatus};
use crate::{ApiError, ClientConfig, Error};

/// Default time allowed for one request (connect, handshake, request, whole response).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest apiserver response body accepted.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Attempts of a conflicting ConfigMap update and the pause between them (client-go's
/// `retry.DefaultRetry`: 5 steps, 10 ms).
const CONFLICT_ATTEMPTS: usize = 5;
const CONFLICT_PAUSE: Duration = Duration::from_millis(10);

const JSON: &str = "application/json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// A kube-apiserver client. Cheap to clone: clones share one pool of keep-alive connections
/// (HTTP/2 when the apiserver offers it, which multiplexes concurrent calls on one
/// connection).
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    /// `scheme://authority` of the apiserver.
    origin: String,
    /// A path prefix from the server URL (e.g. behind a proxy), without a trailing `/`.
    prefix: String,
    http: HttpClient,
    bearer: Bearer,
}

/// The request body of a TokenReview, field order as client-go sends it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenReviewRequest<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: NullTimestamp,
    spec: TokenReviewSpec<'a>,
    status: TokenReviewRequestStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NullTimestamp {
    creation_timestamp: Option<()>,
}

#[derive(Serialize)]
struct TokenReviewSpec<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    audiences: &'a [String],
}

#[derive(Serialize)]
struct TokenReviewRequestStatus {
    user: Empty,
}

#[derive(Serialize)]
struct Empty {}

#[derive(serde::Deserialize)]
struct TokenReviewResponse {
    #[serde(default)]
    status: TokenReviewStatus,
}

/// k8sbundle's strategic merge patch.
#[derive(Serialize)]
struct DataPatch<'a> {
    metadata: PatchMetadata<'a>,
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PatchMetadata<'a> {
    resource_version: &'a str,
    creation_timestamp: Option<()>,
}

/// The server-side apply configuration of a ConfigMap.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplyConfigMap<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: ApplyMetadata<'a>,
    data: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ApplyMetadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

// === impl ApiClient ===

impl ApiClient {
    /// A client for `config`. Parses the TLS material now; connects on first use.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let uri: Uri = config
            .server()
            .parse()
            .map_err(|e| Error::config(format!("invalid server URL {:?}: {e}", config.server())))?;
        let scheme = uri.scheme_str().unwrap_or("https");
        if scheme != "https" && scheme != "http" {
            return Err(Error::config(format!(
                "invalid server URL {:?}: scheme must be https",
                config.server()
            )));
        }
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| {
                Error::config(format!("invalid server URL {:?}: no host", config.server()))
            })?;
        let tls = if scheme == "https" {
            Some(transport::tls_config(
                config.verify(),
                config.client_cert(),
            )?)
        } else {
            None
        };
        let connector = Connector::new(tls, config.tls_server_name())?;
        Ok(Self {
            inner: Arc::new(Inner {
                origin: format!("{scheme}://{authority}"),
                prefix: uri.path().trim_end_matches('/').to_owned(),
                http: transport::http_client(connector),
                bearer: config.bearer()?,
            }),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client (sharing its connections) with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `POST /apis/authentication.k8s.io/v1/tokenreviews`: asks the apiserver to validate
    /// `token` for `audiences` (none: the apiserver's own audiences). Returns the review's
    /// status as it came (`authenticated`, `error`, `user`, `audiences`).
    pub async fn create_token_review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<TokenReviewStatus, Error> {
        let body = TokenReviewRequest {
            kind: "TokenReview",
            api_version: "authentication.k8s.io/v1",
            metadata: NullTimestamp {
                creation_timestamp: None,
            },
            spec: TokenReviewSpec { token, audiences },
            status: TokenReviewRequestStatus { user: Empty {} },
        };
        let response: TokenReviewResponse = self
            .call(
                Method::POST,
                "/apis/authentication.k8s.io/v1/tokenreviews".to_owned(),
                Some((JSON, encode(&body))),
                "TokenReview",
            )
            .await?;
        Ok(response.status)
    }

    /// `GET /api/v1/namespaces/<namespace>/pods/<name>`.
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, Error> {
        let path = item_path("pods", Some(namespace), name)?;
        self.call(Method::GET, path, None, "Pod").await
    }

    /// `GET /api/v1/nodes/<name>`.
    pub async fn get_node(&self, name: &str) -> Result<Node, Error> {
        let path = item_path("nodes", None, name)?;
        self.call(Method::GET, path, None, "Node").await
    }

    /// `GET /api/v1/namespaces/<name>`: a namespace (the `k8s` workload attestor reads its
    /// labels; needs `get` on `namespaces`).
    pub async fn get_namespace(&self, name: &str) -> Result<Namespace, Error> {
        let path = item_path("namespaces", None, name)?;
        self.call(Method::GET, path, None, "Namespace").await
    }

    /// `GET /api/v1/namespaces/<namespace>/configmaps/<name>`.
    pub async fn get_config_map(&self, namespace: &str, name: &str) -> Result<ConfigMap, Error> {
        let path = item_path("configmaps", Some(namespace), name)?;
        self.call(Method::GET, path, None, "ConfigMap").await
    }

    /// Sets `data[key] = value` of an existing ConfigMap as SPIRE's `k8sbundle` notifier
    /// does: GET it (a missing ConfigMap is an error), then a strategic merge PATCH carrying
    /// the resourceVersion read; on `409 Conflict` read again and retry (5 attempts, 10 ms
    /// apart), returning the last conflict if all fail.
    pub async fn update_config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let path = item_path("configmaps", Some(namespace), name)?;
        let mut attempt = 1;
        loop {
            let current = self.get_config_map(namespace, name).await?;
            let patch = DataPatch {
                metadata: PatchMetadata {
                    resource_version: &current.metadata.resource_version,
                    creation_timestamp: None,
                },
                data: BTreeMap::from([(key, value)]),
            };
            let result: Result<serde::de::IgnoredAny, Error> = self
                .call(
                    Method::PATCH,
                    path.clone(),
                    Some((STRATEGIC_MERGE_PATCH, encode(&patch))),
                    "ConfigMap",
                )
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(error) if error.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                    tracing::debug!(%error, attempt, "ConfigMap update conflicted; retrying");
                    attempt += 1;
                    tokio::time::sleep(CONFLICT_PAUSE).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Server-side applies a ConfigMap holding `data` as `field_manager` (SPIRE's
    /// `k8s_configmap` bundle publisher): creates it when missing; no `force`.
    pub async fn apply_config_map(
        &self,
        namespace: &str,
        name: &str,
        field_manager: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let path = format!(
            "{}?fieldManager={}",
            item_path("configmaps", Some(namespace), name)?,
            encode_component(field_manager)
        );
        let body = ApplyConfigMap {
            kind: "ConfigMap",
            api_version: "v1",
            metadata: ApplyMetadata { name, namespace },
            data,
        };
        let _: serde::de::IgnoredAny = self
            .call(
                Method::PATCH,
                path,
                Some((APPLY_PATCH, encode(&body))),
                "ConfigMap",
            )
            .await?;
        Ok(())
    }

    /// One request; a 2xx body decoded as `T`, anything else an error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: String,
        body: Option<(&'static str, Vec<u8>)>,
        what: &'static str,
    ) -> Result<T, Error> {
        let (status, body) =
            tokio::time::timeout(self.timeout, self.send(method, &path_and_query, body))
                .await
                .map_err(|_| Error::Timeout(self.timeout))??;
        if !status.is_success() {
            return Err(ApiError::from_response(status.as_u16(), &body).into());
        }
        serde_json::from_slice(&body).map_err(|source| Error::Decode { what, source })
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let inner = &self.inner;
        let uri = format!("{}{}{}", inner.origin, inner.prefix, path_and_query);
        let what = format!("{method} {uri}");
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, JSON)
            .header(USER_AGENT, transport::user_agent());
        if let Some(value) = inner.bearer.header().await? {
            request = request.header(AUTHORIZATION, value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let response = inner
            .http
            .request(request)
            .await
            .map_err(|e| Error::transport(&what, e))?;
        let status = response.status();
        let body = transport::read_body(response, MAX_RESPONSE_BYTES, &what).await?;
        Ok((status, body))
    }
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field(
                "server",
                &format_args!("{}{}", self.inner.origin, self.inner.prefix),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

// === helpers ===

fn encode(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("request bodies are plain structs and maps of strings")
}

/// `/api/v1/[namespaces/<ns>/]<resource>/<name>`, refusing empty names.
fn item_path(resource: &str, namespace: Option<&str>, name: &str) -> Result<String, Error> {
    if name.is_empty() {
        return Err(Error::InvalidRequest(
            "resource name may not be empty".to_owned(),
        ));
    }
    Ok(match namespace {
        Some("") => {
            return Err(Error::InvalidRequest(
                "namespace may not be empty".to_owned(),
            ));
        }
        Some(ns) => format!(
            "/api/v1/namespaces/{}/{resource}/{}",
            encode_component(ns),
            encode_component(name)
        ),
        None => format!("/api/v1/{resource}/{}", encode_component(name)),
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_review_bodies_match_client_go() {
        let audiences = vec!["spire-server".to_owned()];
        let body = TokenReviewRequest {
            kind: "TokenReview",
            api_version: "authentication.k8s.io/v1",
            metadata: NullTimestamp {
                creation_timestamp: None,
            },
            spec: TokenReviewSpec {
                token: "jwt",
                audiences: &audiences,
            },
            status: TokenReviewRequestStatus { user: Empty {} },
        };
        assert_eq!(
            String::from_utf8(encode(&body)).unwrap(),
            r#"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":"jwt","audiences":["spire-server"]},"status":{"user":{}}}"#
        );
    }

    #[test]
    fn item_paths_are_encoded_and_refuse_empty_names() {
        assert_eq!(
            item_path("pods", Some("spire"), "agent-x").unwrap(),
            "/api/v1/namespaces/spire/pods/agent-x"
        );
        assert_eq!(
            item_path("nodes", None, "n/1").unwrap(),
            "/api/v1/nodes/n%2F1"
        );
        assert!(matches!(
            item_path("pods", Some("ns"), ""),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            item_path("pods", Some(""), "x"),
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!(
            encode_component("spire-bundlepublisher-k8s_configmap"),
            "spire-bundlepublisher-k8s_configmap"
        );
        assert_eq!(encode_component("a b:c"), "a%20b%3Ac");
    }

    #[test]
    fn server_urls_are_checked() {
        for bad in ["ftp://h", "https://", "::"] {
            let error =
                ApiClient::new(ClientConfig::new(bad).with_insecure_skip_tls_verify()).unwrap_err();
            assert!(error.is_config(), "{bad}: {error}");
        }
        let client = ApiClient::new(
            ClientConfig::new("https://h:6443/prefix/").with_insecure_skip_tls_verify(),
        )
        .unwrap();
        assert_eq!(client.inner.origin, "https://h:6443");
        assert_eq!(client.inner.prefix, "/prefix");
    }
}
