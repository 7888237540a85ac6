//! Unix-socket serving for gRPC: socket setup, and an adapter that lets gRPC C-core clients in.
//!
//! Some gRPC clients send the socket path as `:authority`: gRPC C-core clients (grpcio /
//! py-spiffe, grpc-java) percent-encoded (`%2Ftmp%2Fspire-agent%2Fpublic%2Fapi.sock`), and
//! kubelets before 1.26 (grpc-go's passthrough resolver) raw, exactly as configured
//! (`/var/lib/kubelet/plugins/csi.spiffe.io/csi.sock`). The `http` crate behind h2 rejects both
//! and h2 resets the stream. [`FixedConn`] sits between an accepted
//! [`tokio::net::UnixStream`] and h2: it re-encodes every client header block
//! ([`AuthorityRewriter`], sans-IO) with any `:authority` that the `http` crate would reject
//! replaced by `localhost` (a bare file name such as `csi.sock` is a valid authority and
//! stays). Every Unix socket spire-rs serves (agent, CSI driver) goes through it.
//! [`incoming`] turns a listener into the stream of connections that tonic's
//! `serve_with_incoming` takes; handlers keep reading
//! [`tonic::transport::server::UdsConnectInfo`] (peer address and SO_PEERCRED).
#![forbid(unsafe_code)]

#[cfg(feature = "tonic")]
mod conn;
mod hpack;
mod rewrite;
mod socket;

#[cfg(feature = "tonic")]
pub use conn::{FixedConn, incoming};
pub use rewrite::{
    AuthorityRewriter, HeaderList, MAX_HEADER_BLOCK, MAX_HEADER_LIST, OUT_FRAME_SIZE, check_output,
};
pub use socket::bind;

use std::io;
use std::path::PathBuf;

/// Errors of socket setup and of the `:authority` adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The socket path exists and is not a socket; it is left alone.
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    /// The client did not open with the HTTP/2 connection preface.
    #[error("invalid HTTP/2 connection preface")]
    Preface,
    /// A client frame breaks HTTP/2 framing rules.
    #[error("malformed HTTP/2 frame: {0}")]
    Frame(&'static str),
    /// A header block (all its fragments, or its decoded header list) exceeds the limit.
    #[error("header block exceeds {0} bytes")]
    HeaderBlockTooLarge(usize),
    /// A header block failed HPACK decoding.
    #[error("HPACK decoding failed: {0}")]
    Hpack(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
