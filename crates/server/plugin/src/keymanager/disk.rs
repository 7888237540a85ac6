use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use spire_svid::KeyType;

use super::{Key, KeyManager};
use crate::{Error, Result};

/// `KeyManager "disk"` (`keys_path`): keys persist in one JSON file, mode 0600, rewritten
/// atomically (temporary file, fsync, rename, fsync of the directory) on every change, so a
/// restarted server continues with the same CA and a crash never leaves a torn file.
#[derive(Debug)]
pub struct DiskKeyManager {
    path: PathBuf,
    keys: Mutex<BTreeMap<String, Key>>,
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
    /// Opens (or starts) the key file at `keys_path`, creating its directory (0700) if needed.
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

    async fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key> {
        let key = Key::generate(id, key_type)?;
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = keys.clone();
        next.insert(id.to_owned(), key.clone());
        // Only a key that is on disk is handed out: a crash after signing with a key that
        // was never persisted would orphan every certificate it signed.
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

/// Private key files are 0600 whatever the umask; fix a file someone loosened.
fn tighten_mode(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "key file was readable by others; setting mode 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp.display()), e);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("creating", e))?;
    file.write_all(bytes).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))?;
    Ok(())
}
