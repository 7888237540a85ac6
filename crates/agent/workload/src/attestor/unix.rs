//! The `unix` workload attestor, now in `spire-agent-plugin`
//! ([`spire_agent_plugin::workloadattestor::unix`]); re-exported here for existing callers.

pub use spire_agent_plugin::workloadattestor::unix::{
    NAME, UnixAttestor, UnixConfig, account_name,
};
