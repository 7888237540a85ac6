//! The agent's Workload API endpoint: workload attestation of each caller and the
//! `SpiffeWorkloadAPI` and `grpc.health.v1.Health` services on the public Unix socket.
//!
//! A caller is identified out of band, as SPIRE does: the PID from `SO_PEERCRED` of the
//! accepted connection is pinned with a pidfd, every configured [`WorkloadAttestor`] runs
//! against it, and the caller must still be the same live process afterwards ([`peer`]). The
//! union of the selectors subscribes to the agent cache ([`spire_agent_cache::Cache`]), whose
//! updates become the Workload API stream messages ([`response`]). JWT-SVIDs come from a
//! [`spire_agent_cache::JwtSvidSource`] (the agent manager's JWT-SVID cache) given to
//! [`Endpoint::with_jwt`].
#![forbid(unsafe_code)]

pub mod attestor;
mod endpoint;
pub mod peer;
pub mod response;
mod service;

pub use attestor::WorkloadAttestor;
pub use attestor::unix::{UnixAttestor, UnixConfig};
pub use endpoint::{DEFAULT_SOCKET_PATH, Endpoint, EndpointConfig, serve};
pub use service::{
    HeaderCheck, SECURITY_HEADER, ServiceSettings, WorkloadApi, check_security_header,
};

/// Errors of the Workload API endpoint and of workload attestation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One workload attestor failed for a caller (logged; the others still count).
    #[error("workload attestor {attestor:?} failed: {message}")]
    Attestor {
        /// The attestor's name.
        attestor: String,
        /// What went wrong.
        message: String,
    },
    /// Every workload attestor failed, or the caller could not be tracked.
    #[error("workload attestation failed")]
    AttestationFailed,
    /// The connection carries no peer PID (not a Unix socket, or no `SO_PEERCRED`).
    #[error("caller PID unavailable")]
    NoPeerPid,
    /// The caller exited (or its PID was reused) before attestation finished.
    #[error("caller is no longer being watched")]
    CallerGone,
    /// Plugin data of a workload attestor is invalid.
    #[error(transparent)]
    Config(#[from] spire_config::ConfigError),
    /// Setting up the socket failed.
    #[error("workload API socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: std::path::PathBuf,
        /// The cause.
        source: spire_uds::Error,
    },
    /// The gRPC server failed.
    #[error("workload API server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
