//! gRPC calls as SPIRE counts them: one call counter per method, keyed
//! `rpc.<service parts>.<method>` in snake case (`/spire.api.server.agent.v1.Agent/AttestAgent`
//! → `rpc_agent_v1_agent_attest_agent`), labelled with the status the call ended with.
//!
//! [`RpcMetrics`] resolves every method a process serves to its handle once, at startup; a
//! call looks its path up in that immutable table (no lock, no allocation) and records with
//! atomics. Methods outside the table are not counted (their paths come from callers).
//! [`RpcMetricsLayer`] is the tower layer for a tonic server; the server's authorization
//! layer uses the table directly.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tonic::Code;
use tower::{Layer, Service};

use crate::{CallCounter, CallTimer, Registry};

/// SPIRE's metric key of a gRPC method (`/pkg.Service/Method`), `rpc` excluded.
pub fn method_key(full_method: &str) -> Vec<String> {
    let trimmed = full_method.trim_start_matches('/');
    let (service, method) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    let mut key: Vec<String> = if let Some(rest) = service.strip_prefix("spire.api.server.") {
        if rest.starts_with("logger.") {
            vec!["logger".to_owned()]
        } else {
            rest.split('.').map(metric_key).collect()
        }
    } else if let Some(rest) = service.strip_prefix("spire.api.agent.") {
        vec![metric_key(rest.rsplit('.').next().unwrap_or(rest))]
    } else if let Some(rest) = service.strip_prefix("spire.agent.") {
        vec![metric_key(rest.rsplit('.').next().unwrap_or(rest))]
    } else if service == "SpiffeWorkloadAPI" {
        vec!["workload_api".to_owned()]
    } else if service == "envoy.service.secret.v3.SecretDiscoveryService" {
        vec!["sds".to_owned(), "v3".to_owned()]
    } else if service == "grpc.health.v1.Health" {
        vec!["health".to_owned()]
    } else {
        let rest = service.strip_prefix("spirers.server.").unwrap_or(service);
        rest.split('.').map(metric_key).collect()
    };
    key.push(metric_key(method));
    key
}

/// SPIRE's snake case: a word starts at an upper-case letter that follows a lower-case one,
/// or that is followed by a lower-case one (`BatchNewX509SVID` → `batch_new_x509svid`,
/// `FetchX509Bundles` → `fetch_x509_bundles`, `ABCDef` → `abc_def`).
pub fn metric_key(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase() || (next_lower && prev != '_') {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The call counters of the methods one process serves, resolved once.
#[derive(Clone, Debug, Default)]
pub struct RpcMetrics {
    methods: Arc<HashMap<String, CallCounter>>,
}

impl RpcMetrics {
    /// A call counter `rpc.<method key>` for each of `full_methods` (`/pkg.Service/Method`).
    pub fn new<'a>(registry: &Registry, full_methods: impl IntoIterator<Item = &'a str>) -> Self {
        let methods = full_methods
            .into_iter()
            .map(|m| {
                let key = method_key(m);
                let mut parts: Vec<&str> = vec!["rpc"];
                parts.extend(key.iter().map(String::as_str));
                (m.to_owned(), registry.call(&parts, &[]))
            })
            .collect();
        Self {
            methods: Arc::new(methods),
        }
    }

    /// Starts timing a call of `full_method`; `None` for a method outside the table.
    pub fn start(&self, full_method: &str) -> Option<CallTimer> {
        self.methods.get(full_method).map(CallCounter::start)
    }

    /// The counter of `full_method`, if it is in the table.
    pub fn get(&self, full_method: &str) -> Option<&CallCounter> {
        self.methods.get(full_method)
    }
}

/// The status a gRPC response head carries: a call refused before any message has
/// `grpc-status` in its headers; otherwise it has succeeded so far (streams are counted when
/// their response starts).
pub fn head_status(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()))
}

/// Counts and times every call of a tonic server in an [`RpcMetrics`] table.
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    table: RpcMetrics,
}

impl RpcMetricsLayer {
    /// The layer over `table`.
    pub fn new(table: RpcMetrics) -> Self {
        Self { table }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            table: self.table.clone(),
        }
    }
}

/// The service of [`RpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RpcMetricsService<S> {
    inner: S,
    table: RpcMetrics,
}

impl<S, B, RB> Service<http::Request<B>> for RpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let timer = self.table.start(request.uri().path());
        RpcFuture {
            inner: self.inner.call(request),
            timer,
        }
    }
}

pin_project! {
    /// The response future of [`RpcMetricsService`]: records the call when its head is ready.
    #[derive(Debug)]
    pub struct RpcFuture<F> {
        #[pin]
        inner: F,
        timer: Option<CallTimer>,
    }
}

impl<F, RB, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(timer) = this.timer.take() {
            timer.finish(match &output {
                Ok(response) => head_status(response.headers()),
                Err(_) => Code::Unknown,
            });
        }
        Poll::Ready(output)
    }
}
