//! KeyManager: where the server's CA and JWT signing keys are generated and kept.
//!
//! The plugin type and its built-ins are shared with the agent ([`spire_keymanager`]):
//! `KeyManager "disk"` is [`DiskKeyManager::open_for`] on `keys_path` with the server's key
//! IDs, `KeyManager "memory"` is [`MemoryKeyManager`].

pub use spire_keymanager::{
    AGENT_KEY_IDS, DiskKeyManager, Error, Key, KeyIds, KeyManager, MemoryKeyManager,
    SERVER_KEY_IDS, algorithm,
};
