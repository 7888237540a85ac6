//! `-socketPath` and `-instance` of the commands that talk to the agent's public socket.

use std::path::PathBuf;

use clap::Args;
use spire_cli::{Client, SocketSpec};

/// SPIRE's default Workload API socket.
pub(crate) const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-agent/public/api.sock";

/// `-socketPath` and `-instance`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SocketArgs {
    /// Path to the SPIRE Agent API socket
    #[arg(long = "socketPath", value_name = "string", default_value = DEFAULT_SOCKET_PATH)]
    pub(crate) socket_path: String,
    /// Name that replaces %i in $SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE to locate the socket
    #[arg(long = "instance", value_name = "string", default_value = "")]
    pub(crate) instance: String,
}

impl SocketArgs {
    /// Where the public socket is looked for.
    const SPEC: SocketSpec = SocketSpec {
        default_path: DEFAULT_SOCKET_PATH,
        env: "SPIRE_AGENT_PUBLIC_SOCKET",
        template_env: "SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE",
    };

    /// The socket to dial, as SPIRE picks it.
    pub(crate) fn resolve(&self) -> anyhow::Result<PathBuf> {
        Self::SPEC.resolve(&self.socket_path, &self.instance, |name| {
            std::env::var(name).ok()
        })
    }

    /// Resolves the socket and dials it.
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.resolve()?).await)
    }
}
