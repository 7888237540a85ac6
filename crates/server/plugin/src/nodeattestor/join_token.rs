//! `NodeAttestor "join_token"`: the payload is a one-time token created with
//! `CreateJoinToken`; the agent becomes `spiffe://<td>/spire/agent/join_token/<token>`.

use std::sync::Arc;

use async_trait::async_trait;
use spire_id::{SpiffeId, TrustDomain};
use spire_server_datastore::DataStore;
use spire_time::SharedClock;

use super::{AttestCode, Attestation, Challenger, NodeAttestor, is_safe_segment};
use crate::{Error, Result};

/// SPIRE's message for an unknown, already used, or (concurrently) lost token.
const NOT_FOUND: &str = "join token does not exist or has already been used";

/// Consumes join tokens from the datastore.
#[derive(Debug)]
pub struct JoinTokenAttestor {
    trust_domain: TrustDomain,
    datastore: Arc<dyn DataStore>,
    clock: SharedClock,
}

// === impl JoinTokenAttestor ===

impl JoinTokenAttestor {
    /// The plugin name.
    pub const NAME: &'static str = "join_token";

    /// An attestor taking tokens from `datastore`.
    pub fn new(
        trust_domain: TrustDomain,
        datastore: Arc<dyn DataStore>,
        clock: SharedClock,
    ) -> Self {
        Self {
            trust_domain,
            datastore,
            clock,
        }
    }
}

#[async_trait]
impl NodeAttestor for JoinTokenAttestor {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn attest(
        &self,
        payload: Vec<u8>,
        _challenger: &mut dyn Challenger,
    ) -> Result<Attestation> {
        // The token becomes a path segment as stored: anything that is not one safe segment
        // is refused, never normalised (SPI-01-007). Such a token cannot have been used.
        let token = String::from_utf8(payload)
            .ok()
            .filter(|t| is_safe_segment(t))
            .ok_or_else(|| Error::failed_to_attest(AttestCode::InvalidArgument, NOT_FOUND))?;
        // Taken atomically: of concurrent attempts with one token exactly one gets it.
        let taken = self
            .datastore
            .take_join_token(&token)
            .await
            .map_err(|e| {
                Error::attestation(
                    AttestCode::Internal,
                    format!("failed to fetch join token: {e}"),
                )
            })?
            .ok_or_else(|| Error::failed_to_attest(AttestCode::InvalidArgument, NOT_FOUND))?;
        // Checked after taking, so an expired token is consumed too.
        if taken.expires_at < self.clock.unix_seconds() {
            return Err(Error::attestation(
                AttestCode::InvalidArgument,
                "join token expired",
            ));
        }
        let agent_id = SpiffeId::from_segments(
            self.trust_domain.clone(),
            &["spire", "agent", Self::NAME, &taken.token],
        )
        .map_err(|e| {
            Error::attestation(
                AttestCode::Internal,
                format!("failed to create join token agent ID: {e}"),
            )
        })?;
        Ok(Attestation {
            agent_id,
            selectors: Vec::new(),
            can_reattest: false,
        })
    }
}
