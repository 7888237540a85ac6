//! The Prometheus listener: HTTP/1.1, the exposition on every path (as SPIRE's promhttp
//! handler answers), bounded like the health listener: a fixed number of connections, a
//! small request head, no keep-alive, a lifetime per connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Registry;

/// Open connections at most; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// The request head must arrive within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed this long after it was accepted.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Largest request head.
const MAX_HEADER_SIZE: usize = 8 * 1024;

/// The content type of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A listener failed to bind.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.Prometheus: cannot listen on {address}: {source}")]
pub struct BindError {
    address: String,
    #[source]
    source: std::io::Error,
}

/// Starts a binary's telemetry: SPIRE's `started` gauge (`version`, `trust_domain_id`), then the
/// Prometheus listener when `telemetry` configures one, bound here (a port in use stops the
/// start-up) and served by a supervised task named `metrics`.
pub async fn start(
    registry: &crate::Registry,
    telemetry: &crate::TelemetryConfig,
    version: &str,
    trust_domain: &str,
    tasks: &mut spire_task::Supervisor,
) -> Result<(), BindError> {
    registry
        .gauge(
            &["started"],
            &[("version", version), ("trust_domain_id", trust_domain)],
        )
        .set(1);
    let Some((host, port)) = &telemetry.prometheus else {
        return Ok(());
    };
    let listener = MetricsListener::bind(host, *port).await?;
    tasks.spawn(
        "metrics",
        listener.serve(registry.clone(), tasks.shutdown().stopped()),
    );
    Ok(())
}

/// A bound Prometheus listener, not serving yet.
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `host:port` as Go's `net.Listen` does ([`spire_health::listen`]).
    pub async fn bind(host: &str, port: u16) -> Result<Self, BindError> {
        let address = format!("{host}:{port}");
        let bind_error = |source| BindError {
            address: address.clone(),
            source,
        };
        let listener = spire_health::listen(host, port).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    /// The bound address (the port chosen by the system when `port` is 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Answers every request with `registry`'s exposition until `shutdown` resolves.
    pub async fn serve(self, registry: Registry, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_SIZE)
            .keep_alive(false);
        let http = Arc::new(http);
        let mut connections = JoinSet::new();
        tracing::info!(address = %self.local_addr, "Serving Prometheus metrics");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            tracing::debug!(caller_addr = %peer, "Metrics listener at its connection limit; closing a connection");
                            continue;
                        };
                        let http = http.clone();
                        let registry = registry.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                                let response = exposition(&registry);
                                async move { Ok::<_, Infallible>(response) }
                            });
                            let connection = http.serve_connection(TokioIo::new(tcp), service);
                            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                                Ok(Ok(())) => {}
                                Ok(Err(error)) => tracing::debug!(caller_addr = %peer, %error, "Metrics connection failed"),
                                Err(_) => tracing::debug!(caller_addr = %peer, "Metrics connection closed at its time limit"),
                            }
                            drop(permit);
                        });
                    }
                    Err(error) => {
                        // Typically EMFILE; pausing keeps the loop from spinning on it.
                        tracing::warn!(%error, "Metrics listener failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        connections.shutdown().await;
    }
}

fn exposition(registry: &Registry) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(registry.render())));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
