//! [`TestKubelet`]: the kubelet's `/pods` for tests, with switchable misbehaviour.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming, SizeHint};
use serde_json::Value;
use tokio::sync::watch;

use crate::lock;
use crate::pki::{TestCa, server_config};
use crate::serve::{self, Abort, Body, Peer, Server};

/// How the test kubelet is reached and authenticates callers.
#[derive(Clone, Debug)]
pub struct TestKubeletConfig {
    /// The node name; the serving certificate is valid for it and for `127.0.0.1`.
    pub node_name: String,
    /// Which callers are let in.
    pub auth: TestKubeletAuth,
    /// Plain HTTP without authentication, like the read-only port.
    pub read_only: bool,
}

/// Which callers the test kubelet lets in (others get `401 Unauthorized`).
#[derive(Clone, Debug)]
pub enum TestKubeletAuth {
    /// Everybody.
    Anonymous,
    /// Requests with `Authorization: Bearer <token>`.
    Bearer(String),
    /// Connections with a client certificate of [`TestKubelet::client_ca`].
    ClientCert,
}

/// How the test kubelet answers; switch with [`TestKubelet::set_behavior`].
#[derive(Clone, Debug, PartialEq)]
pub enum KubeletBehavior {
    /// 200 with the PodList.
    Normal,
    /// The PodList after this delay.
    Slow(Duration),
    /// The port refuses connections and open connections are reset.
    Down,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a body of `bytes` bytes (streamed, never held in memory), with or without a
    /// `Content-Length`.
    Oversized {
        /// Body size.
        bytes: usize,
        /// Whether the length is declared up front.
        content_length: bool,
    },
    /// This status code with a short text body (for 403, the kubelet's wording).
    Status(u16),
}

/// A request the kubelet received.
#[derive(Clone, Debug)]
pub struct KubeletRequest {
    /// `GET`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The common name of the client certificate, if one was presented.
    pub client_cert: Option<String>,
}

/// A test kubelet on `127.0.0.1:<random port>`. Stops when dropped.
#[derive(Debug)]
pub struct TestKubelet {
    state: Arc<KubeletState>,
    server: Server,
    ca: TestCa,
    client_ca: TestCa,
    node_name: String,
    read_only: bool,
}

#[derive(Debug)]
struct KubeletState {
    auth: TestKubeletAuth,
    pods: Mutex<Vec<Value>>,
    behavior: Mutex<KubeletBehavior>,
    requests: watch::Sender<usize>,
    log: Mutex<Vec<KubeletRequest>>,
}

/// A body of `remaining` bytes made of one repeated chunk.
struct RepeatBody {
    prefix: Option<Bytes>,
    chunk: Bytes,
    remaining: usize,
    exact: bool,
}

// === impl TestKubeletConfig ===

impl TestKubeletConfig {
    /// An HTTPS kubelet for `node_name` with `auth`.
    pub fn new(node_name: &str, auth: TestKubeletAuth) -> Self {
        Self {
            node_name: node_name.to_owned(),
            auth,
            read_only: false,
        }
    }

    /// A read-only-port kubelet: plain HTTP, no authentication.
    pub fn read_only(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_owned(),
            auth: TestKubeletAuth::Anonymous,
            read_only: true,
        }
    }
}

// === impl TestKubelet ===

impl TestKubelet {
    /// Starts serving an empty PodList.
    pub async fn start(config: TestKubeletConfig) -> Self {
        let ca = TestCa::new("test kubelet CA");
        let client_ca = TestCa::new("test kubelet client CA");
        let state = Arc::new(KubeletState {
            auth: config.auth.clone(),
            pods: Mutex::new(Vec::new()),
            behavior: Mutex::new(KubeletBehavior::Normal),
            requests: watch::channel(0).0,
            log: Mutex::new(Vec::new()),
        });
        let tls = (!config.read_only).then(|| {
            let cert = ca.issue_server_cert(&["127.0.0.1", &config.node_name]);
            let client_ca =
                matches!(config.auth, TestKubeletAuth::ClientCert).then_some(&client_ca);
            server_config(&cert, client_ca)
        });
        let handler_state = state.clone();
        let handler: serve::Handler = Arc::new(move |peer, request| {
            let state = handler_state.clone();
            Box::pin(async move { state.serve(peer, request).await })
        });
        let server = Server::start(tls, handler).await;
        Self {
            state,
            server,
            ca,
            client_ca,
            node_name: config.node_name,
            read_only: config.read_only,
        }
    }

    /// `https://127.0.0.1:<port>` (`http://` for a read-only kubelet).
    pub fn url(&self) -> String {
        let scheme = if self.read_only { "http" } else { "https" };
        format!("{scheme}://{}", self.server.addr())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// The node name the serving certificate is valid for.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The CA of the serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA whose client certificates the kubelet accepts
    /// ([`TestKubeletAuth::ClientCert`]).
    pub fn client_ca(&self) -> &TestCa {
        &self.client_ca
    }

    /// The pods `/pods` lists from now on (e.g. from [`PodBuilder`](crate::PodBuilder)).
    pub fn set_pods(&self, pods: Vec<Value>) {
        *lock(&self.state.pods) = pods;
    }

    /// Switches how requests are answered; returns once the listener is in the new state.
    pub async fn set_behavior(&self, behavior: KubeletBehavior) {
        let up = behavior != KubeletBehavior::Down;
        *lock(&self.state.behavior) = behavior;
        self.server.set_up(up).await;
    }

    /// Requests received so far.
    pub fn request_count(&self) -> usize {
        *self.state.requests.borrow()
    }

    /// Returns once at least `count` requests were received.
    pub async fn wait_for_requests(&self, count: usize) {
        let mut requests = self.state.requests.subscribe();
        requests
            .wait_for(|n| *n >= count)
            .await
            .expect("the kubelet owns the counter");
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<KubeletRequest> {
        lock(&self.state.log).clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }
}

// === impl KubeletState ===

impl KubeletState {
    async fn serve(
        &self,
        peer: Arc<Peer>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Abort> {
        let authorization = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        lock(&self.log).push(KubeletRequest {
            method: request.method().to_string(),
            path: request
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), ToString::to_string),
            authorization: authorization.clone(),
            client_cert: peer.client_cert.as_ref().map(|(cn, _)| cn.clone()),
        });
        self.requests.send_modify(|n| *n += 1);
        let behavior = lock(&self.behavior).clone();
        let allowed = match &self.auth {
            TestKubeletAuth::Anonymous => true,
            TestKubeletAuth::Bearer(token) => {
                authorization.as_deref() == Some(format!("Bearer {token}").as_str())
            }
            TestKubeletAuth::ClientCert => peer.client_cert.is_some(),
        };
        if !allowed {
            return Ok(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
        }
        if request.uri().path() != "/pods" {
            return Ok(text(StatusCode::NOT_FOUND, "404 page not found"));
        }
        match behavior {
            KubeletBehavior::Normal => Ok(self.pod_list()),
            KubeletBehavior::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(self.pod_list())
            }
            KubeletBehavior::Down => Err(Abort("the kubelet is down".to_owned())),
            KubeletBehavior::Garbage => Ok(text(StatusCode::OK, "<html>not a pod list</html>")),
            KubeletBehavior::Oversized {
                bytes,
                content_length,
            } => Ok(Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .body(RepeatBody::new(bytes, content_length).boxed())
                .expect("a valid response")),
            KubeletBehavior::Status(code) => {
                let code = StatusCode::from_u16(code).expect("a valid status code");
                let body = if code == StatusCode::FORBIDDEN {
                    "Forbidden (user=system:serviceaccount:spire:spire-agent, verb=get, \
                     resource=nodes, subresource=proxy)"
                        .to_owned()
                } else {
                    code.canonical_reason().unwrap_or("error").to_owned()
                };
                Ok(text(code, &body))
            }
        }
    }

    fn pod_list(&self) -> Response<Body> {
        let items = serde_json::to_string(&*lock(&self.pods)).expect("JSON values serialize");
        let body =
            format!(r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{}},"items":{items}}}"#);
        Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .body(serve::full(body))
            .expect("a valid response")
    }
}

fn text(code: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(serve::full(body.to_owned()))
        .expect("a valid response")
}

// === impl RepeatBody ===

impl RepeatBody {
    fn new(bytes: usize, exact: bool) -> Self {
        let prefix =
            Bytes::from_static(br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":["#);
        let prefix_len = prefix.len().min(bytes);
        Self {
            prefix: Some(prefix.slice(..prefix_len)),
            chunk: Bytes::from(vec![b' '; 64 * 1024]),
            remaining: bytes - prefix_len,
            exact,
        }
    }
}

impl hyper::body::Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take()
            && !prefix.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(this.chunk.len());
        this.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.prefix.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            let prefix = self.prefix.as_ref().map_or(0, Bytes::len);
            SizeHint::with_exact((prefix + self.remaining) as u64)
        } else {
            SizeHint::default()
        }
    }
}
