//! spire-server's application layer: resolved configuration, the plugin catalog, the admin
//! Unix socket and the mTLS TCP listener, federation (bundle endpoint and refresher), and the
//! run loop with graceful shutdown.
#![forbid(unsafe_code)]

pub mod config;
mod datastore_metrics;
mod federation;
mod health;
pub mod prune;
mod publish;
mod run;
mod tls;
mod uds;

pub use config::{KeyManagerChoice, NodePruning, Overrides, ServerConfig};
pub use health::server_checkers;
pub use run::{run, run_with_logger};
pub use spire_server_api::logger::{LogLevelControl, logrus_name};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A listener could not be set up.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The admin socket could not be bound.
    #[error("admin socket: {source}")]
    AdminSocket {
        /// Why.
        #[source]
        source: spire_uds::Error,
    },
    /// The datastore could not be opened.
    #[error(transparent)]
    DataStoreOpen(#[from] spire_server_datastore_sql::Error),
    /// A plugin failed to start.
    #[error(transparent)]
    Plugin(#[from] spire_server_plugin::Error),
    /// The CA failed.
    #[error(transparent)]
    Ca(#[from] spire_server_ca::Error),
    /// The bundle endpoint could not start.
    #[error(transparent)]
    Federation(#[from] spire_server_federation::Error),
    /// TLS set-up failed.
    #[error("tls: {0}")]
    Tls(String),
    /// A long-running task panicked, failed or ended early; the message names it.
    #[error(transparent)]
    Task(#[from] spire_task::Error),
}

/// Key manager failures surface as plugin failures.
impl From<spire_server_plugin::keymanager::Error> for Error {
    fn from(e: spire_server_plugin::keymanager::Error) -> Self {
        Self::Plugin(e.into())
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
