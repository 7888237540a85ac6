//! NodeAttestor: what the agent proves to the server during AttestAgent.

mod join_token;
mod k8s_psat;
mod x509pop;

use std::fmt;

use async_trait::async_trait;

pub use join_token::JoinTokenAttestor;
pub use k8s_psat::{DEFAULT_TOKEN_PATH, K8sPsatAttestor, K8sPsatConfig};
pub use x509pop::{X509PopAttestor, X509PopConfig};

use crate::Result;

/// The agent side of one node attestation method. A fresh attestation (the first, or a
/// re-attestation at SVID rotation) calls [`NodeAttestor::payload`] once and then
/// [`NodeAttestor::challenge_response`] for every challenge the server sends.
#[async_trait]
pub trait NodeAttestor: Send + Sync + fmt::Debug + 'static {
    /// The plugin name, sent as `AttestationData.type`.
    fn name(&self) -> &'static str;
    /// `AttestationData.payload` for a new attestation.
    async fn payload(&self) -> Result<Vec<u8>>;
    /// The answer to one server challenge.
    async fn challenge_response(&self, challenge: &[u8]) -> Result<Vec<u8>>;
}
