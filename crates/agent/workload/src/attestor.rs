//! Workload attestors: what the agent learns about a caller process, as selectors.
//!
//! The trait, [`attest_all`] and the built-ins live in `spire-agent-plugin`
//! ([`spire_agent_plugin::workloadattestor`]) beside the other agent plugin types; they are
//! re-exported here. Every configured attestor runs for each caller and their selectors are
//! unioned; a failing attestor is logged and left out, and attestation fails only when all of
//! them fail (SPIRE's rule), which this crate reports as [`Error::AttestationFailed`].

pub mod unix;

pub use spire_agent_plugin::workloadattestor::{WorkloadAttestor, attest_all};

use crate::Error;

impl From<spire_agent_plugin::Error> for Error {
    fn from(error: spire_agent_plugin::Error) -> Self {
        match error {
            spire_agent_plugin::Error::WorkloadAttestationFailed => Self::AttestationFailed,
            spire_agent_plugin::Error::PluginData(config) => Self::Config(config),
            other => Self::Attestor {
                attestor: String::new(),
                message: other.to_string(),
            },
        }
    }
}
