//! The command tree. Each subcommand lives in its own module under `cli/`.

mod api;
mod debug;
mod doctor;
mod healthcheck;
mod logger;
mod run;
mod socket;

use clap::{Parser, Subcommand};
use spire_cli::Io;

/// SPIRE-compatible SPIFFE agent.
#[derive(Debug, Parser)]
#[command(name = "spire-agent", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the agent.
    Run(run::RunArgs),
    /// Check a configuration file without starting the agent.
    Validate(run::RunArgs),
    /// Ask the agent whether it is healthy.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Talk to the Workload API the way a workload does.
    #[command(subcommand)]
    Api(api::ApiCommand),
    /// Check, as this user, what an Envoy/Istio proxy needs from the agent socket.
    Doctor(doctor::DoctorArgs),
    /// Read or change the running agent's log level (admin socket).
    #[command(subcommand)]
    Logger(logger::LoggerCommand),
    /// Debug information about the running agent (admin socket).
    #[command(subcommand)]
    Debug(debug::DebugCommand),
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let (mut out, mut err, mut stdin) =
            (std::io::stdout(), std::io::stderr(), std::io::stdin());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            stdin: &mut stdin,
        };
        match self.command {
            Command::Run(args) => run::run(args).await,
            Command::Validate(args) => run::validate(args),
            Command::Healthcheck(args) => healthcheck::run(args, &mut io).await,
            Command::Api(command) => api::run(command, &mut io).await,
            Command::Doctor(args) => doctor::run(args, &mut io).await,
            Command::Logger(command) => logger::run(command, &mut io).await,
            Command::Debug(command) => debug::run(command, &mut io).await,
        }
    }
}
