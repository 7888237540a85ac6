//! In-process harness for end-to-end tests: a real spire-server and spire-agent on temp dirs.
//!
//! [`ServerBuilder`] writes a server configuration (SQLite file or PostgreSQL, disk key
//! manager, `join_token` attestor) into a temporary directory, picks a free loopback port and
//! runs [`spire_server_app::run`] on the current runtime; [`TestServer`] then talks to it over
//! its admin Unix socket (entries, join tokens, agents, bundle). [`TestServer::agent`] returns
//! an [`AgentBuilder`] already pointed at that server and bootstrapped with its bundle;
//! [`TestAgent`] runs [`spire_agent_app::run`] and hands out rust-spiffe Workload API clients.
//! Federation helpers (bundles of other trust domains, relationships) are methods of
//! [`TestServer`] too.
//! Every wait is bounded by [`WAIT`] and fails instead of hanging.
#![forbid(unsafe_code)]

mod agent;
mod federation;
mod server;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use agent::{AgentBuilder, TestAgent};
pub use server::{ServerBuilder, TestServer};
pub use support::{
    chain_verifies, entry, eventually, init_logging, leaf_serial, leaf_spiffe_id, next_matching,
    spiffe_id, uid_selector,
};

pub use spiffe;
pub use spire_proto::spire::api::types;
pub use spire_time::{Clock, ManualClock, SharedClock, SystemClock};

/// The trust domain the builders use unless told otherwise.
pub const TRUST_DOMAIN: &str = "example.org";

/// The longest any harness wait lasts before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// A harness failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server failed to start or stopped with an error.
    #[error("server: {0}")]
    Server(#[from] spire_server_app::Error),
    /// The agent failed to start or stopped with an error.
    #[error("agent: {0}")]
    Agent(#[from] spire_agent_app::Error),
    /// An admin API call failed.
    #[error("{call} failed: {status}")]
    Rpc {
        /// The RPC.
        call: &'static str,
        /// Its status.
        status: tonic::Status,
    },
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Workload API failed.
    #[error("workload API: {0}")]
    Workload(#[from] spiffe::workload_api::WorkloadApiError),
    /// A condition did not hold within [`WAIT`] (or the given bound).
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// Something answered what it should not have.
    #[error("{0}")]
    Unexpected(String),
}

/// Result alias for harness calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn rpc(call: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Rpc { call, status }
    }
}

/// A temporary directory shared by handles that outlive each other (an agent restarted in
/// the same directory); removed when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Dir(Arc<tempfile::TempDir>);

// === impl Dir ===

impl Dir {
    /// A new, empty temporary directory.
    pub fn new() -> Result<Self> {
        tempfile::Builder::new()
            .prefix("spire-it-")
            .tempdir()
            .map(|d| Self(Arc::new(d)))
            .map_err(Error::io("creating a temporary directory"))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released: the server config needs a number).
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("finding a free port"))
}

/// A clock for tests that move time: a [`ManualClock`] frozen at the real current time, and
/// the same clock as a [`SharedClock`] for the builders.
pub fn manual_clock() -> (ManualClock, SharedClock) {
    let clock = ManualClock::new(SystemClock.now());
    let shared: SharedClock = Arc::new(clock.clone());
    (clock, shared)
}
