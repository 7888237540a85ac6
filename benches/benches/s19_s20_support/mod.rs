//! S19/S20 helpers: a synthetic cluster of Istio-like pods for the test apiserver, the
//! registration controller as its own process (this bench binary re-executed, running what
//! `bin/spire-controller-manager`'s `main` runs), a read-only view of the server's SQLite
//! datastore that counts writes, an in-process agent attested with `k8s_psat` as one node,
//! and the workload process that asks that agent for its SVID from inside a pod's cgroup.
#![allow(dead_code, unreachable_pub)] // the bench's phases use parts of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use crate::s9_support::BenchPod;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::time::Instant;

/// The trust domain of the server and the controller.
pub const TRUST_DOMAIN: &str = "example.org";
/// The controller's `clusterName`, and the agent's `k8s_psat` cluster.
pub const CLUSTER: &str = "demo-cluster";
/// Pods per node (the kubelet's default `maxPods`).
pub const PODS_PER_NODE: usize = 110;
/// Replicas of each app (one service account, so one SPIFFE ID, per app).
pub const REPLICAS: usize = 5;
/// Pods per namespace, roughly.
pub const PODS_PER_NAMESPACE: usize = 300;
/// The label Istio's ClusterSPIFFEID selects.
pub const MANAGED_LABEL: (&str, &str) = ("spiffe.io/spire-managed-identity", "true");
/// The ClusterSPIFFEID's name and path.
pub const CSID_NAME: &str = "example";
pub const CSID_PATH: &str = "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/example";

/// Istio's SPIRE sample ClusterSPIFFEID, as the repository's quickstart manifests ship it: one
/// identity per service account, for pods with the managed-identity label.
pub const ISTIO_CLUSTER_SPIFFE_ID: &str =
    include_str!("../../../deploy/quickstart/clusterspiffeid/clusterspiffeid.yaml");

/// The environment variable that selects a child role of this binary.
pub const ROLE_ENV: &str = "S19S20_ROLE";
/// The agent socket of a workload child.
pub const SOCKET_ENV: &str = "S19S20_SOCKET";

/// How the synthetic cluster is laid out.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Existing pods.
    pub pods: usize,
    /// `ceil(pods / 110)` nodes.
    pub nodes: usize,
    /// Namespaces the pods are spread over.
    pub namespaces: usize,
    /// Target size of one pod's JSON.
    pub pod_bytes: usize,
}

impl Layout {
    /// `pods` pods of about `pod_kib` KiB each.
    pub fn new(pods: usize, pod_kib: usize) -> Self {
        Self {
            pods,
            nodes: pods.div_ceil(PODS_PER_NODE).max(1),
            namespaces: pods.div_ceil(PODS_PER_NAMESPACE).max(1),
            pod_bytes: pod_kib * 1024,
        }
    }

    /// Node `n`'s name.
    pub fn node_name(n: usize) -> String {
        format!("node-{n:05}")
    }

    /// Node `n`'s UID (what the agent ID and the entries' parent ID end with).
    pub fn node_uid(n: usize) -> String {
        format!("10000000-0000-4000-8000-{n:012}")
    }

    /// The namespace names.
    pub fn namespace_names(&self) -> Vec<String> {
        (0..self.namespaces).map(|n| format!("ns-{n:03}")).collect()
    }

    /// Existing pod `i`: app `i / REPLICAS` (its namespace and service account), spread over
    /// the nodes round robin (node [`Layout::pod_node`]), so node 0 holds about 110 of them.
    pub fn pod(&self, i: usize) -> BenchPod {
        let app = format!("app-{:05}", i / REPLICAS);
        let namespace = format!("ns-{:03}", i / REPLICAS % self.namespaces);
        bench_pod(i, &namespace, &app, &format!("{i:06}"), self.pod_node(i))
    }

    /// The node index of existing pod `i`.
    pub fn pod_node(&self, i: usize) -> usize {
        i % self.nodes
    }

    /// New pod `k` of S19, on node 0, in the first namespace.
    pub fn new_pod(&self, k: usize) -> BenchPod {
        bench_pod(self.pods + k, "ns-000", &format!("fresh-{k:03}"), "0", 0)
    }
}

/// An Istio-like pod the ClusterSPIFFEID selects.
fn bench_pod(index: usize, namespace: &str, app: &str, suffix: &str, node: usize) -> BenchPod {
    BenchPod::placed(
        index,
        namespace,
        app,
        &format!("{app}-7d4b9c8f6d-{suffix}"),
        &Layout::node_name(node),
        &format!("10.0.{}.{}", node / 250, node % 250 + 2),
    )
    .label(MANAGED_LABEL.0, MANAGED_LABEL.1)
}

/// The SPIFFE ID the ClusterSPIFFEID renders for `pod`.
pub fn spiffe_id(pod: &BenchPod) -> String {
    format!("spiffe://{TRUST_DOMAIN}{}", pod.spiffe_path())
}

// === processes ===

/// utime + stime of `pid`, in seconds (`/proc/<pid>/stat`, 10 ms ticks).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The command name may hold spaces: fields count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The controller, as its own process: this binary in the `controller` role.
#[derive(Debug)]
pub struct ControllerProcess {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
    /// When it was spawned.
    pub started: Instant,
}

impl ControllerProcess {
    /// Writes the configuration (Istio's ControllerManagerConfig, aimed at `server_socket`;
    /// no webhook, no leader election, probes off) into `dir` and starts the controller.
    pub fn spawn(dir: &Path, run: usize, kubeconfig: &Path, server_socket: &Path) -> Self {
        let config = dir.join("controller.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\n\
                 metrics:\n  bindAddress: \"0\"\nhealthProbe:\n  bindAddress: \"0\"\n\
                 clusterName: {CLUSTER}\ntrustDomain: {TRUST_DOMAIN}\nclusterDomain: cluster.local\n\
                 ignoreNamespaces:\n  - kube-system\n  - kube-public\n  - spire\n  - local-path-storage\n\
                 spireServerSocketPath: {}\n",
                server_socket.display()
            ),
        )
        .expect("write the controller config");
        let log = dir.join(format!("controller-{run}.log"));
        let log_file = std::fs::File::create(&log).expect("controller log");
        let started = Instant::now();
        let child = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
            .env(ROLE_ENV, "controller")
            .env("ENABLE_WEBHOOKS", "false")
            .env_remove("SPIRE_LOG")
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the controller");
        let pid = child.id().expect("a running child has a pid");
        Self {
            child,
            pid,
            log,
            started,
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU seconds used so far.
    pub fn cpu(&self) -> f64 {
        cpu_seconds(self.pid)
    }

    /// `VmRSS`, `VmHWM` (KiB).
    pub fn memory(&self) -> (u64, u64) {
        memory_kib(self.pid)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the controller exited ({status}):\n{}", self.log());
        }
    }

    /// SIGTERM, then waits for a graceful exit (SIGKILL after 30 s).
    pub async fn stop(mut self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid).expect("pid fits"))
            .expect("non-zero pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => println!("s20: the controller exited with {status}"),
            Ok(Err(e)) => println!("s20: waiting for the controller: {e}"),
            Err(_) => {
                println!("s20: the controller ignored SIGTERM for 30 s; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

/// The `controller` role: what `bin/spire-controller-manager`'s `main` does (its config
/// loader, logger, stop signal, kube client and `run_manager` on a default multi-thread
/// runtime), with the controller's namespace fixed to `spire`.
pub fn controller_main() -> ExitCode {
    use spire_controller::config::cli::ManagerArgs;
    use spire_controller::config::manager::ManagerConfig;
    use spire_controller::runtime::{Logging, daemon_main, kube_client, run_manager};

    let args = match ManagerArgs::try_parse_go(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = match ManagerConfig::load(&args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: unable to load the configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let logging = Logging {
        level: config.log_level.as_str(),
        format: config.log_format.as_str(),
        file: None,
        ignored_keys: &[],
        warnings: &[],
    };
    daemon_main("controller manager", logging, |shutdown| async move {
        let kube = kube_client(args.kubeconfig.as_deref()).await?;
        run_manager(config, kube, "spire".to_owned(), shutdown).await
    })
}

// === the server's datastore, read-only ===

/// One row of `change_events`: a write the server committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub aggregate: String,
    pub key: String,
    pub op: String,
}

/// The server's SQLite file, read beside it (WAL): every committed write bumps the revision
/// counter once per change event.
#[derive(Debug)]
pub struct Datastore {
    pool: SqlitePool,
}

impl Datastore {
    /// Opens `path` read-only.
    pub async fn open(path: &Path) -> Self {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("open the server's datastore read-only");
        Self { pool }
    }

    /// The revision of the last committed change.
    pub async fn revision(&self) -> i64 {
        sqlx::query_scalar("SELECT revision FROM spire_rs_revision_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .expect("revision")
    }

    /// The changes after `revision`, oldest first.
    pub async fn changes_since(&self, revision: i64) -> Vec<Change> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT revision, aggregate, record_key, op FROM spire_rs_change_events \
             WHERE revision > ? ORDER BY revision",
        )
        .bind(revision)
        .fetch_all(&self.pool)
        .await
        .expect("change events");
        rows.into_iter()
            .map(|(revision, aggregate, key, op)| Change {
                revision,
                aggregate,
                key,
                op,
            })
            .collect()
    }

    /// Registration entries stored.
    pub async fn entry_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM spire_rs_registered_entries")
            .fetch_one(&self.pool)
            .await
            .expect("entry count")
    }

    /// Entry ID → revision number, for every entry.
    pub async fn entry_revisions(&self) -> BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT entry_id, revision_number FROM spire_rs_registered_entries")
                .fetch_all(&self.pool)
                .await
                .expect("entries");
        rows.into_iter().collect()
    }

    /// Whether an entry with selector `k8s:pod-uid:<uid>` is stored.
    pub async fn has_pod_entry(&self, uid: &str) -> bool {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM spire_rs_entry_selectors WHERE selector_type = 'k8s' AND selector_value = ?",
        )
        .bind(format!("pod-uid:{uid}"))
        .fetch_one(&self.pool)
        .await
        .expect("selector lookup");
        n > 0
    }
}

// === the agent of node 0 ===

/// An agent run in this process, attested with `k8s_psat` as node 0's agent pod, with the
/// `k8s` workload attestor on a test kubelet (and `unix`).
#[derive(Debug)]
pub struct Agent {
    stop: spire_task::Shutdown,
    task: tokio::task::JoinHandle<Result<(), spire_agent_app::Error>>,
    /// The Workload API socket.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// The token the agent presents, and the TokenReview the apiserver answers for it.
pub const AGENT_TOKEN: &str = "s19-agent-projected-token";
/// The token the agent's k8s workload attestor sends to the kubelet.
pub const KUBELET_TOKEN: &str = "s19-kubelet-token";

impl Agent {
    /// Starts the agent against the server on 127.0.0.1:`server_port` and waits for its
    /// Workload API socket (attested, first sync done).
    pub async fn start(server_port: u16, bundle_pem: &str, kubelet_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("data")).expect("agent data dir");
        std::fs::write(root.join("bootstrap.pem"), bundle_pem).expect("bootstrap bundle");
        std::fs::write(root.join("psat"), AGENT_TOKEN).expect("token");
        std::fs::write(root.join("kubelet-token"), KUBELET_TOKEN).expect("kubelet token");
        let text = format!(
            r#"agent {{
    data_dir = "{root}/data"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "{server_port}"
    socket_path = "{root}/api.sock"
    trust_bundle_path = "{root}/bootstrap.pem"
    trust_domain = "{TRUST_DOMAIN}"
}}
plugins {{
    NodeAttestor "k8s_psat" {{
        plugin_data {{
            cluster = "{CLUSTER}"
            token_path = "{root}/psat"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "k8s" {{
        plugin_data {{
            node_name = "127.0.0.1"
            kubelet_secure_port = {kubelet_port}
            skip_kubelet_verification = true
            token_path = "{root}/kubelet-token"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
"#,
            root = root.display()
        );
        let config = spire_agent_app::AgentConfig::from_text(&text, &Default::default())
            .expect("agent config");
        let socket = config.socket_path.clone();
        let stop = spire_task::Shutdown::new();
        let clock: spire_time::SharedClock = Arc::new(spire_time::SystemClock);
        let task = tokio::spawn(spire_agent_app::run(config, clock, stop.clone()));
        let deadline = Instant::now() + Duration::from_secs(60);
        // The socket appears without a notification: poll.
        while !socket.exists() {
            assert!(!task.is_finished(), "the agent stopped during start");
            assert!(Instant::now() < deadline, "the agent's socket after 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            stop,
            task,
            socket,
            _dir: dir,
        }
    }

    /// Stops the agent and waits for it.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.task.await;
    }
}

// === the workload in a pod ===

/// How often a workload asks again while it has no identity (Envoy and go-spiffe clients
/// retry too; this bounds the resolution of the pod → SVID figure).
pub const RETRY: Duration = Duration::from_millis(10);

/// The `workload` role: prints `ready`, waits for `go` on stdin, then asks the agent for an
/// X509-SVID (FetchX509SVID, first message) until it gets one, and prints
/// `ok <SPIFFE ID> <attempts>` (or `err <why>` after 60 s).
pub fn workload_main() {
    let socket = PathBuf::from(std::env::var_os(SOCKET_ENV).expect("the agent socket"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        use tokio::io::AsyncBufReadExt as _;
        println!("ready");
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        if lines.next_line().await.ok().flatten().as_deref() != Some("go") {
            return;
        }
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut last_error = String::new();
        while started.elapsed() < Duration::from_secs(60) {
            attempts += 1;
            match fetch_svid(&socket).await {
                Ok(id) => {
                    println!("ok {id} {attempts}");
                    return;
                }
                Err(e) => last_error = e,
            }
            tokio::time::sleep(RETRY).await;
        }
        println!("err after {attempts} attempts: {last_error}");
    });
}

async fn fetch_svid(socket: &Path) -> Result<String, String> {
    use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
    let channel = crate::support::uds_channel(socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = SpiffeWorkloadApiClient::new(channel);
    let mut stream = client
        .fetch_x509svid(crate::support::x509_request())
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let message = stream
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .ok_or("the stream ended")?;
    message
        .svids
        .first()
        .map(|s| s.spiffe_id.clone())
        .ok_or_else(|| "no SVID in the message".to_owned())
}
