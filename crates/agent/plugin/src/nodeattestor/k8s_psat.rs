//! `NodeAttestor "k8s_psat"`: the agent presents its pod's projected service account token;
//! the server has the cluster's apiserver review it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::NodeAttestor;
use crate::{Error, Result};

/// Where Kubernetes projects the token in SPIRE's and Istio's manifests.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/tokens/spire-agent";

/// `NodeAttestor "k8s_psat"` plugin data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sPsatConfig {
    /// `cluster`: the name the server's configuration knows this cluster by.
    pub cluster: String,
    /// `token_path` (default [`DEFAULT_TOKEN_PATH`]).
    pub token_path: PathBuf,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    token_path: String,
}

// === impl K8sPsatConfig ===

impl K8sPsatConfig {
    /// Reads `plugin_data`: `cluster` is required; unknown keys are ignored, as SPIRE's
    /// decoder does for this plugin.
    pub fn from_plugin_data(data: &Value) -> Result<Self> {
        let raw: RawConfig = serde_json::from_value(data.clone())
            .map_err(|e| Error::Config(format!("unable to decode configuration: {e}")))?;
        if raw.cluster.is_empty() {
            return Err(Error::Config("missing required cluster block".into()));
        }
        Ok(Self {
            cluster: raw.cluster,
            token_path: PathBuf::from(if raw.token_path.is_empty() {
                DEFAULT_TOKEN_PATH.to_owned()
            } else {
                raw.token_path
            }),
        })
    }
}

/// The agent side of `k8s_psat`.
#[derive(Clone, Debug)]
pub struct K8sPsatAttestor {
    config: K8sPsatConfig,
}

// === impl K8sPsatAttestor ===

impl K8sPsatAttestor {
    /// The plugin name.
    pub const NAME: &'static str = "k8s_psat";

    /// An attestor for `config`.
    pub fn new(config: K8sPsatConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl NodeAttestor for K8sPsatAttestor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// `{"cluster": …, "token": …}` with the token file read now: projected tokens rotate,
    /// so each attestation (and re-attestation) sends the current one, as read (no trimming).
    async fn payload(&self) -> Result<Vec<u8>> {
        let token = read_token(&self.config.token_path)?;
        serde_json::to_vec(&serde_json::json!({
            "cluster": self.config.cluster,
            "token": token,
        }))
        .map_err(|e| Error::Protocol(format!("unable to encode attestation data: {e}")))
    }

    async fn challenge_response(&self, _challenge: &[u8]) -> Result<Vec<u8>> {
        Err(Error::Protocol(
            "k8s_psat attestation does not expect a challenge".into(),
        ))
    }
}

/// A small file read once per attestation: read in place rather than on the blocking pool.
fn read_token(path: &Path) -> Result<String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("unable to load token from {}", path.display()), e))?;
    if token.is_empty() {
        return Err(Error::Config(format!(
            "{:?} is empty",
            path.display().to_string()
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> K8sPsatConfig {
        K8sPsatConfig::from_plugin_data(&serde_json::json!({
            "cluster": "demo-cluster",
            "token_path": dir.join("token").to_str().unwrap(),
            "some_future_key": true,
        }))
        .unwrap()
    }

    #[test]
    fn cluster_is_required_and_token_path_defaults() {
        let err = K8sPsatConfig::from_plugin_data(&serde_json::json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: missing required cluster block"
        );
        let config = K8sPsatConfig::from_plugin_data(&serde_json::json!({"cluster": "c"})).unwrap();
        assert_eq!(config.token_path, PathBuf::from(DEFAULT_TOKEN_PATH));
    }

    #[tokio::test]
    async fn payload_reads_the_token_file_each_time_untrimmed() {
        let dir = tempfile::tempdir().unwrap();
        let attestor = K8sPsatAttestor::new(config(dir.path()));
        std::fs::write(dir.path().join("token"), "first-token\n").unwrap();
        let payload: Value = serde_json::from_slice(&attestor.payload().await.unwrap()).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"cluster": "demo-cluster", "token": "first-token\n"})
        );
        // The kubelet rotated the projected token: the next attestation sends the new one.
        std::fs::write(dir.path().join("token"), "second-token").unwrap();
        let payload: Value = serde_json::from_slice(&attestor.payload().await.unwrap()).unwrap();
        assert_eq!(payload["token"], "second-token");
    }

    #[tokio::test]
    async fn missing_or_empty_token_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let attestor = K8sPsatAttestor::new(config(dir.path()));
        let err = attestor.payload().await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "unable to load token from {}",
                dir.path().join("token").display()
            )),
            "{err}"
        );
        std::fs::write(dir.path().join("token"), "").unwrap();
        let err = attestor.payload().await.unwrap_err().to_string();
        assert!(err.ends_with("token\" is empty"), "{err}");
    }
}
