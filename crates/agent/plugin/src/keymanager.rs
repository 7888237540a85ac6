//! KeyManager: where the agent's own SVID key is generated and kept.
//!
//! The plugin type and its built-ins are shared with the server ([`spire_keymanager`]);
//! SPIRE's agent configures `KeyManager "disk"` by `directory`, opened with [`open_disk`].

use std::path::Path;

pub use spire_keymanager::{
    AGENT_KEY_IDS, DiskKeyManager, Error, Key, KeyIds, KeyManager, MemoryKeyManager,
    SERVER_KEY_IDS, algorithm,
};

use crate::Result;

/// The file name SPIRE's disk key manager uses inside `directory`.
pub const KEYS_FILE: &str = "keys.json";

/// `KeyManager "disk" { directory }`: opens (or starts) `<directory>/keys.json`; the
/// directory is created (0700) on the first write.
pub fn open_disk(directory: impl AsRef<Path>) -> Result<DiskKeyManager> {
    let directory = directory.as_ref();
    if directory.as_os_str().is_empty() {
        return Err(crate::Error::Config("directory is required".into()));
    }
    Ok(DiskKeyManager::open_for(
        directory.join(KEYS_FILE),
        KeyIds::Agent,
    )?)
}

#[cfg(test)]
mod tests;
