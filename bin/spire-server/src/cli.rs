//! The command tree. Each subcommand lives in its own module under `cli/`.

mod agent;
mod bundle;
mod common;
mod entry;
mod federation;
#[cfg(test)]
mod flag_tests;
mod healthcheck;
mod jwt;
mod localauthority;
mod logger;
mod run;
mod token;
mod x509;

pub(crate) use common::Reported;

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
    /// Start the server.
    Run(run::RunArgs),
    /// Check a configuration file without starting the server.
    Validate(run::RunArgs),
    /// Ask the server whether it is healthy.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Work with registration entries.
    #[command(subcommand)]
    Entry(entry::EntryCommand),
    /// Work with trust bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Create join tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Issue X509-SVIDs directly.
    #[command(subcommand)]
    X509(x509::X509Command),
    /// Issue JWT-SVIDs directly.
    #[command(subcommand)]
    Jwt(jwt::JwtCommand),
    /// Work with attested agents.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Manage dynamic federation relationships.
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Read or change the running server's log level.
    #[command(subcommand)]
    Logger(logger::LoggerCommand),
    /// Manage the local X.509 and JWT authorities (prepare, activate, taint, revoke).
    #[command(subcommand, name = "localauthority")]
    LocalAuthority(localauthority::LocalAuthorityCommand),
    /// Taint or revoke an X.509 upstream authority.
    #[command(subcommand, name = "upstreamauthority")]
    UpstreamAuthority(localauthority::UpstreamAuthorityCommand),
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run(args) => run::run(args).await,
            Command::Validate(args) => run::validate(args).await,
            client => {
                let (mut out, mut err, mut stdin) =
                    (std::io::stdout(), std::io::stderr(), std::io::stdin());
                let mut io = common::Io {
                    out: &mut out,
                    err: &mut err,
                    stdin: &mut stdin,
                };
                run_client(client, &mut io).await
            }
        }
    }
}

/// The admin-API client commands, writing to `io`.
async fn run_client(command: Command, io: &mut common::Io<'_>) -> anyhow::Result<()> {
    match command {
        Command::Healthcheck(args) => healthcheck::run(args, io).await,
        Command::Entry(c) => entry::run(c, io).await,
        Command::Bundle(c) => bundle::run(c, io).await,
        Command::Token(c) => token::run(c, io).await,
        Command::X509(c) => x509::run(c, io).await,
        Command::Jwt(c) => jwt::run(c, io).await,
        Command::Agent(c) => agent::run(c, io).await,
        Command::Federation(c) => federation::run(c, io).await,
        Command::Logger(c) => logger::run(c, io).await,
        Command::LocalAuthority(c) => localauthority::run(c, io).await,
        Command::UpstreamAuthority(c) => localauthority::run_upstream(c, io).await,
        Command::Run(_) | Command::Validate(_) => {
            unreachable!("server-side commands are dispatched by Cli::run")
        }
    }
}
