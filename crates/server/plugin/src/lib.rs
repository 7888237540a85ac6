//! Server plugin traits (KeyManager, UpstreamAuthority, NodeAttestor, Notifier,
//! BundlePublisher) and their built-ins.
//!
//! Each plugin type is a trait in its own module; the built-ins live in submodules named as in
//! SPIRE's configuration (`KeyManager "disk"`, `KeyManager "memory"`, `UpstreamAuthority "disk"`,
//! `NodeAttestor "join_token"`, `NodeAttestor "x509pop"`, `NodeAttestor "k8s_psat"`,
//! `Notifier "k8sbundle"`, `BundlePublisher "k8s_configmap"`).
#![forbid(unsafe_code)]

pub mod bundlepublisher;
pub mod keymanager;
pub mod nodeattestor;
pub mod notifier;
pub mod upstreamauthority;
pub mod x509;

#[cfg(test)]
mod test_bundle;

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
    /// A key manager failed.
    #[error(transparent)]
    KeyManager(#[from] spire_keymanager::Error),
    /// A request to the plugin was malformed (e.g. a bad CSR).
    #[error("{0}")]
    InvalidRequest(String),
    /// A call to a Kubernetes API failed.
    #[error("{context}: {source}")]
    Kubernetes {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: spire_k8s::Error,
    },
    /// Node attestation failed; `message` is what the agent is told.
    #[error("{message}")]
    Attestation {
        /// The gRPC code SPIRE answers with.
        code: nodeattestor::AttestCode,
        /// SPIRE's message.
        message: String,
    },
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
