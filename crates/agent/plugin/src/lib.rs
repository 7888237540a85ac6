//! Agent plugin traits (KeyManager, NodeAttestor) and their built-in implementations.
//!
//! Each plugin type is a trait in its own module; the built-ins live in submodules named as in
//! SPIRE's agent configuration (`KeyManager "disk"`, `KeyManager "memory"`,
//! `NodeAttestor "join_token"`, `NodeAttestor "x509pop"`).
#![forbid(unsafe_code)]

pub mod keymanager;
pub mod nodeattestor;

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
}

/// Result alias for plugin calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
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
