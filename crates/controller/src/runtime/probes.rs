//! The health probe endpoints (controller-runtime's `healthProbeBindAddress`): liveness and
//! readiness over plain HTTP/1.1, each answering `ok`. Readiness waits for the first complete
//! view of the cluster.

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
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut stopped => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let probes = probes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let probes = probes.clone();
                async move {
                    let path = request.uri().path();
                    let (status, body) = if path == probes.liveness {
                        (StatusCode::OK, "ok")
                    } else if path == probes.readiness {
                        if probes.ready.load(Ordering::Acquire) {
                            (StatusCode::OK, "ok")
                        } else {
                            (StatusCode::INTERNAL_SERVER_ERROR, "not ready")
                        }
                    } else {
                        (StatusCode::NOT_FOUND, "not found")
                    };
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
