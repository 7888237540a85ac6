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

use crate::config::manager::ManagerConfig;
use crate::spire::SpireClient;

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
    let deps = registrar::RegistrarDeps {
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
    let deps = manager::ManagerDeps {
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
