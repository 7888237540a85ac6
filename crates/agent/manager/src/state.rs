//! `<data_dir>/agent-data.json`: the agent SVID chain, the trust bundle and whether the agent
//! may re-attest, in SPIRE's shape (DER blobs as base64 strings). Written atomically, 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The file name inside `data_dir`.
pub const STATE_FILE: &str = "agent-data.json";

/// What survives an agent restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// The agent X509-SVID chain (DER, leaf first); empty when there is none.
    #[serde(default, with = "spire_svid::serde_der::list")]
    pub svid: Vec<Vec<u8>>,
    /// The trust domain's X.509 roots (DER).
    #[serde(default, with = "spire_svid::serde_der::list")]
    pub bundle: Vec<Vec<u8>>,
    /// Whether the node attestor lets this agent attest again (at rotation or when told to).
    #[serde(default)]
    pub reattestable: bool,
}

/// Reads and writes the state file of one data directory.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

// === impl StateFile ===

impl StateFile {
    /// The state file of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(STATE_FILE),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state; `None` when there is no file. A loosened mode is tightened.
    pub fn load(&self) -> Result<Option<AgentState>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::State(format!(
                    "reading {}: {e}",
                    self.path.display()
                )));
            }
        };
        spire_agent_plugin::private_file::tighten_mode(&self.path)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::State(format!("{} is malformed: {e}", self.path.display())))
    }

    /// Replaces the stored state.
    pub fn store(&self, state: &AgentState) -> Result<()> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| Error::State(format!("encoding agent state: {e}")))?;
        spire_agent_plugin::private_file::write_atomically(&self.path, &bytes)?;
        Ok(())
    }

    /// Forgets the SVID (ban, or a required re-attestation that cannot happen), keeping the
    /// bundle.
    pub fn remove_svid(&self) -> Result<()> {
        let mut state = self.load()?.unwrap_or_default();
        state.svid.clear();
        self.store(&state)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn round_trip_in_spire_shape_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert_eq!(file.load().unwrap(), None);
        let state = AgentState {
            svid: vec![vec![1, 2, 3], vec![4]],
            bundle: vec![vec![5, 6]],
            reattestable: true,
        };
        file.store(&state).unwrap();
        assert_eq!(file.load().unwrap(), Some(state));
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(json["svid"], serde_json::json!(["AQID", "BA=="]));
        assert_eq!(json["bundle"], serde_json::json!(["BQY="]));
        assert_eq!(json["reattestable"], true);
    }

    #[test]
    fn spire_fields_we_do_not_use_are_accepted_and_mode_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        std::fs::write(
            file.path(),
            br#"{"svid":["AQ=="],"bundle":[],"reattestable":false,"bootstrap_use":1,"connection_attempts":0}"#,
        )
        .unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = file.load().unwrap().unwrap();
        assert_eq!(state.svid, vec![vec![1]]);
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn remove_svid_keeps_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        file.store(&AgentState {
            svid: vec![vec![1]],
            bundle: vec![vec![2]],
            reattestable: false,
        })
        .unwrap();
        file.remove_svid().unwrap();
        let state = file.load().unwrap().unwrap();
        assert!(state.svid.is_empty());
        assert_eq!(state.bundle, vec![vec![2]]);
    }

    #[test]
    fn garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        std::fs::write(file.path(), b"nope").unwrap();
        assert!(file.load().is_err());
    }
}
