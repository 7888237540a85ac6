//! JWT-SVIDs: what MintJWTSVID (an admin names the ID) and NewJWTSVID (an agent names an
//! authorized entry) share once the SPIFFE ID and TTL are known.

use std::time::Duration;

use spire_proto::spire::api::types;
use tonic::{Code, Status};

use super::{SvidService, invalid};
use crate::convert::{id_to_proto, workload_id_from_proto};
use crate::status::make_err;

/// The status message of both JWT methods while `disable_jwt_svids` is set.
pub const JWT_DISABLED: &str = "JWT functionality is disabled";

// === impl SvidService ===

impl SvidService {
    /// `Unimplemented` while `disable_jwt_svids` is set, as SPIRE answers.
    pub(super) fn check_jwt_enabled(&self) -> Result<(), Status> {
        if self.config.ca.jwt_svids_disabled() {
            return Err(make_err(Code::Unimplemented, JWT_DISABLED, None));
        }
        Ok(())
    }

    /// Signs a JWT-SVID for `id`, which must be a workload of our trust domain, with `ttl`
    /// seconds of lifetime (zero or less = `default_jwt_svid_ttl`; capped by the key).
    pub(super) fn mint_jwt_svid(
        &self,
        id: Option<&types::Spiffeid>,
        audience: &[String],
        ttl: i32,
    ) -> Result<types::Jwtsvid, Status> {
        let id = workload_id_from_proto(&self.config.trust_domain, id)
            .map_err(|e| invalid("invalid SPIFFE ID", Some(&e)))?;
        if audience.is_empty() {
            return Err(invalid("at least one audience is required", None));
        }
        let ttl = Duration::from_secs(u64::try_from(ttl).unwrap_or_default());
        let svid = self
            .config
            .ca
            .sign_workload_jwt_svid(&id, audience, ttl)
            .map_err(|e| make_err(Code::Internal, "failed to sign JWT-SVID", Some(&e)))?;
        tracing::debug!(spiffe_id = %id, audience = ?audience, expires_at = svid.expires_at, "Server CA successfully signed JWT SVID");
        Ok(types::Jwtsvid {
            token: svid.token,
            id: Some(id_to_proto(&id)),
            expires_at: svid.expires_at,
            issued_at: svid.issued_at,
            hint: String::new(),
        })
    }
}
