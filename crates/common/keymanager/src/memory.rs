//! `KeyManager "memory"`.

use async_trait::async_trait;
use spire_svid::KeyType;

use crate::key::KeyMap;
use crate::{Key, KeyManager, Result};

/// `KeyManager "memory"`: keys live only as long as the process. A restarted server mints a
/// new CA (the old root stays in the stored bundle until it expires); a restarted agent
/// attests again.
#[derive(Debug, Default)]
pub struct MemoryKeyManager {
    keys: KeyMap,
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
        self.keys.lock().insert(id.to_owned(), key.clone());
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<Key>> {
        Ok(self.keys.get(id))
    }
}
