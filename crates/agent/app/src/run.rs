//! Starting, serving and stopping the agent.

use std::sync::Arc;
use std::time::Duration;

use spire_agent_manager::{Manager, ManagerConfig};
use spire_agent_plugin::keymanager::{self, KeyManager, MemoryKeyManager};
use spire_agent_plugin::nodeattestor::{
    JoinTokenAttestor, K8sPsatAttestor, NodeAttestor, X509PopAttestor,
};
use spire_agent_plugin::workloadattestor::K8sAttestor;
use spire_agent_plugin::workloadattestor::k8s::K8sOptions;
use spire_agent_sds::SdsService;
use spire_agent_workload::{Endpoint, EndpointConfig, UnixAttestor, WorkloadAttestor};
use spire_cli::LogHandle;
use spire_task::{Shutdown, Supervisor};
use spire_time::SharedClock;

use crate::Error;
use crate::config::{AgentConfig, KeyManagerChoice, NodeAttestorChoice};

/// Open Workload API and SDS streams (and every task) get this long after a stop signal.
const GRACE: Duration = Duration::from_secs(10);

/// Runs the agent until `stop`: brings it to an identity (resuming a stored SVID or
/// attesting), synchronises once, then opens the Workload API socket — only now, so a client
/// that finds the socket is answered — and keeps everything running. Every long-running task
/// is supervised: the first one that fails stops the agent (and triggers `stop`). Returns
/// the manager's fatal error (banned, cannot re-attest), [`Error::Task`] naming any other
/// failed task, or `Ok` after a stop.
pub async fn run(config: AgentConfig, clock: SharedClock, stop: Shutdown) -> Result<(), Error> {
    serve(config, clock, stop, None).await
}

/// [`run`], with the admin socket (`admin_socket_path`, when set) serving the Logger API over
/// `log`, the process's logger.
pub async fn run_with_logger(
    config: AgentConfig,
    clock: SharedClock,
    stop: Shutdown,
    log: LogHandle,
) -> Result<(), Error> {
    serve(config, clock, stop, Some(log)).await
}

async fn serve(
    config: AgentConfig,
    clock: SharedClock,
    stop: Shutdown,
    log: Option<LogHandle>,
) -> Result<(), Error> {
    let started_at = clock.now();
    let node_attestor: Arc<dyn NodeAttestor> = match &config.node_attestor {
        NodeAttestorChoice::JoinToken(Some(token)) => {
            Arc::new(JoinTokenAttestor::new(token.clone())?)
        }
        NodeAttestorChoice::JoinToken(None) => Arc::new(JoinTokenAttestor::without_token()),
        NodeAttestorChoice::X509Pop(x509pop) => Arc::new(X509PopAttestor::new(x509pop.clone())?),
        NodeAttestorChoice::K8sPsat(k8s_psat) => Arc::new(K8sPsatAttestor::new(k8s_psat.clone())),
    };
    let key_manager: Arc<dyn KeyManager> = match &config.key_manager {
        KeyManagerChoice::Disk(directory) => Arc::new(keymanager::open_disk(directory)?),
        KeyManagerChoice::Memory => Arc::new(MemoryKeyManager::new()),
    };
    let mut workload_attestors: Vec<Arc<dyn WorkloadAttestor>> = vec![Arc::new(
        UnixAttestor::from_plugin_data(&config.unix_workload_attestor)?,
    )];
    if let Some(k8s) = &config.k8s_workload_attestor {
        workload_attestors.push(Arc::new(K8sAttestor::new(
            k8s.clone(),
            K8sOptions::default(),
        )?));
    }

    tracing::info!(
        trust_domain = %config.trust_domain,
        server = %format!("{}:{}", config.server_address, config.server_port),
        "Starting agent"
    );
    // Tasks started before a start-up error are aborted when `tasks` is dropped.
    let mut tasks = Supervisor::new(stop.clone());
    let metrics = config.telemetry.registry(config.trust_domain.name());
    spire_metrics::start(
        &metrics,
        &config.telemetry,
        env!("CARGO_PKG_VERSION"),
        config.trust_domain.name(),
        &mut tasks,
    )
    .await
    .map_err(|e| Error::Config(e.to_string()))?;
    // health_checks first, so a kubelet probing /live during attestation is answered (live,
    // not yet ready). A listener that cannot start is logged; the agent goes on.
    let checker = crate::health::agent_checker(config.socket_path.clone());
    let health = config.health.clone();
    let health_stop = stop.clone();
    tasks.spawn("health-checks", async move {
        if let Err(error) = spire_health::serve(&health, vec![checker], health_stop.stopped()).await
        {
            tracing::error!(%error, "Error serving health checks");
            health_stop.stopped().await;
        }
    });
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
            metrics: metrics.clone(),
        },
        &mut tasks,
    )
    .await;
    let manager = match manager {
        Ok(manager) => Arc::new(manager),
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
    .with_jwt(manager.jwt_svid_source(), clock.clone())
    .with_metrics(metrics.clone());
    if !config.disable_sds_api {
        // Envoy SDS v3 on the same socket as the Workload API.
        let sds = SdsService::new(
            cache.clone(),
            workload_attestors.clone(),
            config.sds.clone(),
            stop.clone(),
            &metrics,
        );
        endpoint = endpoint.with_routes(&[SdsService::NAME], sds.into_routes());
    }
    if let (Some(path), Some(log)) = (&config.admin_socket_path, log) {
        tracing::info!(network = "unix", address = %path.display(), "Starting Admin APIs");
        let debug = crate::admin::DebugService {
            manager: manager.clone(),
            clock: clock.clone(),
            started_at,
        };
        tasks.spawn(
            "admin-api",
            crate::admin::serve(path, log, debug, stop.clone())?,
        );
    }
    tracing::info!(path = %config.socket_path.display(), "Starting Workload and SDS APIs");
    tasks.spawn(
        "workload-endpoint",
        endpoint.serve(cache, workload_attestors, stop),
    );
    // A fatal manager error ends the agent (SPIRE exits): everything else stops with it.
    let result = tasks.run(GRACE).await;
    let _ = std::fs::remove_file(&config.socket_path);
    if let Some(path) = &config.admin_socket_path {
        let _ = std::fs::remove_file(path);
    }
    result.map_err(task_error)?;
    tracing::info!("Agent stopped");
    Ok(())
}

/// A failed task as the agent's error: the manager's and the endpoint's own errors keep
/// their variants (the supervisor has logged the task's name); anything else names the task.
fn task_error(error: spire_task::Error) -> Error {
    error
        .downcast::<spire_agent_manager::Error>()
        .map(Error::Manager)
        .or_else(|error| {
            error
                .downcast::<spire_agent_workload::Error>()
                .map(Error::Workload)
        })
        .unwrap_or_else(Error::Task)
}
