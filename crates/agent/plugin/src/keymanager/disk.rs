use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use spire_svid::KeyType;

use super::{Key, KeyManager};
use crate::private_file::{tighten_mode, write_atomically};
use crate::{Error, Result};

/// The file name SPIRE's disk key manager uses inside `directory`.
pub const KEYS_FILE: &str = "keys.json";

/// `KeyManager "disk"` (`directory`): keys persist in `<directory>/keys.json`, mode 0600,
/// rewritten atomically on every change, so a restarted agent resumes with its SVID key.
#[derive(Debug)]
pub struct DiskKeyManager {
    path: PathBuf,
    keys: Mutex<BTreeMap<String, Key>>,
}

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
    /// Opens (or starts) `<directory>/keys.json`; the directory is created (0700) on first
    /// write. A key file readable by others is tightened to 0600.
    pub fn open(directory: impl AsRef<Path>) -> Result<Self> {
        let directory = directory.as_ref();
        if directory.as_os_str().is_empty() {
            return Err(Error::Config("directory is required".into()));
        }
        let path = directory.join(KEYS_FILE);
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
            keys: Mutex::new(keys),
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
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = keys.clone();
        next.insert(id.to_owned(), key.clone());
        // Hand out only a key that is on disk: an SVID issued for an unsaved key is lost
        // with the process.
        self.persist(&next)?;
        *keys = next;
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
