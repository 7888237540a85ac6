//! `FetchJWTSVID` and `ValidateJWTSVID` (`FetchJWTBundles` is a bundle stream like
//! `FetchX509Bundles`).
//!
//! Order of checks as in SPIRE: the request's own fields first (InvalidArgument), then
//! workload attestation (Unavailable), then the caller's entries. ValidateJWTSVID needs no
//! identity: any local process may validate a token, against the agent's own trust domain
//! bundle and the federated bundles of the trust domains the caller's entries federate with.

use std::sync::Arc;

use spire_agent_cache::JwtSvidError;
use spire_id::SpiffeId;
use spire_proto::workload::{
    Jwtsvid, JwtsvidRequest, JwtsvidResponse, ValidateJwtsvidRequest, ValidateJwtsvidResponse,
};
use spire_svid::jwt::validate_jwt_svid;
use tonic::{Request, Status};

use super::{WorkloadApi, no_identity};
use crate::response::filter_entry_hints;
use crate::response::jwt::returned_claims;

// === impl WorkloadApi ===

impl WorkloadApi {
    /// FetchJWTSVID: one JWT-SVID per identity of the caller (hint-filtered, ordered by entry
    /// ID), or only the one with the requested SPIFFE ID.
    pub(super) async fn jwt_svids(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<JwtsvidResponse, Status> {
        let message = request.get_ref();
        if message.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        let wanted = match message.spiffe_id.as_str() {
            "" => None,
            id => Some(SpiffeId::parse(id).map_err(|e| {
                tracing::warn!(spiffe_id = id, error = %e, "Invalid requested SPIFFE ID");
                Status::invalid_argument(format!("invalid requested SPIFFE ID: {e}"))
            })?),
        };
        let selectors = self.attest(&request).await?;
        let entries = self.inner.cache.matching_entries(&selectors);
        let mut svids = Vec::new();
        for entry in filter_entry_hints(&entries) {
            if wanted.as_ref().is_some_and(|id| *id != entry.spiffe_id) {
                continue;
            }
            let source = self.inner.settings.jwt_source.as_ref();
            let svid = match source {
                Some(source) => source.fetch_jwt_svid(entry, &message.audience).await,
                None => Err(JwtSvidError::Unavailable),
            }
            .map_err(|e| {
                tracing::error!(spiffe_id = %entry.spiffe_id, error = %e, "Could not fetch JWT-SVID");
                Status::unavailable(format!("could not fetch JWT-SVID: {e}"))
            })?;
            svids.push(Jwtsvid {
                spiffe_id: entry.spiffe_id.to_string(),
                svid: svid.token.clone(),
                hint: entry.hint.clone(),
            });
        }
        if svids.is_empty() {
            return Err(no_identity());
        }
        Ok(JwtsvidResponse { svids })
    }

    /// ValidateJWTSVID: SPIRE's JWT-SVID rules against the bundles the caller may use; the
    /// failure's message is SPIRE's.
    pub(super) async fn validate_jwt_svid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<ValidateJwtsvidResponse, Status> {
        let message = request.get_ref();
        if message.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if message.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let selectors = self.attest(&request).await?;
        let update = self.inner.cache.workload_update(&selectors);
        let own = &update.bundle;
        let now = self.inner.settings.clock.unix_seconds();
        let audience = [message.audience.clone()];
        let validated = validate_jwt_svid(&message.svid, &audience, now, |td| {
            if *td == own.trust_domain {
                Some(Arc::clone(own))
            } else {
                update.federated_bundles.get(td).cloned()
            }
        })
        .map_err(|e| {
            tracing::warn!(audience = %message.audience, error = %e, "Failed to validate JWT");
            Status::invalid_argument(e.to_string())
        })?;
        let foreign = !validated.spiffe_id.is_member_of(&own.trust_domain);
        let claims = returned_claims(
            validated.claims,
            foreign,
            &self.inner.settings.allowed_foreign_jwt_claims,
        );
        Ok(ValidateJwtsvidResponse {
            spiffe_id: validated.spiffe_id.to_string(),
            claims: Some(claims),
        })
    }
}
