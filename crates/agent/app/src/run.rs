//! Starting, serving and stopping the agent.

use std::sync::Arc;

use spire_agent_manager::{Manager, ManagerConfig};
use spire_agent_plugin::keymanager::{self, KeyManager, MemoryKeyManager};
use spire_agent_plugin::nodeattestor::{JoinTokenAttestor, NodeAttestor, X509PopAttestor};
use spire_agent_sds::SdsService;
use spire_agent_workload::{Endpoint, EndpointConfig, UnixAttestor, WorkloadAttestor};
use spire_time::SharedClock;
use tokio::sync::watch;

use crate::Error;
use crate::config::{AgentConfig, KeyManagerChoice, NodeAttestorChoice};

/// Runs the agent until `stop` turns true: brings it to an identity (resuming a stored SVID
/// or attesting), synchronises once, then opens the Workload API socket — only now, so a
/// client that finds the socket is answered — and keeps everything running. Returns the
/// manager's fatal error (banned, cannot re-attest) or `Ok` after a stop.
pub async fn run(
    config: AgentConfig,
    clock: SharedClock,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let node_attestor: Arc<dyn NodeAttestor> = match &config.node_attestor {
        NodeAttestorChoice::JoinToken(Some(token)) => {
            Arc::new(JoinTokenAttestor::new(token.clone())?)
        }
        NodeAttestorChoice::JoinToken(None) => Arc::new(JoinTokenAttestor::without_token()),
        NodeAttestorChoice::X509Pop(x509pop) => Arc::new(X509PopAttestor::new(x509pop.clone())?),
    };
    let key_manager: Arc<dyn KeyManager> = match &config.key_manager {
        KeyManagerChoice::Disk(directory) => Arc::new(keymanager::open_disk(directory)?),
        KeyManagerChoice::Memory => Arc::new(MemoryKeyManager::new()),
    };
    let unix: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::from_plugin_data(
        &config.unix_workload_attestor,
    )?);

    tracing::info!(
        trust_domain = %config.trust_domain,
        server = %format!("{}:{}", config.server_address, config.server_port),
        "Starting agent"
    );
    let manager = Manager::start(
        ManagerConfig {
            trust_domain: config.trust_domain.clone(),
            server_address: config.server_address.clone(),
            server_port: config.server_port,
            data_dir: config.data_dir.clone(),
            trust_bundle: config.trust_bundle.clone(),
            node_attestor,
            key_manager,
            sync_interval: config.sync_interval,
            workload_key_type: config.workload_key_type,
            x509_svid_cache_max_size: config.x509_svid_cache_max_size,
            jwt_svid_cache_max_size: config.jwt_svid_cache_max_size,
            jwt_svid_cache_hit_timeout: config.jwt_svid_cache_hit_timeout,
            clock: clock.clone(),
        },
        stop.clone(),
    )
    .await;
    let manager = match manager {
        Ok(manager) => manager,
        Err(spire_agent_manager::Error::Stopped) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    tracing::info!(agent_id = %manager.agent_id(), "Node attestation was successful");

    let cache = manager.cache();
    let mut endpoint = Endpoint::bind(EndpointConfig {
        socket_path: config.socket_path.clone(),
        allow_unauthenticated_verifiers: config.allow_unauthenticated_verifiers,
        allowed_foreign_jwt_claims: config.allowed_foreign_jwt_claims.clone(),
        disable_workload_api: config.disable_workload_api,
    })?
    .with_jwt(manager.jwt_svid_source(), clock);
    if !config.disable_sds_api {
        // Envoy SDS v3 on the same socket as the Workload API.
        let sds = SdsService::new(
            cache.clone(),
            vec![Arc::clone(&unix)],
            config.sds.clone(),
            stop.clone(),
        );
        endpoint = endpoint.with_routes(&[SdsService::NAME], sds.into_routes());
    }
    tracing::info!(path = %config.socket_path.display(), "Starting Workload and SDS APIs");
    let serving = tokio::spawn(endpoint.serve(cache, vec![unix], stop.clone()));
    let result = manager.run().await;
    // A fatal manager error ends the agent: stop serving (SPIRE exits).
    serving.abort();
    let _ = std::fs::remove_file(&config.socket_path);
    result?;
    tracing::info!("Agent stopped");
    Ok(())
}
