//! A small HTTPS client for the test apiserver: plain requests and watch streams, over
//! HTTP/1.1 or HTTP/2, with the server's CA and bearer token.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed request fails the test loudly

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use spire_test_k8s::TestApiServer;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub(crate) const JSON: &str = "application/json";
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
pub(crate) const JSON_PATCH: &str = "application/json-patch+json";

/// Talks to one [`TestApiServer`].
pub(crate) struct Client {
    addr: String,
    token: String,
    tls: TlsConnector,
    http2: bool,
}

/// An open watch: newline-delimited JSON events.
pub(crate) struct Watch {
    body: Incoming,
    buffer: Vec<u8>,
    /// The HTTP version the response came over.
    pub(crate) version: Version,
    /// The response's `Transfer-Encoding` header, if any.
    pub(crate) transfer_encoding: Option<String>,
}

impl Client {
    /// An HTTP/1.1 client.
    pub(crate) fn new(server: &TestApiServer) -> Self {
        Self::with_protocol(server, false)
    }

    /// An HTTP/2 client.
    pub(crate) fn http2(server: &TestApiServer) -> Self {
        Self::with_protocol(server, true)
    }

    fn with_protocol(server: &TestApiServer, http2: bool) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(server.ca_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![if http2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        Self {
            addr: server.url().trim_start_matches("https://").to_owned(),
            token: server.token().to_owned(),
            tls: TlsConnector::from(Arc::new(config)),
            http2,
        }
    }

    /// Sends one request on a new connection.
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Response<Incoming> {
        let tcp = TcpStream::connect(&self.addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let io = TokioIo::new(self.tls.connect(name, tcp).await.unwrap());
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", JSON);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if self.http2 {
            request = request.uri(format!("https://{}{path}", self.addr));
        } else {
            request = request.header("host", &self.addr);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        if self.http2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        }
    }

    /// A request with an optional JSON body; the status code and the JSON answer.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let response = self.send(method, path, content_type, body).await;
        let code = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {bytes:?}"));
        (code, value)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, "", None).await
    }

    pub(crate) async fn create(&self, collection: &str, object: &Value) -> (u16, Value) {
        self.request("POST", collection, JSON, Some(object)).await
    }

    pub(crate) async fn put(&self, path: &str, object: &Value) -> (u16, Value) {
        self.request("PUT", path, JSON, Some(object)).await
    }

    pub(crate) async fn patch(
        &self,
        path: &str,
        content_type: &str,
        patch: &Value,
    ) -> (u16, Value) {
        self.request("PATCH", path, content_type, Some(patch)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        self.request("DELETE", path, "", None).await
    }

    /// The items of a list, asserting it succeeded.
    pub(crate) async fn list(&self, path: &str) -> Value {
        let (code, list) = self.get(path).await;
        assert_eq!(code, 200, "{path}: {list}");
        list
    }

    /// Starts a watch (`path` carries the query, `watch=true` included).
    pub(crate) async fn watch(&self, path: &str) -> Watch {
        let response = self.send("GET", path, "", Vec::new()).await;
        assert_eq!(response.status(), 200, "{path}");
        let version = response.version();
        let transfer_encoding = response
            .headers()
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        Watch {
            body: response.into_body(),
            buffer: Vec::new(),
            version,
            transfer_encoding,
        }
    }
}

impl Watch {
    /// The next event, `None` once the stream ended.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = self.body.frame().await?.unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next event's type and object, panicking at the end of the stream.
    pub(crate) async fn event(&mut self) -> (String, Value) {
        let event = self.next().await.expect("the watch is still open");
        (
            event["type"].as_str().unwrap().to_owned(),
            event["object"].clone(),
        )
    }

    /// The next event other than a BOOKMARK.
    pub(crate) async fn change(&mut self) -> (String, Value) {
        loop {
            let (kind, object) = self.event().await;
            if kind != "BOOKMARK" {
                return (kind, object);
            }
        }
    }
}

/// `metadata.name` of each item of a list.
pub(crate) fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `metadata.resourceVersion` of an object or list.
pub(crate) fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}
