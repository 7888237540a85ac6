//! Dialing the binary's own gRPC socket, for checks that call their own API (the server's
//! admin API, the agent's Workload API).

use std::io;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the gRPC server listening on the Unix socket `path`. An `Ok` means the socket
/// accepted the connection (something listens there); whether it answers shows in the first
/// call. Callers bound the waits themselves (e.g. with `tokio::time::timeout`).
pub async fn unix_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
}
