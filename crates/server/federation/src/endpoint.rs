//! The bundle endpoint server (`federation { bundle_endpoint { … } }`): HTTPS on its own
//! address, `GET /` answering this trust domain's SPIFFE bundle document with the configured
//! `spiffe_refresh_hint`. HTTP/1.1 and HTTP/2 are served with limits on connections,
//! handshakes, headers, streams and resets, so a flood cannot grow memory
//! (GHSA-m7vp-hqwv-7m5x: unbounded HTTP/2 memory on SPIRE's non-gRPC endpoints).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use spire_svid::Bundle;
use spire_task::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::tls::provider;

mod document;
mod identity;

pub use identity::{DEFAULT_FILE_SYNC_INTERVAL, ServingCertFile, ServingIdentity};

use identity::IdentityResolver;

/// SPIRE's default `refresh_hint` for the bundle endpoint.
pub const DEFAULT_REFRESH_HINT: Duration = Duration::from_secs(300);

/// Where and how the bundle endpoint serves.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// `bundle_endpoint { address, port }`.
    pub address: SocketAddr,
    /// `refresh_hint`, written into every served document (whole seconds).
    pub refresh_hint: Duration,
    /// Resource limits.
    pub limits: EndpointLimits,
}

/// Bounds on what clients can make the endpoint hold. The defaults suit a bundle endpoint,
/// which answers one small document to a few pollers.
#[derive(Clone, Debug)]
pub struct EndpointLimits {
    /// Connections served at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for an HTTP/1 request head, and for the next one on an idle
    /// keep-alive connection (SPIRE: `ReadHeaderTimeout` 10 s).
    pub header_read_timeout: Duration,
    /// Age after which a connection is asked to close (HTTP/2 GOAWAY, HTTP/1 after the
    /// current response); this also ends idle HTTP/2 connections.
    pub max_connection_age: Duration,
    /// Time a closing connection gets to finish before it is dropped.
    pub shutdown_grace: Duration,
    /// Largest request header block (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`) and HTTP/1
    /// read buffer, in bytes.
    pub max_header_list_size: u32,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    /// HTTP/2 streams reset by the client before the server saw them, tolerated before
    /// GOAWAY (the "rapid reset" bound).
    pub max_pending_accept_reset_streams: usize,
    /// HTTP/2 streams the server had to reset because of client errors, tolerated before
    /// GOAWAY.
    pub max_local_error_reset_streams: usize,
    /// Interval of HTTP/2 PINGs that detect dead peers.
    pub keep_alive_interval: Duration,
    /// Time to wait for a PING acknowledgement.
    pub keep_alive_timeout: Duration,
}

/// A bound bundle endpoint, ready to [`serve`](Self::serve).
pub struct BundleEndpoint {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    bundles: watch::Receiver<Arc<Bundle>>,
    refresh_hint_secs: i64,
    limits: EndpointLimits,
}

/// What every connection task shares.
struct Connection {
    tls: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    document: watch::Receiver<Bytes>,
    limits: EndpointLimits,
    shutdown: Shutdown,
}

// === impl EndpointConfig ===

impl EndpointConfig {
    /// SPIRE's defaults on `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            refresh_hint: DEFAULT_REFRESH_HINT,
            limits: EndpointLimits::default(),
        }
    }
}

// === impl EndpointLimits ===

impl Default for EndpointLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(5),
            max_header_list_size: 16 * 1024,
            max_concurrent_streams: 16,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 32,
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

// === impl BundleEndpoint ===

impl std::fmt::Debug for BundleEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleEndpoint")
            .field("local_addr", &self.local_addr)
            .field("refresh_hint_secs", &self.refresh_hint_secs)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl BundleEndpoint {
    /// Binds `config.address` and prepares TLS (1.2 and 1.3, ALPN `h2` and `http/1.1`) with
    /// `identity`. `bundles` is this trust domain's bundle; each new value is rendered once
    /// and served from then on.
    pub async fn bind(
        config: EndpointConfig,
        identity: ServingIdentity,
        bundles: watch::Receiver<Arc<Bundle>>,
    ) -> Result<Self, Error> {
        let bind_error = |source| Error::Bind {
            address: config.address,
            source,
        };
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let mut tls = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(IdentityResolver::new(identity)));
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let refresh_hint_secs = i64::try_from(config.refresh_hint.as_secs()).unwrap_or(i64::MAX);
        Ok(Self {
            listener,
            local_addr,
            tls: TlsAcceptor::from(Arc::new(tls)),
            http: Arc::new(http_builder(&config.limits)),
            bundles,
            refresh_hint_secs,
            limits: config.limits,
        })
    }

    /// The address actually bound (the port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `stop`, then stops accepting, asks open connections to close and waits
    /// up to `shutdown_grace` for them.
    pub async fn serve(mut self, stop: Shutdown) {
        let rendered = document::render(&self.bundles.borrow_and_update(), self.refresh_hint_secs);
        let (document, _) = watch::channel(rendered);
        // The connections' own signal: triggered only once the listener is closed.
        let shutdown = Shutdown::new();
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let shared = Arc::new(Connection {
            tls: self.tls.clone(),
            http: self.http.clone(),
            document: document.subscribe(),
            limits: self.limits.clone(),
            shutdown: shutdown.clone(),
        });
        let mut bundle_feed_open = true;
        tracing::info!(address = %self.local_addr, "Serving bundle endpoint");
        loop {
            tokio::select! {
                biased;
                // Server shutdown.
                () = stop.stopped() => break,
                // A new local bundle: render it once for every later request.
                changed = self.bundles.changed(), if bundle_feed_open => match changed {
                    Ok(()) => {
                        let bundle = self.bundles.borrow_and_update().clone();
                        document.send_replace(document::render(&bundle, self.refresh_hint_secs));
                    }
                    // The feed ended: keep serving the last document.
                    Err(_) => bundle_feed_open = false,
                },
                // A connection slot is free and a client connected.
                accepted = accept(&self.listener, &permits) => match accepted {
                    Ok((tcp, peer, permit)) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            shared.serve(tcp, peer).await;
                            drop(permit);
                        });
                    }
                    Err(error) => {
                        // Typically EMFILE; pausing keeps the loop from spinning on it.
                        tracing::warn!(%error, "Bundle endpoint failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        shutdown.trigger();
        let all = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(
            self.limits.shutdown_grace + Duration::from_millis(100),
            permits.acquire_many(all),
        )
        .await;
        if drained.is_err() {
            tracing::warn!("Bundle endpoint stopped with connections still closing");
        }
        tracing::info!(address = %self.local_addr, "Bundle endpoint stopped");
    }
}

/// Waits for a connection slot, then for a connection. Cancel-safe: a slot taken while no
/// client arrived is simply released.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("connection semaphore closed"))?;
    let (tcp, peer) = listener.accept().await?;
    Ok((tcp, peer, permit))
}

fn http_builder(limits: &EndpointLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper refuses HTTP/1 read buffers under 8 KiB.
    let h1_buffer = usize::try_from(limits.max_header_list_size)
        .unwrap_or(usize::MAX)
        .max(8 * 1024);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(h1_buffer)
        .max_headers(64)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.max_local_error_reset_streams)
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(limits.keep_alive_timeout)
        // Requests have no body: small windows bound what a client can make us buffer.
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(64 * 1024)
        .max_send_buf_size(64 * 1024)
        .max_frame_size(16 * 1024);
    builder
}

// === impl Connection ===

impl Connection {
    /// TLS handshake, then HTTP until the client leaves, the connection is too old, or the
    /// server stops.
    async fn serve(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let handshake =
            tokio::time::timeout(self.limits.tls_handshake_timeout, self.tls.accept(tcp));
        let tls = tokio::select! {
            // Server shutdown during the handshake.
            () = self.shutdown.stopped() => return,
            // Handshake finished, failed or timed out.
            result = handshake => match result {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(caller_addr = %peer, %error, "Bundle endpoint TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(caller_addr = %peer, "Bundle endpoint TLS handshake timed out");
                    return;
                }
            },
        };
        let document = self.document.clone();
        let service = service_fn(move |request| {
            let body = document.borrow().clone();
            async move { Ok::<_, Infallible>(document::respond(&request, body)) }
        });
        let connection = self.http.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(connection);
        let max_age = tokio::time::sleep(self.limits.max_connection_age);
        tokio::pin!(max_age);
        tokio::select! {
            // The client closed the connection, or it failed.
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(caller_addr = %peer, %error, "Bundle endpoint connection ended with an error");
                }
                return;
            }
            // Old enough: ask the client to reconnect.
            () = &mut max_age => {}
            // Server shutdown.
            () = self.shutdown.stopped() => {}
        }
        connection.as_mut().graceful_shutdown();
        if tokio::time::timeout(self.limits.shutdown_grace, connection)
            .await
            .is_err()
        {
            tracing::debug!(caller_addr = %peer, "Bundle endpoint connection dropped after the shutdown grace");
        }
    }
}
