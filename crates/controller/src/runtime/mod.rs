//! The controller at run time: kube-rs watches feeding the pure engines (`manager`,
//! `registrar`), their plans applied through spire-server's admin API, leader election, the
//! webhook and the probe endpoints.

pub mod manager;
pub mod metrics;
pub mod probes;
pub mod registrar;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use spire_task::{Shutdown, Supervisor};
use spire_time::Clock;

use crate::config::LeaderElection;
use crate::config::manager::ManagerConfig;
use crate::leader::{LeaderElector, LeaderError, LeaseConfig};
use crate::spire::SpireClient;
use metrics::Metrics;

/// What both front doors need from outside.
#[derive(Clone)]
pub struct Deps {
    /// The apiserver.
    pub kube: kube::Client,
    /// spire-server's admin API.
    pub spire: SpireClient,
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// The controller's own namespace (leases, node objects, webhook).
    pub namespace: String,
    /// This replica's identity in leader election.
    pub identity: String,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("spire", &self.spire)
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Errors that stop a front door before it runs.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not render.
    #[error("{0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("unable to listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Binds a TCP listener; controller-runtime's `:port` means every interface.
pub(crate) async fn bind(address: &str) -> Result<tokio::net::TcpListener, StartError> {
    let normalized = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    };
    tokio::net::TcpListener::bind(normalized.as_str())
        .await
        .map_err(|source| StartError::Listen {
            address: address.to_owned(),
            source,
        })
}

/// Starts the metrics listener on `address` (none when `None`) and returns the metrics.
pub(crate) async fn start_metrics(
    supervisor: &mut Supervisor,
    address: Option<&str>,
) -> Result<Arc<Metrics>, StartError> {
    let metrics = Arc::new(Metrics::default());
    if let Some(address) = address {
        let listener = bind(address).await?;
        let shutdown = supervisor.shutdown().clone();
        supervisor.spawn(
            "metrics",
            probes::serve_metrics(listener, metrics.clone(), shutdown),
        );
    }
    Ok(metrics)
}

/// The Lease elector for `election` (none when leader election is off).
pub(crate) fn elector(deps: &Deps, election: &LeaderElection) -> Option<LeaderElector> {
    election.enabled.then(|| {
        LeaderElector::new(
            deps.kube.clone(),
            LeaseConfig {
                name: election.lease_name.clone(),
                namespace: election
                    .lease_namespace
                    .clone()
                    .unwrap_or_else(|| deps.namespace.clone()),
                identity: deps.identity.clone(),
                lease_duration: election.lease_duration,
                renew_deadline: election.renew_deadline,
                retry_period: election.retry_period,
            },
            deps.clock.clone(),
        )
    })
}

/// Runs `reconcile` while this replica leads (at once, without leader election); ends when
/// the process stops or leadership is lost.
pub(crate) async fn lead(
    elector: Option<LeaderElector>,
    metrics: &Metrics,
    shutdown: &Shutdown,
    reconcile: impl Future<Output = ()>,
) -> Result<(), LeaderError> {
    let Some(mut elector) = elector else {
        metrics.leader(true);
        reconcile.await;
        return Ok(());
    };
    if !elector.acquire(shutdown).await {
        return Ok(());
    }
    metrics.leader(true);
    tokio::select! {
        held = elector.hold(shutdown) => held,
        () = reconcile => Ok(()),
    }
}

/// How long tasks get to drain at a graceful stop.
pub const GRACE: Duration = Duration::from_secs(10);

/// A client of the apiserver from `kubeconfig`, or from the environment as client-go finds it
/// (`KUBECONFIG`, `~/.kube/config`, then the in-cluster service account).
pub async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("unable to load the Kubernetes client configuration")?,
    };
    kube::Client::try_from(config).context("unable to create the Kubernetes client")
}

/// This replica's leader-election identity: the host name (the pod name) and a random suffix,
/// as controller-runtime makes it.
pub fn leader_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "spire-controller".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Runs the k8s-workload-registrar (CRD mode) until `shutdown` (or a task fails).
pub async fn run_registrar(
    config: crate::config::RegistrarConfig,
    kube: kube::Client,
    namespace: String,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let deps = Deps {
        kube,
        spire: SpireClient::new(&config.server_socket_path),
        clock: Arc::new(spire_time::SystemClock),
        namespace,
        identity: leader_identity(),
    };
    let mut supervisor = Supervisor::new(shutdown);
    registrar::start(&mut supervisor, config, deps).await?;
    supervisor.run(GRACE).await?;
    Ok(())
}

/// Runs spire-controller-manager until `shutdown` (or a task fails).
pub async fn run_manager(
    config: ManagerConfig,
    kube: kube::Client,
    namespace: String,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let deps = Deps {
        kube,
        spire: SpireClient::new(&config.spire_server_socket_path),
        clock: Arc::new(spire_time::SystemClock),
        namespace,
        identity: leader_identity(),
    };
    let mut supervisor = Supervisor::new(shutdown);
    manager::start(&mut supervisor, config, deps).await?;
    supervisor.run(GRACE).await?;
    Ok(())
}

/// The cluster DNS domain as upstream finds it when `clusterDomain` is unset: Kubernetes
/// resolves `kubernetes.default.svc` through the pod's search path, whose `svc.<domain>` entry
/// names the domain. Read from `resolv_conf`; `None` when no such entry exists.
pub fn detect_cluster_domain(resolv_conf: &Path) -> Option<String> {
    let text = std::fs::read_to_string(resolv_conf).ok()?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("search"))
        .flat_map(str::split_whitespace)
        .find_map(|domain| domain.strip_prefix("svc."))
        .map(|d| d.trim_end_matches('.').to_owned())
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_domain_from_the_pod_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "nameserver 10.96.0.10\nsearch spire.svc.corp.example svc.corp.example corp.example\noptions ndots:5\n",
        )
        .unwrap();
        assert_eq!(
            detect_cluster_domain(&path).as_deref(),
            Some("corp.example")
        );
        std::fs::write(&path, "nameserver 1.1.1.1\nsearch example.com\n").unwrap();
        assert_eq!(detect_cluster_domain(&path), None);
        assert_eq!(detect_cluster_domain(&dir.path().join("absent")), None);
    }
}

/// What a front door's `main` does once its configuration is loaded: the logger (with the
/// configuration's ignored keys and warnings logged), the crypto provider, the async runtime
/// and the stop signals; then `run` until it ends. The exit code is the process's.
pub fn daemon_main<F, Fut>(
    what: &'static str,
    logging: Logging<'_>,
    run: F,
) -> std::process::ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;

    if let Err(e) = spire_cli::init_logging(logging.level, logging.format, logging.file) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    for key in logging.ignored_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    for warning in logging.warnings {
        tracing::warn!("{warning}");
    }
    // The process's one crypto provider (kube's client and the webhook use rustls).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = spire_cli::prepare_daemon(what);
        run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{what} stopped");
            ExitCode::FAILURE
        }
    }
}

/// The logging part of a front door's configuration.
#[derive(Debug)]
pub struct Logging<'a> {
    /// Level name.
    pub level: &'a str,
    /// `text` or `json`.
    pub format: &'a str,
    /// Log file, else stderr.
    pub file: Option<&'a Path>,
    /// Keys the configuration file had that were ignored.
    pub ignored_keys: &'a [String],
    /// Other warnings from loading the configuration.
    pub warnings: &'a [String],
}
