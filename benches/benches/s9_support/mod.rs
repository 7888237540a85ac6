//! S9 helpers: pods of an Istio-like node (kubelet JSON padded to a realistic size), processes
//! placed in real `kubepods` cgroups (cgroup v1 `pids` hierarchy) and removed again, and a
//! server + agent pair whose agent runs `WorkloadAttestor "k8s"` against a test kubelet.
#![allow(dead_code, unreachable_pub)] // each part of the bench uses part of it

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use spire_test_k8s::PodBuilder;

use crate::support::{Domain, Options};

/// The cgroup v1 hierarchy the pod cgroups are made in (what the attestor reads back from
/// `/proc/<pid>/cgroup` as `N:pids:/kubepods/...`).
pub const HIERARCHY: &str = "/sys/fs/cgroup/pids";
/// The namespace of every bench pod.
pub const NAMESPACE: &str = "bench";
/// The node name the test kubelet serves.
pub const NODE: &str = "node-1";

/// One Istio-like pod (what injection and a Deployment give it: Istio's labels and
/// annotations, a ReplicaSet owner, an app container, an `istio-proxy` sidecar and an
/// `istio-init` init container, each with its own container ID).
#[derive(Clone, Debug)]
pub struct BenchPod {
    pub index: usize,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub app: String,
    pub service_account: String,
    pub node: String,
    host_ip: String,
    /// Labels beyond Istio's.
    labels: Vec<(String, String)>,
    /// The container the bench's processes run in.
    pub app_cid: String,
    proxy_cid: String,
    init_cid: String,
    replicaset_uid: String,
}

impl BenchPod {
    /// Pod `index` of the S9 node with fresh random UIDs and container IDs (parallel runs
    /// never share a cgroup).
    pub fn new(index: usize) -> Self {
        let app = format!("app{index:03}");
        let name = format!("{app}-7d4b9c8f6d-{}", &random_hex(3)[..5]);
        Self::placed(index, NAMESPACE, &app, &name, NODE, "10.0.0.5")
    }

    /// Pod `index` named `name` of app `app` (also its service account) in `namespace` on
    /// `node` (at `host_ip`).
    pub fn placed(
        index: usize,
        namespace: &str,
        app: &str,
        name: &str,
        node: &str,
        host_ip: &str,
    ) -> Self {
        Self {
            index,
            uid: uuid::Uuid::new_v4().to_string(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            app: app.to_owned(),
            service_account: app.to_owned(),
            node: node.to_owned(),
            host_ip: host_ip.to_owned(),
            labels: Vec::new(),
            app_cid: random_hex(32),
            proxy_cid: random_hex(32),
            init_cid: random_hex(32),
            replicaset_uid: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The same pod with one more label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The SPIFFE ID path of this pod's registration entry.
    pub fn spiffe_path(&self) -> String {
        format!("/ns/{}/sa/{}", self.namespace, self.service_account)
    }

    /// The app container's cgroup, relative to a hierarchy (cgroupfs driver layout).
    pub fn cgroup(&self) -> String {
        format!("kubepods/burstable/pod{}/{}", self.uid, self.app_cid)
    }

    /// The pod as the kubelet's `/pods` lists it, padded with container environment
    /// variables (as Istio's injected proxy and most apps carry dozens) to about
    /// `target_bytes` of JSON.
    pub fn json(&self, target_bytes: usize) -> Value {
        let proxy_image = "docker.io/istio/proxyv2:1.24.0";
        let proxy_image_id = "docker.io/istio/proxyv2@sha256:\
                              5e1e7a1f2c1a0c0b8d3f4a9e6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8";
        let mut builder = PodBuilder::new(&self.name, &self.namespace, &self.uid)
            .node(&self.node)
            .service_account(&self.service_account)
            .host_ip(&self.host_ip)
            .pod_ip(&format!(
                "10.244.{}.{}",
                self.index / 250 % 250,
                self.index % 250 + 2
            ));
        for (key, value) in &self.labels {
            builder = builder.label(key, value);
        }
        let mut pod = builder
            .label("app", &self.app)
            .label("version", "v1")
            .label("pod-template-hash", "7d4b9c8f6d")
            .label("security.istio.io/tlsMode", "istio")
            .label("service.istio.io/canonical-name", &self.app)
            .label("service.istio.io/canonical-revision", "v1")
            .annotation(
                "sidecar.istio.io/status",
                r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}"#,
            )
            .annotation("kubectl.kubernetes.io/default-container", &self.app)
            .annotation("prometheus.io/path", "/stats/prometheus")
            .annotation("prometheus.io/port", "15020")
            .annotation("prometheus.io/scrape", "true")
            .owner(
                "ReplicaSet",
                &format!("{}-7d4b9c8f6d", self.app),
                &self.replicaset_uid,
            )
            .init_container(
                "istio-init",
                &format!("containerd://{}", self.init_cid),
                proxy_image,
                proxy_image_id,
            )
            .container(
                &self.app,
                &format!("containerd://{}", self.app_cid),
                &format!("registry.example/bench/{}:1.0.0", self.app),
                &format!(
                    "registry.example/bench/{}@sha256:{}",
                    self.app,
                    random_hex(32)
                ),
            )
            .container(
                "istio-proxy",
                &format!("containerd://{}", self.proxy_cid),
                proxy_image,
                proxy_image_id,
            )
            .build();
        let base = serde_json::to_vec(&pod).expect("JSON").len();
        let one = serde_json::to_vec(&env_var(0)).expect("JSON").len() + 1;
        let wanted = target_bytes.saturating_sub(base) / one;
        let containers = pod["spec"]["containers"]
            .as_array_mut()
            .expect("the builder writes spec.containers");
        let n = containers.len();
        for (c, container) in containers.iter_mut().enumerate() {
            let count = wanted / n + usize::from(c < wanted % n);
            let env: Vec<Value> = (0..count).map(|i| env_var(c * 10_000 + i)).collect();
            container["env"] = Value::Array(env);
        }
        pod
    }
}

fn env_var(i: usize) -> Value {
    json!({"name": format!("BENCH_SETTING_{i:05}"),
           "value": "a-typical-configuration-value-of-some-forty-chars"})
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Cgroups this process made, and the processes it moved into them. On drop (also while
/// unwinding from a panic) every moved process goes back to the hierarchy's root, then exactly
/// the directories made here are removed, deepest first.
#[derive(Debug, Default)]
pub struct Cgroups {
    created: Vec<PathBuf>,
    members: Vec<u32>,
}

impl Cgroups {
    /// Why real cgroups cannot be used here, if they cannot (not root, no writable v1
    /// `pids` hierarchy).
    pub fn unusable() -> Option<String> {
        let euid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
            });
        if euid.as_deref() != Some("0") {
            return Some("not root: cannot create cgroups".into());
        }
        let probe = Path::new(HIERARCHY).join(format!("spire-s9-probe-{}", std::process::id()));
        match std::fs::create_dir(&probe) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&probe);
                None
            }
            Err(e) => Some(format!(
                "{HIERARCHY} is not a writable cgroup hierarchy: {e}"
            )),
        }
    }

    /// Creates `HIERARCHY/<relative>` (recording each directory it makes) and moves `pid`
    /// (its whole thread group) into it.
    pub fn enter(&mut self, relative: &str, pid: u32) -> io::Result<()> {
        let mut dir = PathBuf::from(HIERARCHY);
        for part in relative.split('/') {
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => self.created.push(dir.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        self.members.push(pid);
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        let root = Path::new(HIERARCHY).join("cgroup.procs");
        for pid in &self.members {
            // Fails for processes that already exited: nothing to move then.
            let _ = std::fs::write(&root, pid.to_string());
        }
        for dir in self.created.iter().rev() {
            // A process killed just before may take a moment to leave its cgroup (EBUSY).
            let mut attempts = 0;
            while let Err(e) = std::fs::remove_dir(dir) {
                attempts += 1;
                if e.kind() == io::ErrorKind::NotFound {
                    break;
                }
                if attempts == 100 {
                    eprintln!("s9: could not remove cgroup {}: {e}", dir.display());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A running server and an agent with `WorkloadAttestor "k8s"` (secure kubelet port,
/// `skip_kubelet_verification`, bearer token from `token_path`) beside `"unix"`, joined with a
/// join token: the shared [`Domain`] with one more plugin block.
#[derive(Debug)]
pub struct K8sDomain {
    domain: Domain,
    _token_dir: tempfile::TempDir,
}

impl K8sDomain {
    /// Starts the server and the agent pointed at the kubelet on
    /// `127.0.0.1:<kubelet_port>`; returns once both are healthy. Blocking: call it off the
    /// runtime that serves the kubelet.
    pub fn start(kubelet_port: u16, kubelet_token: &str) -> Self {
        let token_dir = tempfile::tempdir().expect("temp dir");
        let token_path = token_dir.path().join("kubelet-token");
        std::fs::write(&token_path, format!("{kubelet_token}\n")).expect("kubelet token");
        let options = Options {
            agent_plugins: format!(
                r#"    WorkloadAttestor "k8s" {{
        plugin_data {{
            kubelet_secure_port = {kubelet_port}
            skip_kubelet_verification = true
            token_path = "{}"
        }}
    }}"#,
                token_path.display()
            ),
            ..Options::default()
        };
        Self {
            domain: Domain::start(&options),
            _token_dir: token_dir,
        }
    }
}

impl std::ops::Deref for K8sDomain {
    type Target = Domain;

    fn deref(&self) -> &Domain {
        &self.domain
    }
}
