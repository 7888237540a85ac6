//! NodeAttestor: proves an agent's identity from evidence it sends in `AttestAgent`, possibly
//! after a challenge, and names the agent (`spiffe://<td>/spire/agent/<plugin>/…`).
//!
//! Built-ins: [`JoinTokenAttestor`] (`NodeAttestor "join_token"`), [`X509PopAttestor`]
//! (`NodeAttestor "x509pop"`) and [`K8sPsatAttestor`] (`NodeAttestor "k8s_psat"`). The API
//! looks attestors up by name in [`NodeAttestors`] and runs them with the `AttestAgent` stream
//! as the [`Challenger`].

mod join_token;
mod k8s_psat;
mod x509pop;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use spire_id::{Selector, SpiffeId};

pub use join_token::JoinTokenAttestor;
pub use k8s_psat::{K8sPsatAttestor, K8sPsatCluster, K8sPsatConfig};
pub use x509pop::{X509PopAttestor, X509PopConfig};

use crate::{Error, Result};

/// The gRPC code an attestation failure maps to (the API turns it into a tonic status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttestCode {
    /// The evidence is malformed, unknown, expired or already used.
    InvalidArgument,
    /// The evidence does not prove what it claims (bad signature, untrusted chain).
    PermissionDenied,
    /// The exchange with the agent broke down.
    Unavailable,
    /// The server failed (e.g. the datastore).
    Internal,
}

/// What a successful attestation establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The agent ID, under `/spire/agent/`.
    pub agent_id: SpiffeId,
    /// Node selectors (type = plugin name).
    pub selectors: Vec<Selector>,
    /// The agent may run attestation again instead of renewing its SVID.
    pub can_reattest: bool,
}

/// Sends a challenge to the attesting agent and returns its response.
#[async_trait]
pub trait Challenger: Send {
    /// One round trip: `challenge` goes out on the `AttestAgent` stream, the agent's
    /// `challenge_response` comes back.
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>>;
}

/// A node attestor.
#[async_trait]
pub trait NodeAttestor: Send + Sync + fmt::Debug + 'static {
    /// The plugin name, also the `AttestationData.type` agents send.
    fn name(&self) -> &str;
    /// Verifies `payload` (challenging the agent as needed). Failures are
    /// [`Error::Attestation`] carrying SPIRE's code and message.
    async fn attest(
        &self,
        payload: Vec<u8>,
        challenger: &mut dyn Challenger,
    ) -> Result<Attestation>;
}

/// The configured attestors, by name.
#[derive(Clone, Debug, Default)]
pub struct NodeAttestors {
    by_name: BTreeMap<String, Arc<dyn NodeAttestor>>,
}

// === impl NodeAttestors ===

impl NodeAttestors {
    /// No attestors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an attestor under its name.
    pub fn insert(&mut self, attestor: Arc<dyn NodeAttestor>) {
        self.by_name.insert(attestor.name().to_owned(), attestor);
    }

    /// The attestor for an `AttestationData.type`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeAttestor>> {
        self.by_name.get(name)
    }

    /// The configured names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

// === impl Error (attestation helpers) ===

impl Error {
    /// An attestation failure with exactly this message.
    pub fn attestation(code: AttestCode, message: impl Into<String>) -> Self {
        Self::Attestation {
            code,
            message: message.into(),
        }
    }

    /// An attestation failure whose message is `failed to attest: <message>` (the server's
    /// own wording, e.g. for join tokens).
    pub fn failed_to_attest(code: AttestCode, message: impl fmt::Display) -> Self {
        Self::attestation(code, format!("failed to attest: {message}"))
    }

    /// A failure of the attestor plugin `plugin`, worded as SPIRE's plugin facade words it
    /// and as `AttestAgent` passes it on: `nodeattestor(<plugin>): <message>`.
    pub fn plugin_failure(plugin: &str, code: AttestCode, message: impl fmt::Display) -> Self {
        Self::attestation(code, format!("nodeattestor({plugin}): {message}"))
    }
}

/// Whether `value` may be used as one SPIFFE ID path segment verbatim: non-empty, only
/// `[a-zA-Z0-9._-]`, not `.` or `..` (SPI-01-007: never normalise, refuse instead).
pub fn is_safe_segment(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
