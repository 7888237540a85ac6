//! `spire-server run` and `spire-server validate`: the same flags (SPIRE's), one loads and
//! serves, the other only checks the configuration.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use spire_server_app::{Overrides, ServerConfig};
use spire_time::{SharedClock, SystemClock};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Server configuration file (HCL)
    #[arg(long = "config", default_value = "conf/server/server.conf")]
    config: PathBuf,
    /// Listen address; overrides bind_address
    #[arg(long = "bindAddress")]
    bind_address: Option<String>,
    /// Listen port; overrides bind_port
    #[arg(long = "serverPort")]
    server_port: Option<u16>,
    /// Directory for the server's state; overrides data_dir
    #[arg(long = "dataDir")]
    data_dir: Option<String>,
    /// Append logs to this file instead of stderr
    #[arg(long = "logFile")]
    log_file: Option<String>,
    /// Log line format: text or json
    #[arg(long = "logFormat")]
    log_format: Option<String>,
    /// Lowest level logged: debug, info, warn or error
    #[arg(long = "logLevel")]
    log_level: Option<String>,
    /// Include source file, line number and function name in log lines
    #[arg(long = "logSourceLocation", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    log_source_location: Option<bool>,
    /// Trust domain the server issues identities in; overrides trust_domain
    #[arg(long = "trustDomain")]
    trust_domain: Option<String>,
    /// Substitute $VAR and ${VAR} in the config file before parsing it
    #[arg(long = "expandEnv", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    expand_env: Option<bool>,
    /// Where to create the admin API socket; overrides socket_path
    #[arg(long = "socketPath")]
    socket_path: Option<String>,
}

impl RunArgs {
    fn load(&self) -> Result<ServerConfig, spire_server_app::Error> {
        let overrides = Overrides {
            bind_address: self.bind_address.clone(),
            server_port: self.server_port,
            data_dir: self.data_dir.clone(),
            log_file: self.log_file.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            trust_domain: self.trust_domain.clone(),
            socket_path: self.socket_path.clone(),
        };
        ServerConfig::load(&self.config, self.expand_env.unwrap_or(false), &overrides)
    }
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    let log = spire_cli::start_logging(&spire_cli::LogSettings {
        level: config.log_level.clone(),
        format: config.log_format.clone(),
        file: config.log_file.clone(),
        source_location: args
            .log_source_location
            .unwrap_or(config.log_source_location),
    })?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let stop = spire_cli::prepare_daemon("server");
    let clock: SharedClock = Arc::new(SystemClock);
    // A failed task ends the process non-zero; its name is in the error and the log.
    let logger = Arc::new(crate::cli::logger::ServerLogLevel(log));
    spire_server_app::run_with_logger(config, clock, stop, logger).await?;
    Ok(())
}

/// Checks the configuration, then looks at the datastore without writing to it: a SPIRE
/// database `run` would take over is announced (what it would copy), one `run` would refuse
/// fails validation. Otherwise the output is SPIRE's, unchanged; a database that cannot be
/// reached (PostgreSQL down) is not validate's concern, as in SPIRE.
pub(crate) async fn validate(args: RunArgs) -> anyhow::Result<()> {
    use spire_server_datastore_sql::{Error, SchemaPlan, SqlStore};
    use std::io::Write as _;
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => return spire_cli::report_validation("server", Err::<(), _>(e)),
    };
    spire_cli::report_validation("server", Ok::<_, String>(()))?;
    match SqlStore::inspect(&config.plugins.datastore).await {
        Ok(plan @ SchemaPlan::TakeOver(_)) => {
            writeln!(std::io::stdout().lock(), "Datastore: run would {plan}.")?;
        }
        Err(e @ (Error::NotSpire(_) | Error::SpireSchema(_))) => {
            return Err(anyhow::anyhow!("Datastore: {e}"));
        }
        _ => {}
    }
    Ok(())
}
