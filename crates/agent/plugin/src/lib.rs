//! Agent plugin traits (KeyManager, NodeAttestor, WorkloadAttestor) and their built-in
//! implementations.
//!
//! Each plugin type is a trait in its own module; the built-ins live in submodules named as in
//! SPIRE's agent configuration (`KeyManager "disk"`, `KeyManager "memory"`,
//! `NodeAttestor "join_token"`, `NodeAttestor "x509pop"`, `WorkloadAttestor "unix"`,
//! `WorkloadAttestor "k8s"`).
#![forbid(unsafe_code)]

pub mod keymanager;
pub mod nodeattestor;
pub mod workloadattestor;

pub use spire_keymanager::private_file;

/// A plugin failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin's configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading or writing the plugin's files failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Key generation, parsing or signing failed.
    #[error("{context}: {message}")]
    Crypto {
        /// What was being done.
        context: String,
        /// The library's description.
        message: String,
    },
    /// A key manager (or a private file write) failed.
    #[error(transparent)]
    KeyManager(#[from] spire_keymanager::Error),
    /// The server sent something the plugin cannot answer (e.g. a malformed challenge).
    #[error("{0}")]
    Protocol(String),
    /// `plugin_data` does not fit the plugin (unknown keys, wrong value types).
    #[error(transparent)]
    PluginData(#[from] spire_config::ConfigError),
    /// A call failed with a gRPC status class and SPIRE's message (workload attestors).
    #[error("{message}")]
    Status {
        /// The status class SPIRE returns for this failure.
        code: Code,
        /// SPIRE's message.
        message: String,
    },
    /// Every workload attestor failed for a caller.
    #[error("workload attestation failed")]
    WorkloadAttestationFailed,
}

/// The gRPC status class of a plugin failure (the subset SPIRE's agent plugins return).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// `INVALID_ARGUMENT`: configuration or input is unusable.
    InvalidArgument,
    /// `FAILED_PRECONDITION`: the system is not in a state to answer (e.g. a process in two
    /// pods at once).
    FailedPrecondition,
    /// `DEADLINE_EXCEEDED`: gave up waiting (e.g. the container never showed up).
    DeadlineExceeded,
    /// `UNAVAILABLE`: a dependency could not be reached or answered badly.
    Unavailable,
    /// `INTERNAL`: anything else.
    Internal,
}

/// Result alias for plugin calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure with status class `code` and SPIRE's `message`.
    pub fn status(code: Code, message: impl Into<String>) -> Self {
        Self::Status {
            code,
            message: message.into(),
        }
    }

    /// The gRPC status class of this failure.
    pub fn code(&self) -> Code {
        match self {
            Self::Config(_) | Self::PluginData(_) => Code::InvalidArgument,
            Self::Status { code, .. } => *code,
            Self::WorkloadAttestationFailed => Code::Unavailable,
            Self::Io { .. } | Self::Crypto { .. } | Self::KeyManager(_) | Self::Protocol(_) => {
                Code::Internal
            }
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn crypto(context: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Crypto {
            context: context.into(),
            message: message.to_string(),
        }
    }
}
