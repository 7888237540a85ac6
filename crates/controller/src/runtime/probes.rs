//! The plain HTTP/1.1 endpoints: the health probes (controller-runtime's
//! `healthProbeBindAddress`: liveness and readiness, each answering `ok`; readiness waits for
//! the first complete view of the cluster) and the metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use spire_task::Shutdown;
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// Paths and readiness of the probe server.
#[derive(Clone, Debug)]
pub struct Probes {
    /// Liveness path (`/healthz`).
    pub liveness: String,
    /// Readiness path (`/readyz`).
    pub readiness: String,
    /// Set once the controller has a complete view.
    pub ready: Arc<AtomicBool>,
}

/// Serves the probes on `listener` until the process stops.
pub async fn serve(
    listener: TcpListener,
    probes: Probes,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let handler = move |path: &str| {
        if path == probes.liveness {
            (StatusCode::OK, "ok".to_owned())
        } else if path == probes.readiness {
            if probes.ready.load(Ordering::Acquire) {
                (StatusCode::OK, "ok".to_owned())
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "not ready".to_owned())
            }
        } else {
            (StatusCode::NOT_FOUND, "not found".to_owned())
        }
    };
    serve_text(listener, Arc::new(handler), shutdown).await
}

/// Serves `GET /metrics` from `metrics` on `listener` until the process stops.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let handler = move |path: &str| {
        if path == "/metrics" {
            (StatusCode::OK, metrics.render())
        } else {
            (StatusCode::NOT_FOUND, "not found".to_owned())
        }
    };
    serve_text(listener, Arc::new(handler), shutdown).await
}

type Handler = Arc<dyn Fn(&str) -> (StatusCode, String) + Send + Sync>;

async fn serve_text(
    listener: TcpListener,
    handler: Handler,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stopped => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (status, body) = handler(request.uri().path());
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
