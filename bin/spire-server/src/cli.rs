//! The command tree. Each subcommand lives in its own module under `cli/`.

mod demo;

use clap::{Parser, Subcommand};

/// SPIRE-compatible SPIFFE server.
#[derive(Debug, Parser)]
#[command(name = "spire-server", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates (or reuses) a local CA, registers an entry and mints an X509-SVID for it.
    Demo(demo::DemoArgs),
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Demo(args) => demo::run(args).await,
        }
    }
}
