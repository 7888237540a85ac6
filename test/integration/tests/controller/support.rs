//! Shared by the controller tests: a cluster (test apiserver), a server, and a controller
//! run in this process until dropped.

use serde_json::Value;
use spire_controller::config::ManagerConfig;
use spire_controller::config::cli::ManagerArgs;
use spire_integration_tests::{ServerBuilder, TestServer};
use spire_proto::spire::api::server::entry::v1::ListEntriesRequest;
use spire_proto::spire::api::types::Entry;
use spire_task::Shutdown;
use spire_test_k8s::TestApiServer;
use spire_test_k8s::{PodBuilder, node_json};
use tokio::task::JoinHandle;

pub(crate) const TRUST_DOMAIN: &str = "example.org";
pub(crate) const CLUSTER: &str = "demo-cluster";
pub(crate) const NODE_UID: &str = "5f1c3a52-5d0b-4c5a-9a57-0b1f8e6a3c01";

/// The ClusterSPIFFEID of Istio's SPIRE sample: one identity per service account, for pods
/// labelled `spiffe.io/spire-managed-identity: "true"`.
pub(crate) const ISTIO_CLUSTER_SPIFFE_ID: &str = r#"
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: example
spec:
  spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"
  podSelector:
    matchLabels:
      spiffe.io/spire-managed-identity: "true"
"#;

/// A cluster with one node, a server, and the controller config pointing at both.
pub(crate) struct Cluster {
    pub(crate) api: TestApiServer,
    pub(crate) server: TestServer,
    pub(crate) dir: tempfile::TempDir,
}

impl Cluster {
    pub(crate) async fn start() -> Self {
        let api = TestApiServer::start().await;
        api.register_spire_crds();
        api.put_node(node_json("node-1", NODE_UID, &[]));
        for namespace in ["default", "kube-system", "spire"] {
            api.put_namespace(namespace, &[]);
        }
        let server = ServerBuilder::new()
            .trust_domain(TRUST_DOMAIN)
            .start()
            .await
            .unwrap();
        Self {
            api,
            server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Istio's controller configuration (§7.1), aimed at this cluster's server.
    pub(crate) fn manager_config(&self, extra: &str) -> ManagerConfig {
        self.manager_config_with(extra, false)
    }

    /// [`Cluster::manager_config`], with the webhook on or off (`ENABLE_WEBHOOKS`).
    pub(crate) fn manager_config_with(&self, extra: &str, webhooks: bool) -> ManagerConfig {
        let yaml = format!(
            "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\n\
             {metrics}healthProbe:\n  bindAddress: 127.0.0.1:0\n\
             clusterName: {CLUSTER}\ntrustDomain: {TRUST_DOMAIN}\nclusterDomain: cluster.local\n\
             ignoreNamespaces:\n  - kube-system\n  - kube-public\n  - spire\n  - local-path-storage\n\
             spireServerSocketPath: {}\n{extra}",
            self.server.socket_path().display(),
            // No metrics listener unless the test asks for one (tests run in parallel).
            metrics = if extra.contains("metrics:") {
                ""
            } else {
                "metrics:\n  bindAddress: \"0\"\n"
            },
        );
        let env = |name: &str| (name == "ENABLE_WEBHOOKS" && !webhooks).then(|| "false".to_owned());
        ManagerConfig::parse(&yaml, &ManagerArgs::default(), env).unwrap()
    }

    /// Starts the controller manager in this process.
    pub(crate) async fn start_manager(&self, config: ManagerConfig) -> Controller {
        let kubeconfig = self.api.kubeconfig(self.dir.path());
        let kube = spire_controller::runtime::kube_client(Some(&kubeconfig))
            .await
            .unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(spire_controller::runtime::run_manager(
            config,
            kube,
            "spire".to_owned(),
            shutdown.clone(),
        ));
        Controller {
            shutdown,
            task: Some(task),
        }
    }

    /// Starts the k8s-workload-registrar (CRD mode) in this process, in namespace `spire`.
    pub(crate) async fn start_registrar(
        &self,
        config: spire_controller::config::RegistrarConfig,
    ) -> Controller {
        let kubeconfig = self.api.kubeconfig(self.dir.path());
        let kube = spire_controller::runtime::kube_client(Some(&kubeconfig))
            .await
            .unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(spire_controller::runtime::run_registrar(
            config,
            kube,
            "spire".to_owned(),
            shutdown.clone(),
        ));
        Controller {
            shutdown,
            task: Some(task),
        }
    }

    /// Every entry on the server.
    pub(crate) async fn entries(&self) -> Vec<Entry> {
        let mut client = self.server.entries().await.unwrap();
        client
            .list_entries(ListEntriesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    /// Waits until the server's entries satisfy `check` (the controller works by events, so
    /// this polls the server only as the observer).
    pub(crate) async fn wait_entries(
        &self,
        what: &str,
        check: impl Fn(&[Entry]) -> bool,
    ) -> Vec<Entry> {
        spire_integration_tests::eventually(what, || async {
            let entries = self.entries().await;
            check(&entries).then_some(entries)
        })
        .await
        .unwrap()
    }

    /// Stores a pod of `service_account` on node-1.
    pub(crate) fn put_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        labels: &[(&str, &str)],
    ) -> Value {
        let mut pod = PodBuilder::new(name, namespace, uid)
            .node("node-1")
            .service_account("sleep");
        for (k, v) in labels {
            pod = pod.label(k, v);
        }
        self.api.put_pod(pod.build())
    }
}

/// A controller running in this process; stopped (gracefully) on [`Controller::stop`].
pub(crate) struct Controller {
    shutdown: Shutdown,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Controller {
    pub(crate) async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// `spiffe://td/path` of an entry's SPIFFE ID.
pub(crate) fn spiffe_id(entry: &Entry) -> String {
    let id = entry.spiffe_id.as_ref().unwrap();
    format!("spiffe://{}{}", id.trust_domain, id.path)
}

/// `spiffe://td/path` of an entry's parent ID.
pub(crate) fn parent_id(entry: &Entry) -> String {
    let id = entry.parent_id.as_ref().unwrap();
    format!("spiffe://{}{}", id.trust_domain, id.path)
}

/// `type:value` selectors of an entry.
pub(crate) fn selectors(entry: &Entry) -> Vec<String> {
    entry
        .selectors
        .iter()
        .map(|s| format!("{}:{}", s.r#type, s.value))
        .collect()
}
