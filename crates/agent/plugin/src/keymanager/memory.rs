use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use spire_svid::KeyType;

use super::{Key, KeyManager};
use crate::Result;

/// `KeyManager "memory"`: keys live only as long as the process, so the agent attests again
/// after every restart.
#[derive(Debug, Default)]
pub struct MemoryKeyManager {
    keys: Mutex<BTreeMap<String, Key>>,
}

// === impl MemoryKeyManager ===

impl MemoryKeyManager {
    /// An empty key manager.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyManager for MemoryKeyManager {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn is_persistent(&self) -> bool {
        false
    }

    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key> {
        let key = Key::generate(id, key_type)?;
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), key.clone());
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<Key>> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }
}
