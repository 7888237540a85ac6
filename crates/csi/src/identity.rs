//! The CSI Identity service: who the plugin is (what the node-driver-registrar asks first).

use tonic::{Request, Response, Status};

use crate::proto::v1::identity_server::{Identity, IdentityServer};
use crate::proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, ProbeRequest, ProbeResponse,
};

/// The version GetPluginInfo reports.
pub const VENDOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `csi.v1.Identity`: the plugin name and version; no plugin capabilities (no Controller
/// service); always ready.
#[derive(Debug, Clone)]
pub struct IdentityService {
    plugin_name: String,
}

// === impl IdentityService ===

impl IdentityService {
    /// The service for plugin `plugin_name`.
    pub fn new(plugin_name: impl Into<String>) -> Self {
        Self {
            plugin_name: plugin_name.into(),
        }
    }

    /// The tonic server.
    pub fn into_server(self) -> IdentityServer<Self> {
        IdentityServer::new(self)
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.plugin_name.clone(),
            vendor_version: VENDOR_VERSION.to_owned(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse::default()))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        // `ready` unset: the caller assumes ready.
        Ok(Response::new(ProbeResponse { ready: None }))
    }
}
