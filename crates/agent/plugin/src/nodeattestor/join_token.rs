use async_trait::async_trait;

use super::NodeAttestor;
use crate::{Error, Result};

/// `NodeAttestor "join_token"`: the payload is the token itself. The server consumes the
/// token, so such an agent can never attest again with it.
#[derive(Clone)]
pub struct JoinTokenAttestor {
    token: String,
}

// === impl JoinTokenAttestor ===

impl JoinTokenAttestor {
    /// An attestor presenting `token` (`join_token` from the configuration or the flag).
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if token.is_empty() {
            return Err(Error::Config("join token is required".into()));
        }
        Ok(Self { token })
    }
}

impl std::fmt::Debug for JoinTokenAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokenAttestor").finish_non_exhaustive()
    }
}

#[async_trait]
impl NodeAttestor for JoinTokenAttestor {
    fn name(&self) -> &'static str {
        "join_token"
    }

    async fn payload(&self) -> Result<Vec<u8>> {
        Ok(self.token.as_bytes().to_vec())
    }

    async fn challenge_response(&self, _challenge: &[u8]) -> Result<Vec<u8>> {
        Err(Error::Protocol(
            "join_token attestation does not expect a challenge".into(),
        ))
    }
}
