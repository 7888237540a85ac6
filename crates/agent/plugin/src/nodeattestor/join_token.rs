use async_trait::async_trait;

use super::NodeAttestor;
use crate::{Error, Result};

/// `NodeAttestor "join_token"`: the payload is the token itself. The server consumes the
/// token, so such an agent can never attest again with it.
#[derive(Clone)]
pub struct JoinTokenAttestor {
    /// `None`: configured without a token, which is fine while a stored SVID is resumed; an
    /// attestation then fails with a message saying what to pass.
    token: Option<String>,
}

// === impl JoinTokenAttestor ===

impl JoinTokenAttestor {
    /// An attestor presenting `token` (`join_token` from the configuration or the flag).
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if token.is_empty() {
            return Err(Error::Config("join token is required".into()));
        }
        Ok(Self { token: Some(token) })
    }

    /// `NodeAttestor "join_token"` without a token (as SPIRE allows): an agent with a valid
    /// stored SVID resumes; one that must attest fails and says a token is needed.
    pub fn without_token() -> Self {
        Self { token: None }
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
        match &self.token {
            Some(token) => Ok(token.as_bytes().to_vec()),
            None => Err(Error::Config(
                "the agent must attest but has no join token: set join_token, join_token_file \
                 or -joinToken"
                    .into(),
            )),
        }
    }

    async fn challenge_response(&self, _challenge: &[u8]) -> Result<Vec<u8>> {
        Err(Error::Protocol(
            "join_token attestation does not expect a challenge".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn payload_is_the_token_and_a_missing_token_says_what_to_pass() {
        let with = JoinTokenAttestor::new("abc").unwrap();
        assert_eq!(with.payload().await.unwrap(), b"abc");
        assert!(JoinTokenAttestor::new("").is_err());
        let err = JoinTokenAttestor::without_token()
            .payload()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("-joinToken"), "{err}");
    }
}
