//! [`TestApiServer`]: a kube-apiserver for tests, over HTTPS on a loopback port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::Value;

use crate::pki::{IssuedCert, TestCa, server_config};
use crate::serve::{self, Abort, Body, Peer, Server};

mod control;
mod discovery;
mod fields;
mod json;
mod lifecycle;
mod list;
mod manifest;
mod patch;
mod path;
mod resources;
mod selector;
mod state;
mod status;
mod store;
mod strategic;
mod table;
#[cfg(test)]
mod tests;
mod verbs;
mod watch;

use crate::lock;
use lifecycle::{Deletion, Propagation};
use path::Target;
use resources::ResourceInfo;
use state::{ApiRequest, State};
use status::Status;
use store::Answer;

pub use manifest::ManifestError;
pub use state::DEFAULT_AUDIENCE;

/// A test kube-apiserver: bearer-token (or client-certificate) authentication, a generic
/// object store with the real REST verbs and `Status` errors, TokenReview answered from
/// registered outcomes, a request log and fault injection. Stops when dropped.
#[derive(Debug)]
pub struct TestApiServer {
    state: Arc<State>,
    server: Server,
    ca: TestCa,
    client_ca: TestCa,
    token: String,
}

/// A request the server received (whether or not it was authenticated).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as sent (`/api/v1/...?...`).
    pub path: String,
    /// The media type of the body, without parameters.
    pub content_type: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// How the server answers a TokenReview for one token.
#[derive(Clone, Debug)]
pub enum TokenReviewOutcome {
    /// `authenticated: true` with this `user` object (see
    /// [`token_review_user`](crate::token_review_user)); `status.audiences` is `audiences`
    /// when given, else the requested audiences (or [`DEFAULT_AUDIENCE`] when none).
    Authenticated {
        /// `status.user`.
        user: Value,
        /// Overrides `status.audiences`.
        audiences: Option<Vec<String>>,
    },
    /// `authenticated: false` without an error.
    Unauthenticated,
    /// A non-empty `status.error` (what a real apiserver returns for expired or otherwise
    /// invalid tokens).
    Error(String),
}

/// Answers the next requests matching a path with a status code and/or after a delay.
#[derive(Clone, Debug)]
pub struct Fault {
    method: Option<Method>,
    path: String,
    pub(crate) remaining: usize,
    pub(crate) status: Option<u16>,
    pub(crate) delay: Option<Duration>,
    pub(crate) message: Option<String>,
}

// === impl TestApiServer ===

impl TestApiServer {
    /// Starts a server on `127.0.0.1:<random port>` with a fresh CA, serving certificate
    /// (for `127.0.0.1` and `localhost`) and bearer token.
    pub async fn start() -> Self {
        let ca = TestCa::new("test kube-apiserver CA");
        let client_ca = TestCa::new("test kube-apiserver client CA");
        let cert = ca.issue_server_cert(&["127.0.0.1", "localhost", "kubernetes.default.svc"]);
        let token = format!("test-token-{}", uuid::Uuid::new_v4().simple());
        let state = Arc::new(State::new(token.clone()));
        let handler_state = state.clone();
        let handler: serve::Handler = Arc::new(move |peer, request| {
            let state = handler_state.clone();
            Box::pin(async move { serve_request(state, peer, request).await })
        });
        let server = Server::start(Some(server_config(&cert, Some(&client_ca))), handler).await;
        Self {
            state,
            server,
            ca,
            client_ca,
            token,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.server.addr())
    }

    /// The CA certificate that issued the serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Accepts `token` as well.
    pub fn add_token(&self, token: &str) {
        lock(&self.state.tokens).insert(token.to_owned());
    }

    /// Stops accepting `token` (also the initial one).
    pub fn remove_token(&self, token: &str) {
        lock(&self.state.tokens).remove(token);
    }

    /// A client certificate the server accepts, for user `CN=<user>`.
    pub fn issue_client_cert(&self, user: &str) -> IssuedCert {
        self.client_ca.issue_client_cert(user, &[])
    }

    /// Writes `<dir>/kubeconfig` (current context → this server, CA data, the token).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem());
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    \
             server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: test\n  \
             context:\n    cluster: test\n    user: test\ncurrent-context: test\nusers:\n- \
             name: test\n  user:\n    token: {}\n",
            self.url(),
            self.token
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    /// Declares a resource's kind and scope, as a CRD without subresources would (custom
    /// resource semantics: `metadata.generation`, PUT needs `metadata.resourceVersion`,
    /// DELETE answers with the object). The built-in resources and SPIRE's CRDs are known;
    /// unknown resources are still served, in the scope their path uses.
    pub fn register_resource(&self, group: &str, resource: &str, kind: &str, namespaced: bool) {
        lock(&self.state.store).register(
            group,
            resource,
            ResourceInfo::custom(kind, namespaced, false),
        );
    }

    /// [`register_resource`](Self::register_resource) for a CRD with the `status`
    /// subresource: writes to the object keep its stored `.status`, writes to
    /// `<object>/status` change only `.status`, and a create drops `.status`.
    pub fn register_resource_with_status(
        &self,
        group: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
    ) {
        lock(&self.state.store).register(
            group,
            resource,
            ResourceInfo::custom(kind, namespaced, true),
        );
    }

    /// (Re-)declares SPIRE's CRDs, all with the status subresource (they are known from the
    /// start; this undoes a test's re-registration): `spire.spiffe.io/v1alpha1`
    /// `clusterspiffeids`, `clusterfederatedtrustdomains` and `clusterstaticentries`
    /// (cluster-scoped) and `spiffeid.spiffe.io/v1beta1` `spiffeids` (namespaced).
    pub fn register_spire_crds(&self) {
        lock(&self.state.store)
            .resources_mut()
            .register_spire_crds();
    }

    /// Stores `object` at an item path (`/api/v1/namespaces/ns/configmaps/x`) or under a
    /// collection path (name from `metadata.name`), replacing any object there, as is (no
    /// status-subresource or finalizer rules). A given `metadata.uid` / `creationTimestamp`
    /// is kept, else the replaced object's, else assigned; the resourceVersion is the next of
    /// the server's counter; watches see the change. Storing a CustomResourceDefinition
    /// declares its resource. Returns the stored object.
    pub fn put_object(&self, path: &str, object: Value) -> Value {
        let target = target(path);
        lock(&self.state.store).put(&target, object, &state::now())
    }

    /// The object at an item path.
    pub fn get_object(&self, path: &str) -> Option<Value> {
        lock(&self.state.store).object(&target(path))
    }

    /// Removes the object at an item path at once, whatever its finalizers, returning it
    /// (watches see DELETED; its dependents are garbage-collected).
    pub fn delete_object(&self, path: &str) -> Option<Value> {
        lock(&self.state.store).take(&target(path), &state::now())
    }

    /// Deletes the object at an item path as a background-propagation DELETE request does:
    /// with finalizers it only gets `metadata.deletionTimestamp` (and is returned in that
    /// state); without, it is removed (and its last state returned). `None` when absent.
    pub fn request_deletion(&self, path: &str) -> Option<Value> {
        let target = target(path);
        let name = target.name.as_deref()?;
        let namespace = target.namespace.as_deref().unwrap_or("");
        let key = store::key(&target, namespace, name);
        let now = state::now();
        let mut store = lock(&self.state.store);
        let deletion = store.delete_key(&key, Propagation::Background, &now);
        store.settle(&now);
        match deletion? {
            Deletion::Pending(object) | Deletion::Removed(object) => Some(object),
        }
    }

    /// The objects under a collection path, in list order.
    pub fn list_objects(&self, path: &str) -> Vec<Value> {
        lock(&self.state.store).objects(&target(path))
    }

    /// Every stored object as `<resource>[.<group>] [<namespace>/]<name>`
    /// (`configmaps spire/trust-bundle`, `nodes node-1`), in list order.
    pub fn object_keys(&self) -> Vec<String> {
        lock(&self.state.store).keys()
    }

    /// Stores every object of a multi-document YAML manifest (`kind: List` documents
    /// expanded) as [`put_object`](Self::put_object) does, at the path of its `apiVersion`
    /// and `kind` (CRDs earlier in the manifest declare theirs; unknown kinds get the
    /// guessed plural, namespaced when they have a namespace) in its namespace, `default`
    /// when a namespaced object has none. Returns the stored objects in manifest order.
    pub fn apply_manifest(&self, yaml: &str) -> Result<Vec<Value>, ManifestError> {
        let objects = manifest::documents(yaml)?;
        let now = state::now();
        let mut store = lock(&self.state.store);
        let mut stored = Vec::with_capacity(objects.len());
        for (index, object) in objects.into_iter().enumerate() {
            let target = store.manifest_target(index, &object)?;
            stored.push(store.put(&target, object, &now));
        }
        Ok(stored)
    }

    /// Stores a pod at `/api/v1/namespaces/<metadata.namespace>/pods/<metadata.name>`.
    pub fn put_pod(&self, pod: Value) -> Value {
        let namespace = pod["metadata"]["namespace"]
            .as_str()
            .expect("a pod has metadata.namespace")
            .to_owned();
        self.put_object(&format!("/api/v1/namespaces/{namespace}/pods"), pod)
    }

    /// Stores a node at `/api/v1/nodes/<metadata.name>`.
    pub fn put_node(&self, node: Value) -> Value {
        self.put_object("/api/v1/nodes", node)
    }

    /// Stores a ConfigMap at `/api/v1/namespaces/<metadata.namespace>/configmaps/<name>`.
    pub fn put_config_map(&self, config_map: Value) -> Value {
        let namespace = config_map["metadata"]["namespace"]
            .as_str()
            .expect("a ConfigMap has metadata.namespace")
            .to_owned();
        self.put_object(
            &format!("/api/v1/namespaces/{namespace}/configmaps"),
            config_map,
        )
    }

    /// Stores an active namespace `name` with `labels` (see
    /// [`namespace_json`](crate::namespace_json)).
    pub fn put_namespace(&self, name: &str, labels: &[(&str, &str)]) -> Value {
        self.put_object("/api/v1/namespaces", crate::namespace_json(name, labels))
    }

    /// Stores an Endpoints object (see [`EndpointsBuilder`](crate::EndpointsBuilder)) at
    /// `/api/v1/namespaces/<metadata.namespace>/endpoints/<metadata.name>`.
    pub fn put_endpoints(&self, endpoints: Value) -> Value {
        let namespace = endpoints["metadata"]["namespace"]
            .as_str()
            .expect("an Endpoints object has metadata.namespace")
            .to_owned();
        self.put_object(
            &format!("/api/v1/namespaces/{namespace}/endpoints"),
            endpoints,
        )
    }

    /// The server's current resourceVersion (of its last write).
    pub fn resource_version(&self) -> u64 {
        lock(&self.state.store).revision()
    }

    /// Answers TokenReviews of `token` with `outcome` (replacing an earlier one). Tokens
    /// without an outcome get `status.error`.
    pub fn set_token_review(&self, token: &str, outcome: TokenReviewOutcome) {
        lock(&self.state.reviews).insert(token.to_owned(), outcome);
    }

    /// Forgets the outcome of `token`.
    pub fn clear_token_review(&self, token: &str) {
        lock(&self.state.reviews).remove(token);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.log).clone()
    }

    /// The requests received so far for `path` (ignoring the query), oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state.log)
            .iter()
            .filter(|r| r.path_without_query() == path)
            .cloned()
            .collect()
    }

    /// Empties the request log (the request count keeps counting).
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
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
            .expect("the server owns the counter");
    }

    /// Requests the store has answered so far (faulted ones excepted).
    pub fn answered_count(&self) -> usize {
        *self.state.answered.borrow()
    }

    /// Waits until the store has answered `count` requests: their writes are visible then.
    pub async fn wait_for_answers(&self, count: usize) {
        let mut answered = self.state.answered.subscribe();
        answered
            .wait_for(|n| *n >= count)
            .await
            .expect("the server owns the counter");
    }

    /// TCP connections accepted so far (keep-alive reuse keeps this low).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Adds a fault; the first matching fault with uses left applies to a request.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state.faults).push(fault);
    }
}

async fn serve_request(
    state: Arc<State>,
    peer: Arc<Peer>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Abort> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Abort(e.to_string()))?
        .to_bytes();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = ApiRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        content_type: header(CONTENT_TYPE)
            .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default(),
        accept: header(http::header::ACCEPT).unwrap_or_default(),
        authorization: header(AUTHORIZATION),
        client_cert_user: peer.client_cert.as_ref().map(|(cn, _)| cn.clone()),
        body,
    };
    state.record(&request);
    let reply = match state.take_fault(&request) {
        Some(fault) => {
            if let Some(delay) = fault.delay {
                tokio::time::sleep(delay).await;
            }
            match fault.status {
                Some((code, message)) => {
                    let status = Status::failure(code, message);
                    return Ok(json_response(code, status.to_json()));
                }
                None => state.handle(&request),
            }
        }
        None => state.handle(&request),
    };
    Ok(match reply {
        Answer::Reply(reply) => json_response(reply.code, reply.body),
        Answer::Watch(start) => watch::respond(state, *start),
    })
}

fn json_response(code: u16, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(CONTENT_TYPE, "application/json")
        .body(serve::full(body))
        .expect("a valid status code and header")
}

fn target(path: &str) -> Target {
    Target::parse(path).unwrap_or_else(|| panic!("not an apiserver resource path: {path}"))
}

// === impl RecordedRequest ===

impl RecordedRequest {
    /// The path without the query.
    pub fn path_without_query(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(p, _)| p)
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

// === impl TokenReviewOutcome ===

impl TokenReviewOutcome {
    /// Authenticated as `user`, echoing the requested audiences.
    pub fn authenticated(user: Value) -> Self {
        Self::Authenticated {
            user,
            audiences: None,
        }
    }
}

// === impl Fault ===

impl Fault {
    /// Answer the next request to `path` (exact, without query; `*` for any path) with
    /// `code` and a `Status` body.
    pub fn status(path: &str, code: u16) -> Self {
        Self {
            method: None,
            path: path.to_owned(),
            remaining: 1,
            status: Some(code),
            delay: None,
            message: None,
        }
    }

    /// Hold the next request to `path` for `delay`, then answer it normally.
    pub fn delay(path: &str, delay: Duration) -> Self {
        Self {
            method: None,
            path: path.to_owned(),
            remaining: 1,
            status: None,
            delay: Some(delay),
            message: None,
        }
    }

    /// Applies to the next `times` matching requests (default 1).
    pub fn times(mut self, times: usize) -> Self {
        self.remaining = times.max(1);
        self
    }

    /// Applies only to requests with this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.parse().expect("an HTTP method"));
        self
    }

    /// Also waits `delay` before answering with the status.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The `Status.message` of the injected status.
    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_owned());
        self
    }

    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        self.remaining > 0
            && self.method.as_ref().is_none_or(|m| m == method)
            && (self.path == "*" || self.path == path)
    }
}
