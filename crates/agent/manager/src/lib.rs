//! The agent's link to the server: attestation, agent state, entry sync, SVID minting.
//!
//! [`Manager::start`] brings the agent to a usable identity (resuming the SVID in
//! `<data_dir>/agent-data.json` when it is still valid and its key is on disk, attesting
//! otherwise), synchronises once, and then keeps four loops running, as tasks of the agent's
//! [`spire_task::Supervisor`], until stop or a fatal error: entry/bundle sync (poll + push),
//! workload SVID minting, agent SVID rotation, and the push watch stream. The [`spire_agent_cache::Cache`] it feeds is what the workload
//! endpoints serve from; JWT-SVIDs are minted on request through [`Manager::jwt_svid_source`].
#![forbid(unsafe_code)]

mod attest;
mod convert;
pub mod details;
mod jwt;
mod loops;
mod manager;
pub mod state;
pub mod sync;
mod tls;

pub use manager::{Manager, ManagerConfig, TrustBundleFormat, TrustBundleSource};

/// A manager failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A plugin (key manager, node attestor) failed.
    #[error(transparent)]
    Plugin(#[from] spire_agent_plugin::Error),
    /// `agent-data.json` could not be read or written.
    #[error("agent state: {0}")]
    State(String),
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// A server call failed.
    #[error("{call} failed: {status}")]
    Rpc {
        /// The RPC.
        call: &'static str,
        /// What the server (or the transport) said.
        status: tonic::Status,
    },
    /// The server answered something unusable.
    #[error("invalid server response: {0}")]
    InvalidResponse(String),
    /// The server banned this agent; its SVID was removed.
    #[error("agent is banned")]
    Banned,
    /// The server no longer accepts this agent and it cannot attest again (join token).
    #[error("agent must re-attest but its node attestor cannot: {0}")]
    CannotReattest(String),
    /// The stop signal arrived before the agent was ready.
    #[error("stopped")]
    Stopped,
}

/// Result alias for manager calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Key manager failures surface as plugin failures.
impl From<spire_agent_plugin::keymanager::Error> for Error {
    fn from(e: spire_agent_plugin::keymanager::Error) -> Self {
        Self::Plugin(e.into())
    }
}

impl Error {
    pub(crate) fn rpc(call: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Rpc { call, status }
    }
}
