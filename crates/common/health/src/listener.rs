//! The HTTP/1.1 listener of the live and ready paths (SPIRE's is Go's `net/http` without TLS,
//! which speaks HTTP/1.1 only). Bounded: a fixed number of connections, one small request
//! head each, no keep-alive, a lifetime per connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::check::Report;
use crate::{Error, HealthConfig, HealthLimits};

/// Go's `http.NotFound` body.
const NOT_FOUND_BODY: &str = "404 page not found\n";

/// A bound health listener, not serving yet; [`crate::Health::serve`] serves it.
#[derive(Debug)]
pub struct HealthListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    paths: Arc<Paths>,
    limits: HealthLimits,
}

#[derive(Debug)]
struct Paths {
    live: String,
    ready: String,
}

/// Listens on `host:port` as Go's `net.Listen("tcp", …)` does for SPIRE's operator
/// endpoints: an IP (brackets allowed) as it is, a host name at its first IPv4 address (else
/// its first address), so the default `localhost` binds 127.0.0.1. Shared by the health and
/// metrics listeners.
pub async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address found")
                })?
        }
    };
    TcpListener::bind(addr).await
}

// === impl HealthListener ===

impl HealthListener {
    /// Binds `bind_address:bind_port`. A host name binds its first IPv4 address (else its
    /// first address), as Go's `net.Listen` does for SPIRE's default `localhost`.
    pub async fn bind(config: &HealthConfig) -> Result<Self, Error> {
        if config.live_path == config.ready_path {
            return Err(Error::SamePath(config.live_path.clone()));
        }
        let address = config.address();
        let bind_error = |source| Error::Bind {
            address: address.clone(),
            source,
        };
        let listener = listen(&config.bind_address, config.bind_port)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            paths: Arc::new(Paths {
                live: config.live_path.clone(),
                ready: config.ready_path.clone(),
            }),
            limits: config.limits.clone(),
        })
    }

    /// The bound address (the port chosen by the system when `bind_port` is 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Answers probes from the latest report in `reports` until `shutdown` resolves; open
    /// connections are dropped then.
    pub(crate) async fn serve(
        self,
        reports: watch::Receiver<Arc<Report>>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_header_size(self.limits.max_header_size)
            .max_buf_size(self.limits.max_header_size.max(8 * 1024))
            .max_headers(self.limits.max_headers)
            .keep_alive(false);
        let http = Arc::new(http);
        let mut connections = JoinSet::new();
        tracing::info!(address = %self.local_addr, "Serving health checks");
        loop {
            tokio::select! {
                // Stopping.
                () = &mut shutdown => break,
                // A connection finished (its permit is already back).
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                // A client connected.
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let connection = Connection {
                                http: http.clone(),
                                paths: self.paths.clone(),
                                reports: reports.clone(),
                                lifetime: self.limits.connection_timeout,
                            };
                            connections.spawn(connection.serve(tcp, peer, permit));
                        }
                        Err(_) => {
                            // Full: close at once rather than queue.
                            tracing::debug!(caller_addr = %peer, "Health listener at its connection limit; closing a connection");
                            drop(tcp);
                        }
                    },
                    Err(error) => {
                        // Typically EMFILE; pausing keeps the loop from spinning on it.
                        tracing::warn!(%error, "Health listener failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        connections.shutdown().await;
        tracing::debug!(address = %self.local_addr, "Health listener stopped");
    }
}

/// What one connection task needs.
struct Connection {
    http: Arc<http1::Builder>,
    paths: Arc<Paths>,
    reports: watch::Receiver<Arc<Report>>,
    lifetime: Duration,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        let Self {
            http,
            paths,
            reports,
            lifetime,
        } = self;
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = respond(&paths, &reports.borrow(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(tcp), service);
        match tokio::time::timeout(lifetime, connection).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(caller_addr = %peer, %error, "Health check connection failed")
            }
            Err(_) => {
                tracing::debug!(caller_addr = %peer, "Health check connection closed at its time limit")
            }
        }
        drop(permit);
    }
}

/// The answer to a request for `path`: the live or ready verdict and body from `report`, or
/// Go's 404 for any other path. Any method is answered, as by SPIRE's `net/http` handlers.
fn respond(paths: &Paths, report: &Report, path: &str) -> Response<Full<Bytes>> {
    let (ok, body) = if path == paths.live {
        (report.live(), report.live_body())
    } else if path == paths.ready {
        (report.ready(), report.ready_body())
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(NOT_FOUND_BODY.as_bytes())));
        *response.status_mut() = StatusCode::NOT_FOUND;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return response;
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
