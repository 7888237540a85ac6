//! `KeyManager "disk"`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use spire_svid::KeyType;

use crate::key::KeyMap;
use crate::private_file::{tighten_mode, write_atomically};
use crate::{Error, Key, KeyManager, Result};

/// `KeyManager "disk"`: keys persist in one JSON file (the server's `keys_path`, the agent's
/// `<directory>/keys.json`), mode 0600, rewritten atomically on every change (temporary
/// file, fsync, rename, fsync of the directory), so a restarted server continues with the
/// same CA, a restarted agent with its SVID key, and a crash never leaves a torn file.
#[derive(Debug)]
pub struct DiskKeyManager {
    path: PathBuf,
    keys: KeyMap,
}

/// The on-disk document.
#[derive(Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    id: String,
    #[serde(rename = "type")]
    key_type: KeyType,
    /// PKCS#8 DER, base64.
    pkcs8: String,
}

// === impl DiskKeyManager ===

impl DiskKeyManager {
    /// Opens (or starts) the key file at `keys_path`; its directory is created (0700) on the
    /// first write. A key file readable by others is tightened to 0600; a file that is not a
    /// key file is an error, never a fresh start.
    pub fn open(keys_path: impl Into<PathBuf>) -> Result<Self> {
        let path = keys_path.into();
        if path.as_os_str().is_empty() {
            return Err(Error::Config("keys_path is required".into()));
        }
        let keys = match fs::read(&path) {
            Ok(bytes) => {
                tighten_mode(&path)?;
                parse(&path, &bytes)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(Self {
            path,
            keys: KeyMap::new(keys),
        })
    }

    /// Where the keys are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn persist(&self, keys: &BTreeMap<String, Key>) -> Result<()> {
        let doc = KeysFile {
            keys: keys
                .values()
                .map(|k| StoredKey {
                    id: k.id().to_owned(),
                    key_type: k.key_type(),
                    pkcs8: STANDARD.encode(k.pkcs8_der()),
                })
                .collect(),
        };
        let bytes =
            serde_json::to_vec_pretty(&doc).map_err(|e| Error::crypto("encoding key file", e))?;
        write_atomically(&self.path, &bytes)
    }
}

#[async_trait]
impl KeyManager for DiskKeyManager {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn is_persistent(&self) -> bool {
        true
    }

    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key> {
        let key = Key::generate(id, key_type)?;
        let mut keys = self.keys.lock();
        let mut next = keys.clone();
        next.insert(id.to_owned(), key.clone());
        // Only a key that is on disk is handed out: a crash after signing with a key that was
        // never persisted would orphan every certificate (or SVID) issued for it.
        self.persist(&next)?;
        *keys = next;
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<Key>> {
        Ok(self.keys.get(id))
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Key>> {
    let doc: KeysFile = serde_json::from_slice(bytes)
        .map_err(|e| Error::Config(format!("{} is not a key file: {e}", path.display())))?;
    let mut keys = BTreeMap::new();
    for stored in doc.keys {
        let der = STANDARD
            .decode(&stored.pkcs8)
            .map_err(|e| Error::Config(format!("{}: key {:?}: {e}", path.display(), stored.id)))?;
        let key = Key::from_pkcs8(&stored.id, stored.key_type, &der)?;
        keys.insert(stored.id, key);
    }
    Ok(keys)
}
