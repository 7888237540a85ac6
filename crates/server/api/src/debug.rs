//! `spire.api.server.debug.v1.Debug`: GetInfo (admin socket only).

use std::sync::Arc;
use std::time::SystemTime;

use spire_proto::spire::api::server::debug::v1::{
    GetInfoRequest, GetInfoResponse, debug_server::Debug, get_info_response::Cert,
};
use spire_server_datastore::{DataStore, ListAttestedNodes, ListEntries};
use spire_time::SharedClock;
use tonic::{Request, Response, Status};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authz::PeerSvid;
use crate::convert::id_to_proto;
use crate::status::internal;
use crate::{ApiContext, SvidSource};

/// What the Debug service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Counts come from here.
    pub datastore: Arc<dyn DataStore>,
    /// Uptime is measured with it.
    pub clock: SharedClock,
    /// When the server started.
    pub started_at: SystemTime,
    /// The server's own SVID, if it has one.
    pub server_svid: Option<Arc<dyn SvidSource>>,
}

/// The Debug service.
#[derive(Clone, Debug)]
pub struct DebugService {
    config: Config,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            datastore: ctx.datastore.clone(),
            clock: ctx.clock.clone(),
            started_at: ctx.started_at,
            server_svid: ctx.server_svid.clone(),
        }
    }
}

// === impl DebugService ===

impl DebugService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }
}

/// One certificate of the server's chain as GetInfo shows it: its SPIFFE ID (the URI SAN, if
/// any), expiry and subject in Go's `pkix.Name` order (most specific first, comma-separated).
fn cert_info(der: &[u8]) -> Option<Cert> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let id = PeerSvid::from_der(der).map(|svid| id_to_proto(&svid.id));
    let mut parts = Vec::new();
    for rdn in cert.subject().iter().collect::<Vec<_>>().into_iter().rev() {
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let key = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map_or_else(|_| oid.to_id_string(), str::to_owned);
            let key = if key == "serialNumber" {
                "SERIALNUMBER".to_owned()
            } else {
                key
            };
            let value = attr.as_str().unwrap_or_default();
            parts.push(format!("{key}={value}"));
        }
    }
    Some(Cert {
        id,
        expires_at: cert.validity().not_after.timestamp(),
        subject: parts.join(","),
    })
}

#[tonic::async_trait]
impl Debug for DebugService {
    async fn get_info(
        &self,
        _request: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        let ds = self.config.datastore.as_ref();
        let agents = ds
            .count_attested_nodes(&ListAttestedNodes::default())
            .await
            .map_err(|e| internal("failed to count agents", &e))?;
        let entries = ds
            .count_registration_entries(&ListEntries::default())
            .await
            .map_err(|e| internal("failed to count entries", &e))?;
        let bundles = ds
            .count_bundles()
            .await
            .map_err(|e| internal("failed to count bundles", &e))?;
        let uptime = self
            .config
            .clock
            .now()
            .duration_since(self.config.started_at)
            .unwrap_or_default()
            .as_secs();
        let svid_chain = self
            .config
            .server_svid
            .as_ref()
            .map(|source| source.x509_svid_chain())
            .unwrap_or_default()
            .iter()
            .filter_map(|der| cert_info(der))
            .collect();
        let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(GetInfoResponse {
            svid_chain,
            uptime: count(uptime),
            agents_count: count(agents),
            // Our own bundle is not a federated one.
            federated_bundles_count: count(bundles.saturating_sub(1)),
            entries_count: count(entries),
        }))
    }
}
