//! The KeyManager plugin type and its `disk` and `memory` built-ins, shared by server and agent.
//!
//! SPIRE has one KeyManager concept for both binaries: the server keeps its CA and JWT signing
//! keys in it, the agent its own SVID key. [`DiskKeyManager`] persists keys in one JSON file
//! (the server's `keys_path`; the agent's `<directory>/keys.json`), [`MemoryKeyManager`] keeps
//! them for the life of the process. [`private_file`] is the atomic, owner-only file writer the
//! disk built-in (and the agent's `agent-data.json`) use.
#![forbid(unsafe_code)]

mod disk;
mod key;
mod memory;
mod pkcs8;
pub mod private_file;

use std::fmt;

use async_trait::async_trait;
use spire_svid::KeyType;

pub use disk::{AGENT_KEY_IDS, DiskKeyManager, KeyIds, SERVER_KEY_IDS};
pub use key::{Key, algorithm};
pub use memory::MemoryKeyManager;

/// Generates and keeps named private keys. Generating under an existing ID replaces that key.
#[async_trait]
pub trait KeyManager: Send + Sync + fmt::Debug + 'static {
    /// The plugin name used in configuration.
    fn name(&self) -> &'static str;
    /// Whether keys survive a restart (`disk`). A server with a volatile key manager mints a
    /// new CA after every restart; an agent must attest again.
    fn is_persistent(&self) -> bool;
    /// Makes a new key of `key_type` under `id`, replacing any key with that ID. The key is
    /// stored before it is returned.
    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key>;
    /// The key stored under `id`.
    async fn key(&self, id: &str) -> Result<Option<Key>>;
}

/// A key manager failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable, or the key file is not one (a corrupt file is an error,
    /// never a fresh start).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Key generation, parsing, encoding or signing failed.
    #[error("{context}: {message}")]
    Crypto {
        /// What was being done.
        context: String,
        /// The library's description.
        message: String,
    },
}

/// Result alias for key manager calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// === impl Error ===

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn crypto(context: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::Crypto {
            context: context.into(),
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
