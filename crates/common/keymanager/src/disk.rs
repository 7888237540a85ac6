//! `KeyManager "disk"`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spire_svid::KeyType;

use crate::key::KeyMap;
use crate::pkcs8::{self, TypeError};
use crate::private_file::{tighten_mode, write_atomically};
use crate::{Error, Key, KeyManager, Result};

/// `KeyManager "disk"`: keys persist in one JSON file (the server's `keys_path`, the agent's
/// `<directory>/keys.json`), mode 0600, rewritten atomically on every change (temporary
/// file, fsync, rename, fsync of the directory), so a restarted server continues with the
/// same CA, a restarted agent with its SVID key, and a crash never leaves a torn file.
///
/// The file is SPIRE's: `{"keys":{"<key ID>":"<base64 of the PKCS#8 DER>"}}`, the key type
/// read from the key itself. A file written by SPIRE (either of its layouts) is read as is,
/// so a swapped binary keeps SPIRE's keys and SPIRE can read ours back after a rollback;
/// our earlier layout (`{"keys":[{"id","type","pkcs8"}]}`) is still read and is replaced by
/// SPIRE's at the next write.
#[derive(Debug)]
pub struct DiskKeyManager {
    path: PathBuf,
    ids: KeyIds,
    keys: KeyMap,
}

/// Which key IDs a key file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIds {
    /// Any ID (tests, tools).
    Any,
    /// The server's: [`SERVER_KEY_IDS`].
    Server,
    /// The agent's: [`AGENT_KEY_IDS`].
    Agent,
}

/// The IDs SPIRE's server keeps its keys under: the two X.509 CA slots, the two JWT slots,
/// and the two WIT-SVID signing slots of newer SPIRE releases. spire-rs does not use the WIT
/// keys; it keeps them, so they are still in the file after a rollback to SPIRE.
pub const SERVER_KEY_IDS: [&str; 6] = [
    "x509-CA-A",
    "x509-CA-B",
    "JWT-Signer-A",
    "JWT-Signer-B",
    "WIT-Signer-A",
    "WIT-Signer-B",
];

/// The IDs SPIRE's agent keeps its SVID key under (one slot in use, the other for rotation).
pub const AGENT_KEY_IDS: [&str; 2] = ["agent-svid-A", "agent-svid-B"];

/// The document as written: SPIRE's layout.
#[derive(Serialize)]
struct SpireKeysFile<'a> {
    keys: BTreeMap<&'a str, String>,
}

/// Our earlier layout: a list of keys with their declared types.
#[derive(Deserialize)]
struct StoredKey {
    id: String,
    #[serde(rename = "type")]
    key_type: KeyType,
    /// PKCS#8 DER, base64.
    pkcs8: String,
}

// === impl KeyIds ===

impl KeyIds {
    fn allowed(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Any => None,
            Self::Server => Some(&SERVER_KEY_IDS),
            Self::Agent => Some(&AGENT_KEY_IDS),
        }
    }

    /// `None` if `id` may be kept; otherwise why not.
    fn refuse(self, id: &str) -> Option<String> {
        let allowed = self.allowed()?;
        if allowed.contains(&id) {
            return None;
        }
        let whose = if self == Self::Server {
            "a server"
        } else {
            "an agent"
        };
        Some(format!(
            "unknown key ID {id:?}; {whose} key file holds {}",
            allowed.join(", ")
        ))
    }
}

// === impl DiskKeyManager ===

impl DiskKeyManager {
    /// Opens (or starts) the key file at `keys_path`, accepting any key ID; its directory is
    /// created (0700) on the first write. A key file readable by others is tightened to 0600;
    /// a file that is not a key file is an error, never a fresh start.
    pub fn open(keys_path: impl Into<PathBuf>) -> Result<Self> {
        Self::open_for(keys_path, KeyIds::Any)
    }

    /// [`open`](Self::open) for a binary: a key whose ID is not one of `ids` is refused, in
    /// the file and in [`generate_key`](KeyManager::generate_key), so an agent pointed at
    /// the server's file (or a file from an unknown SPIRE version) fails by name.
    pub fn open_for(keys_path: impl Into<PathBuf>, ids: KeyIds) -> Result<Self> {
        let path = keys_path.into();
        if path.as_os_str().is_empty() {
            return Err(Error::Config("keys_path is required".into()));
        }
        let keys = match fs::read(&path) {
            Ok(bytes) => {
                tighten_mode(&path)?;
                parse(&path, &bytes, ids)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(Self {
            path,
            ids,
            keys: KeyMap::new(keys),
        })
    }

    /// Where the keys are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn persist(&self, keys: &BTreeMap<String, Key>) -> Result<()> {
        let doc = SpireKeysFile {
            keys: keys
                .values()
                .map(|k| (k.id(), STANDARD.encode(k.pkcs8_der())))
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
        if let Some(why) = self.ids.refuse(id) {
            return Err(Error::Config(format!("{}: {why}", self.path.display())));
        }
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

/// Reads either of SPIRE's layouts (an object of base64 strings, or of records with `id` and
/// `private_key`) or our earlier one (a list); every failure names the file and the key.
fn parse(path: &Path, bytes: &[u8], ids: KeyIds) -> Result<BTreeMap<String, Key>> {
    let file = path.display();
    let not_a_key_file =
        |why: &dyn std::fmt::Display| Error::Config(format!("{file} is not a key file: {why}"));
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| not_a_key_file(&e))?;
    let Some(field) = doc.as_object().and_then(|o| o.get("keys")) else {
        return Err(not_a_key_file(&"expected an object with \"keys\""));
    };
    let bad =
        |id: &str, why: &dyn std::fmt::Display| Error::Config(format!("{file}: key {id:?}: {why}"));
    let mut keys = BTreeMap::new();
    let mut add = |id: String, stored_as: &str, encoded: &str, declared: Option<KeyType>| {
        if let Some(why) = ids.refuse(&id) {
            return Err(bad(stored_as, &why));
        }
        if keys.contains_key(&id) {
            return Err(bad(stored_as, &format!("a second key with ID {id:?}")));
        }
        let der = STANDARD
            .decode(encoded.trim())
            .map_err(|e| bad(stored_as, &format!("invalid base64: {e}")))?;
        let key_type = match pkcs8::key_type(&der) {
            Ok(t) => t,
            Err(TypeError::NotPkcs8(why)) => {
                return Err(bad(stored_as, &format!("not a PKCS#8 private key ({why})")));
            }
            Err(TypeError::Unsupported(what)) => {
                return Err(bad(
                    stored_as,
                    &format!(
                        "unsupported key type: {what}; supported are ec-p256, ec-p384, rsa-2048, rsa-4096"
                    ),
                ));
            }
        };
        if let Some(declared) = declared
            && declared != key_type
        {
            return Err(bad(
                stored_as,
                &format!("stored as {declared} but the key is {key_type}"),
            ));
        }
        let key = Key::from_pkcs8(&id, key_type, &der)
            .map_err(|e| bad(stored_as, &format!("not a valid {key_type} key: {e}")))?;
        keys.insert(id, key);
        Ok(())
    };
    match field {
        // SPIRE: key ID -> base64 PKCS#8, or (newer releases) key ID -> record.
        Value::Object(map) => {
            for (stored_as, value) in map {
                match value {
                    Value::String(encoded) => add(stored_as.clone(), stored_as, encoded, None)?,
                    Value::Object(record) => {
                        let text = |name: &str| record.get(name).and_then(Value::as_str);
                        let id = text("id")
                            .filter(|id| !id.is_empty())
                            .ok_or_else(|| bad(stored_as, &"record has no \"id\""))?;
                        let encoded = text("private_key")
                            .ok_or_else(|| bad(stored_as, &"record has no \"private_key\""))?;
                        if let Some(server) = text("server_id").filter(|s| !s.is_empty()) {
                            return Err(bad(
                                stored_as,
                                &format!(
                                    "belongs to server {server:?} of a shared_keys file, which is not supported"
                                ),
                            ));
                        }
                        add(id.to_owned(), stored_as, encoded, None)?;
                    }
                    _ => {
                        return Err(bad(stored_as, &"expected a base64 string or a key record"));
                    }
                }
            }
        }
        // Ours, before SPIRE's layout was adopted.
        Value::Array(list) => {
            for (i, item) in list.iter().enumerate() {
                let stored = StoredKey::deserialize(item)
                    .map_err(|e| not_a_key_file(&format!("keys[{i}]: {e}")))?;
                add(
                    stored.id.clone(),
                    &stored.id,
                    &stored.pkcs8,
                    Some(stored.key_type),
                )?;
            }
        }
        _ => {
            return Err(not_a_key_file(&"\"keys\" is neither an object nor a list"));
        }
    }
    Ok(keys)
}
