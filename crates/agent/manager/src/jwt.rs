//! JWT-SVIDs for workloads: `SVID.NewJWTSVID` for an entry and its audiences, behind the
//! agent's JWT-SVID cache ([`JwtSvidCache`]).
//!
//! A call is bounded by SPIRE's RPC timeout (30 s), or by `jwt_svid_cache_hit_timeout` when an
//! unexpired token is cached and can be served if the server is slow. Failures read as SPIRE's
//! agent client reports them (`failed to fetch JWT SVID: rpc error: code = … desc = …`); they
//! are not treated as a verdict on the agent (the sync loop handles bans and evictions).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use spire_agent_cache::{Entry, JwtSvid, JwtSvidCache, JwtSvidError, JwtSvidMinter};
use spire_proto::spire::api::server::svid::v1::{NewJwtsvidRequest, svid_client::SvidClient};
use spire_proto::spire::api::types;
use spire_svid::jwt::parse_jwt_svid_unverified;
use tonic::Status;

use crate::convert;
use crate::manager::Shared;

/// SPIRE's agent RPC timeout, for a call without a usable cached token.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Mints through the server the manager is connected to (its current mTLS channel).
#[derive(Debug)]
pub(crate) struct ServerMinter {
    shared: Arc<Shared>,
}

// === impl ServerMinter ===

impl ServerMinter {
    /// The JWT-SVID cache of this agent, minting through its server.
    pub(crate) fn cache(shared: &Arc<Shared>) -> Arc<JwtSvidCache> {
        let minter = Arc::new(Self {
            shared: Arc::clone(shared),
        });
        let cache = Arc::new(JwtSvidCache::new(
            shared.config.jwt_svid_cache_max_size,
            minter,
            shared.config.clock.clone(),
        ));
        // Tokens signed by a JWT key the bundle marks tainted are dropped as soon as the
        // bundle says so; the task ends with the cache's bundle channel.
        let mut bundles = shared.cache.bundles();
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            while bundles.changed().await.is_ok() {
                let Some(cache) = weak.upgrade() else { return };
                let tainted = spire_agent_cache::taint::tainted_jwt_key_ids(&bundles.borrow().own);
                let dropped = cache.drop_tainted(&tainted);
                if dropped > 0 {
                    tracing::info!(
                        count = dropped,
                        "JWT-SVIDs signed by a tainted authority dropped"
                    );
                }
            }
        });
        cache
    }
}

#[async_trait]
impl JwtSvidMinter for ServerMinter {
    async fn mint_jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
        cached: bool,
    ) -> Result<JwtSvid, JwtSvidError> {
        let timeout = if cached {
            self.shared.config.jwt_svid_cache_hit_timeout
        } else {
            RPC_TIMEOUT
        };
        let request = NewJwtsvidRequest {
            entry_id: entry.id.clone(),
            audience: audience.to_vec(),
        };
        let mut client = SvidClient::new(self.shared.channel());
        let result = match tokio::time::timeout(timeout, client.new_jwtsvid(request)).await {
            Ok(Ok(response)) => jwt_svid(response.into_inner().svid, entry),
            Ok(Err(status)) => Err(rpc_error(&status)),
            Err(_) => Err(rpc_error(&Status::deadline_exceeded(
                "context deadline exceeded",
            ))),
        };
        if let Err(error) = &result {
            tracing::warn!(entry_id = %entry.id, %error, "Failed to fetch JWT SVID");
        }
        result.map_err(|e| JwtSvidError::Mint(format!("failed to fetch JWT SVID: {e}")))
    }
}

/// The minted SVID of a `NewJWTSVID` response, checked against the entry it was asked for.
pub(crate) fn jwt_svid(svid: Option<types::Jwtsvid>, entry: &Entry) -> Result<JwtSvid, String> {
    let svid = svid.ok_or("invalid response: no SVID")?;
    let claims = parse_jwt_svid_unverified(&svid.token)
        .map_err(|e| format!("invalid response: token: {e}"))?;
    if claims.spiffe_id != entry.spiffe_id {
        return Err(format!(
            "invalid response: token for {}, expected {}",
            claims.spiffe_id, entry.spiffe_id
        ));
    }
    if let Some(id) = svid.id.as_ref() {
        let id = convert::spiffe_id(Some(id), "SVID ID").map_err(|e| e.to_string())?;
        if id != entry.spiffe_id {
            return Err(format!(
                "invalid response: SVID for {id}, expected {}",
                entry.spiffe_id
            ));
        }
    }
    // The response's times are the token's; the token decides if the server left them out.
    let pick = |response: i64, token: i64| if response != 0 { response } else { token };
    Ok(JwtSvid {
        spiffe_id: claims.spiffe_id,
        issued_at: spire_time::from_unix_seconds(pick(svid.issued_at, claims.issued_at)),
        expires_at: spire_time::from_unix_seconds(pick(svid.expires_at, claims.expires_at)),
        token: svid.token,
    })
}

/// A failed call as gRPC-Go prints it (`rpc error: code = Unavailable desc = …`).
fn rpc_error(status: &Status) -> String {
    let code = spire_id::go_fmt::grpc_code_name(status.code() as i32).unwrap_or("Unknown");
    format!("rpc error: code = {code} desc = {}", status.message())
}

#[cfg(test)]
mod tests;
