//! spire-agent's application layer: resolved configuration, the plugin catalog, and the run
//! loop that brings the agent to an identity and then serves the Workload API.
#![forbid(unsafe_code)]

mod admin;
pub mod config;
mod health;
mod run;

pub use config::{AgentConfig, KeyManagerChoice, NodeAttestorChoice, Overrides};
pub use health::agent_checker;
pub use run::{run, run_with_logger};

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The configuration file could not be parsed.
    #[error(transparent)]
    Parse(#[from] spire_config::ConfigError),
    /// The link to the server failed for good (banned, cannot re-attest, …).
    #[error(transparent)]
    Manager(#[from] spire_agent_manager::Error),
    /// A plugin could not be set up.
    #[error(transparent)]
    Plugin(#[from] spire_agent_plugin::Error),
    /// The Workload API endpoint failed.
    #[error(transparent)]
    Workload(#[from] spire_agent_workload::Error),
    /// A long-running task panicked, failed or ended early; the message names it.
    #[error(transparent)]
    Task(#[from] spire_task::Error),
}
