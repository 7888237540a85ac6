//! Shared test setup: test CAs, SVIDs minted under them, a real agent cache, the public
//! endpoint serving SDS in-process, and (from `envoy_client.rs`) an SDS client that behaves like
//! Istio's Envoy.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use spire_agent_cache::{Cache, Entry};
use spire_agent_sds::{SdsConfig, SdsService};
use spire_agent_workload::{Endpoint, EndpointConfig, UnixAttestor, UnixConfig, WorkloadAttestor};
use spire_id::TrustDomain;
use spire_svid::Bundle;
use spire_task::Shutdown;
use tonic::transport::Channel;

mod envoy_client;
#[path = "../../../workload/tests/support/fixtures.rs"]
mod fixtures;
pub use envoy_client::*;
pub use fixtures::*;

pub const FEDERATED: &str = "other.org";

/// An entry for this process that federates with `tds`.
pub fn federated_entry(id: &str, path: &str, tds: &[&str]) -> Entry {
    let mut entry = entry(id, path, &[my_uid_selector()]);
    entry.federates_with = tds.iter().map(|td| TrustDomain::new(td).unwrap()).collect();
    entry
}

/// Adds `federated`'s bundle to the cache next to the own one.
pub fn add_federated(cache: &Cache, own: &TestCa, federated: &TestCa) {
    let map: BTreeMap<TrustDomain, Bundle> =
        [(federated.trust_domain.clone(), federated.bundle())].into();
    cache.update_bundles(own.bundle(), map);
}

/// The public endpoint with SDS on a socket in a temporary directory; stops on drop.
pub struct Served {
    pub socket: PathBuf,
    /// The service's series (`sds_api_connection`, `sds_api_connections`).
    pub metrics: spire_metrics::Registry,
    _dir: tempfile::TempDir,
    stop: Shutdown,
}

impl Served {
    pub async fn client(&self) -> SecretDiscoveryServiceClient<Channel> {
        let channel =
            tonic::transport::Endpoint::try_from(format!("unix://{}", self.socket.display()))
                .unwrap()
                .connect()
                .await
                .unwrap();
        SecretDiscoveryServiceClient::new(channel)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

pub fn serve(cache: &Cache, config: SdsConfig) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("workload-spiffe-uds/socket");
    let stop = Shutdown::new();
    let stopped = stop.clone();
    let attestors: Vec<Arc<dyn WorkloadAttestor>> =
        vec![Arc::new(UnixAttestor::new(UnixConfig::default()))];
    let metrics = spire_metrics::Registry::default();
    let sds = SdsService::new(
        cache.clone(),
        attestors.clone(),
        config,
        stopped.clone(),
        &metrics,
    );
    let endpoint = Endpoint::bind(EndpointConfig {
        socket_path: socket.clone(),
        ..EndpointConfig::default()
    })
    .unwrap()
    .with_routes(&[SdsService::NAME], sds.into_routes());
    let cache = cache.clone();
    tokio::spawn(async move { endpoint.serve(cache, attestors, stopped).await.unwrap() });
    Served {
        socket,
        metrics,
        _dir: dir,
        stop,
    }
}

/// PEM of DER certificates, as the agent encodes them.
pub fn pem_of(ders: &[&[u8]]) -> String {
    spire_svid::encode_certificates_pem(ders.iter().copied())
}
