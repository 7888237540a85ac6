//! S19 and S20: the Kubernetes registration controller (`spire-controller`, manager mode with
//! Istio's ClusterSPIFFEID) at `SPIRE_BENCH_PODS` existing pods (default 1 000; 30 000 on
//! demand), on `ceil(pods / 110)` nodes.
//!
//! In this process: the test kube-apiserver (`spire-test-k8s`) holding the nodes, namespaces
//! and Istio-like pods (app container, `istio-proxy`, `istio-init`, Istio labels and
//! annotations, padded to ~`SPIRE_BENCH_POD_KB` KiB of JSON, default 8) and the
//! ClusterSPIFFEID of Istio's SPIRE sample; a real spire-server (`spire-integration-tests`,
//! SQLite); for S19 a test kubelet and a real agent for node 0. The controller is its own
//! process: this binary re-executed in the `controller` role, which runs what
//! `bin/spire-controller-manager`'s `main` runs, against the apiserver's kubeconfig and the
//! server's admin socket, so its CPU (`/proc/<pid>/stat`) and memory (`VmRSS`, `VmHWM`) are
//! its own. Writes to the server are read from the server's datastore (`change_events`, one
//! row per entry created, updated or deleted).
//!
//! **S20**, cold start: (1) the controller against an empty server, until the ClusterSPIFFEID
//! status says `entriesToSet = N` and the server holds N entries; stopped (SIGTERM). (2) The
//! status cleared, a fresh controller against the same cluster and server, until it writes
//! the status again: time, CPU, RSS, and every write it made (must be only the
//! supported-fields probe's create and delete, and the entries must be unchanged). (3) That
//! controller idle for `SPIRE_BENCH_IDLE_SECS` (default 21: two `gcInterval` re-lists): CPU
//! and writes (must be none).
//!
//! **S19**, pod → identity: with that controller running, `SPIRE_BENCH_NEW_PODS` (default 50)
//! new pods, one at a time, on node 0. Timed from the pod's store in the apiserver: its entry
//! committed in the server's datastore (polled every 2 ms), and, as root with a writable
//! cgroup v1 `pids` hierarchy, an X509-SVID served on the agent's Workload API to a process
//! placed in the pod's app-container cgroup (it asks every 10 ms while it has no identity).
//! The agent runs `k8s_psat` (TokenReview by the test apiserver), the `k8s` workload attestor
//! (test kubelet, SPIRE's default `poll_retry_interval` of 500 ms) and `unix`.
//!
//! Before S20, unless `SPIRE_BENCH_FLOOR=0`, the floor: the same paged pod list the
//! controller's informer makes, decoded in this process with no controller running.
//!
//! `cargo bench -p spire-benches --bench s19_s20_controller`
//! (`SPIRE_BENCH_PODS=30000` for the full size).
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod s19_s20_support;
mod s9_support;
mod support;

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use s9_support::Cgroups;
use s19_s20_support::{
    AGENT_TOKEN, Agent, BenchPod, CLUSTER, CSID_PATH, Change, ControllerProcess, Datastore,
    ISTIO_CLUSTER_SPIFFE_ID, KUBELET_TOKEN, Layout, ROLE_ENV, SOCKET_ENV, TRUST_DOMAIN,
    cpu_seconds, mib, spiffe_id,
};
use serde_json::Value;
use spire_integration_tests::{ServerBuilder, TestServer};
use spire_test_k8s::{
    PodBuilder, TestApiServer, TestKubelet, TestKubeletAuth, TestKubeletConfig, TokenReviewOutcome,
    node_json, token_review_user,
};
use support::{env_or, loadavg};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::time::Instant;

/// The longest any one wait of the bench lasts before it fails.
const PATIENCE: Duration = Duration::from_secs(1800);

fn main() -> ExitCode {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("controller") => return s19_s20_support::controller_main(),
        Ok("workload") => {
            s19_s20_support::workload_main();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let settings = Settings {
        layout: Layout::new(
            env_or("SPIRE_BENCH_PODS", 1000),
            env_or("SPIRE_BENCH_POD_KB", 8),
        ),
        new_pods: env_or("SPIRE_BENCH_NEW_PODS", 50),
        idle: Duration::from_secs(env_or("SPIRE_BENCH_IDLE_SECS", 21)),
        floor: env_or("SPIRE_BENCH_FLOOR", 1) != 0,
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Two workers, as the machine: the apiserver, the server and the agent share them with
    // the controller's process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&settings));
    ExitCode::SUCCESS
}

#[derive(Debug)]
struct Settings {
    layout: Layout,
    new_pods: usize,
    idle: Duration,
    /// Whether to time the apiserver's pod list alone first.
    floor: bool,
}

/// Everything in this process.
struct Cluster {
    api: TestApiServer,
    kubeconfig: std::path::PathBuf,
    server: TestServer,
    datastore: Datastore,
    /// Node 0's pods, as its kubelet lists them.
    node0_pods: Vec<Value>,
    dir: tempfile::TempDir,
}

async fn run(settings: &Settings) {
    let layout = &settings.layout;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimized"
    };
    println!(
        "s19_s20: {} pods on {} nodes in {} namespaces, ~{} KiB per pod; {profile} build; {} cores, \
         load average {}",
        layout.pods,
        layout.nodes,
        layout.namespaces,
        layout.pod_bytes / 1024,
        std::thread::available_parallelism().map_or(0, usize::from),
        loadavg()
    );
    let cluster = setup(layout).await;
    if settings.floor {
        floor_list(&cluster, layout).await;
    }
    let controller = s20(&cluster, settings).await;
    s19(&cluster, settings, &controller).await;
    controller.stop().await;
    cluster.server.stop().await.unwrap();
    println!("s19_s20: done, load average {}", loadavg());
}

/// The apiserver with every object, and the server.
async fn setup(layout: &Layout) -> Cluster {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let api = TestApiServer::start().await;
    let kubeconfig = api.kubeconfig(dir.path());
    api.register_spire_crds();
    for namespace in ["default", "kube-system", "kube-public", "spire"] {
        api.put_namespace(namespace, &[]);
    }
    for namespace in layout.namespace_names() {
        api.put_namespace(&namespace, &[]);
    }
    for n in 0..layout.nodes {
        let name = Layout::node_name(n);
        api.put_node(node_json(
            &name,
            &Layout::node_uid(n),
            &[("kubernetes.io/hostname", &name)],
        ));
    }
    let mut node0_pods = Vec::new();
    let mut bytes = 0;
    for i in 0..layout.pods {
        let spec = layout.pod(i);
        let pod = spec.json(layout.pod_bytes);
        if i == 0 {
            bytes = serde_json::to_vec(&pod).unwrap().len();
        }
        if layout.pod_node(i) == 0 {
            node0_pods.push(pod.clone());
        }
        api.put_pod(pod);
    }
    // Node 0's agent pod, and the TokenReview of its projected token.
    let agent_pod = "spire-agent-x7k2p";
    let agent_pod_uid = uuid::Uuid::new_v4().to_string();
    let node0 = Layout::node_name(0);
    api.put_pod(
        PodBuilder::new(agent_pod, "spire", &agent_pod_uid)
            .node(&node0)
            .service_account("spire-agent")
            .label("app", "spire-agent")
            .build(),
    );
    api.set_token_review(
        AGENT_TOKEN,
        TokenReviewOutcome::authenticated(token_review_user(
            "spire",
            "spire-agent",
            agent_pod,
            &agent_pod_uid,
            &node0,
            &Layout::node_uid(0),
        )),
    );
    api.apply_manifest(ISTIO_CLUSTER_SPIFFE_ID).unwrap();
    println!(
        "s19_s20/setup: {} pods stored ({bytes} B of JSON each) in {:.1?}; node 0 has {} of them",
        layout.pods,
        started.elapsed(),
        node0_pods.len()
    );

    let server = ServerBuilder::new()
        .trust_domain(TRUST_DOMAIN)
        .plugins_extra(&format!(
            r#"NodeAttestor "k8s_psat" {{
        plugin_data {{
            clusters = {{
                "{CLUSTER}" = {{
                    service_account_allow_list = ["spire:spire-agent"]
                    kube_config_file = "{}"
                }}
            }}
        }}
    }}"#,
            kubeconfig.display()
        ))
        .start()
        .await
        .unwrap();
    let datastore = Datastore::open(&server.dir().path().join("datastore.sqlite3")).await;
    Cluster {
        api,
        kubeconfig,
        server,
        datastore,
        node0_pods,
        dir,
    }
}

/// What listing every pod costs here, before any controller runs: a paged list (500 per
/// page, as kube-rs's watcher asks) decoded into `Pod`s in this process. The controller's own
/// list can be no faster.
async fn floor_list(cluster: &Cluster, layout: &Layout) {
    let client = spire_controller::runtime::kube_client(Some(&cluster.kubeconfig))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::all(client);
    let started = Instant::now();
    let mut params = ListParams::default().limit(500);
    let (mut items, mut pages) = (0, 0);
    loop {
        let list = pods.list(&params).await.unwrap();
        items += list.items.len();
        pages += 1;
        match list.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let paged = started.elapsed();
    assert_eq!(items, layout.pods + 1, "every pod listed");
    println!(
        "s19_s20/floor: paged list of {items} pods ({pages} pages of 500) + decode in this process: \
         {paged:.2?}"
    );
}

/// S20: returns the controller of the restart, still running.
async fn s20(cluster: &Cluster, settings: &Settings) -> ControllerProcess {
    let n = settings.layout.pods;
    let ds = &cluster.datastore;
    let socket = cluster.server.socket_path();

    // (1) From an empty server.
    let revision = ds.revision().await;
    let bench_cpu = cpu_seconds(std::process::id());
    cluster.api.clear_requests();
    let mut first = ControllerProcess::spawn(cluster.dir.path(), 1, &cluster.kubeconfig, socket);
    let listed = wait_status(cluster, &mut first, n).await;
    let wall = first.started.elapsed();
    let listed = listed.map_or("?".to_owned(), |at| {
        let listed = at - first.started;
        format!(
            "{listed:.2?} (pods listed) + {:.2?}",
            wall.saturating_sub(listed)
        )
    });
    let cpu = first.cpu();
    let (rss, hwm) = first.memory();
    let bench_cpu = cpu_seconds(std::process::id()) - bench_cpu;
    let entries = ds.entry_count().await;
    let changes = ds.changes_since(revision).await;
    let creates = changes.iter().filter(|c| c.op == "created").count();
    println!(
        "s20/initial: empty server → status entriesToSet={n} in {wall:.2?} = {listed}; controller CPU \
         {cpu:.2} s, VmRSS {}, VmHWM {}; server entries {entries}, {} changes ({creates} creates); \
         bench process (apiserver + server) CPU {bench_cpu:.2} s",
        mib(rss),
        mib(hwm),
        changes.len()
    );
    assert_eq!(entries, i64::try_from(n).unwrap(), "one entry per pod");
    first.stop().await;

    // (2) A fresh start with nothing changed.
    let mut object = cluster.api.get_object(CSID_PATH).unwrap();
    object.as_object_mut().unwrap().remove("status");
    cluster.api.put_object(CSID_PATH, object);
    let entries_before = ds.entry_revisions().await;
    let revision = ds.revision().await;
    let bench_cpu = cpu_seconds(std::process::id());
    cluster.api.clear_requests();
    let mut second = ControllerProcess::spawn(cluster.dir.path(), 2, &cluster.kubeconfig, socket);
    println!("s20/restart: controller pid {}", second.pid());
    let listed = wait_status(cluster, &mut second, n).await;
    let wall = second.started.elapsed();
    let listed = listed.map_or("?".to_owned(), |at| {
        let listed = at - second.started;
        format!(
            "{listed:.2?} (pods listed) + {:.2?}",
            wall.saturating_sub(listed)
        )
    });
    let cpu = second.cpu();
    let (rss, hwm) = second.memory();
    let bench_cpu = cpu_seconds(std::process::id()) - bench_cpu;
    let changes = ds.changes_since(revision).await;
    let probe = probe_changes(&changes);
    println!(
        "s20/restart: fresh controller → status entriesToSet={n} in {wall:.2?} = {listed}; controller CPU \
         {cpu:.2} s, VmRSS {}, VmHWM {}; server writes: {} ({probe} of them the supported-fields \
         probe's create + delete); bench process (apiserver + server) CPU {bench_cpu:.2} s",
        mib(rss),
        mib(hwm),
        changes.len()
    );
    assert_eq!(
        changes.len(),
        probe,
        "a restart with nothing changed wrote to the server: {changes:?}"
    );
    let entries_after = ds.entry_revisions().await;
    assert_eq!(
        entries_before, entries_after,
        "entries changed (IDs or revisions) across the restart"
    );

    // (3) Idle.
    let revision = ds.revision().await;
    let cpu0 = second.cpu();
    let started = Instant::now();
    tokio::time::sleep(settings.idle).await;
    second.assert_running();
    let secs = started.elapsed().as_secs_f64();
    let cpu = second.cpu() - cpu0;
    let (rss, hwm) = second.memory();
    let changes = ds.changes_since(revision).await;
    println!(
        "s20/idle: {secs:.1} s after converging: controller CPU {cpu:.2} s = {:.1} mCPU, VmRSS {}, \
         VmHWM {}; server writes {}",
        cpu / secs * 1000.0,
        mib(rss),
        mib(hwm),
        changes.len()
    );
    assert!(changes.is_empty(), "an idle controller wrote: {changes:?}");
    second
}

/// Waits until the ClusterSPIFFEID's status says `entriesToSet = n`; returns when the
/// controller's pod list had completed, i.e. when its first pod watch reached the apiserver
/// (kube-rs's watcher watches right after the last page). Call with the request log cleared
/// at the controller's start.
async fn wait_status(
    cluster: &Cluster,
    controller: &mut ControllerProcess,
    n: usize,
) -> Option<Instant> {
    let wanted = u64::try_from(n).unwrap();
    let wait = cluster.api.wait_for(CSID_PATH, move |o| {
        o["status"]["stats"]["entriesToSet"].as_u64() == Some(wanted)
    });
    tokio::pin!(wait);
    let deadline = Instant::now() + PATIENCE;
    let mut listed = None;
    loop {
        tokio::select! {
            _ = &mut wait => return listed,
            // The request log and the process have no notification: look every 20 ms.
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                controller.assert_running();
                assert!(Instant::now() < deadline, "no status after {PATIENCE:?}:\n{}", controller.log());
                if listed.is_none()
                    && cluster
                        .api
                        .requests_to("/api/v1/pods")
                        .iter()
                        .any(|r| r.path.contains("watch=true") || r.path.contains("watch=1"))
                {
                    listed = Some(Instant::now());
                }
            }
        }
    }
}

/// How many of `changes` are the supported-fields probe: one entry created and deleted.
fn probe_changes(changes: &[Change]) -> usize {
    let created: Vec<&str> = changes
        .iter()
        .filter(|c| c.aggregate == "registration_entry" && c.op == "created")
        .map(|c| c.key.as_str())
        .collect();
    let mut probe = 0;
    for key in created {
        let deleted = changes.iter().any(|c| c.key == key && c.op == "deleted");
        if deleted {
            probe += 2;
        }
    }
    probe
}

/// S19 with `controller` running.
async fn s19(cluster: &Cluster, settings: &Settings, controller: &ControllerProcess) {
    let kubelet = TestKubelet::start(TestKubeletConfig::new(
        &Layout::node_name(0),
        TestKubeletAuth::Bearer(KUBELET_TOKEN.into()),
    ))
    .await;
    let mut node0_pods = cluster.node0_pods.clone();
    kubelet.set_pods(node0_pods.clone());
    let cgroups_unusable = Cgroups::unusable();
    let agent = match &cgroups_unusable {
        None => {
            let bundle = cluster.server.bundle_pem().await.unwrap();
            Some(Agent::start(cluster.server.port(), &bundle, kubelet.port()).await)
        }
        Some(reason) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "s19: the agent leg cannot run under CI=true: {reason}"
            );
            println!(
                "s19: SKIPPED the agent leg: {reason} (needs root and {}); timing pod → entry only",
                s9_support::HIERARCHY
            );
            None
        }
    };
    let mut cgroups = Cgroups::default();
    let mut to_entry = Vec::new();
    let mut to_svid = Vec::new();
    let mut attempts = Vec::new();
    let mut puts = Vec::new();
    let mut entry_to_svid = Vec::new();
    let cpu0 = controller.cpu();
    let started = Instant::now();
    for k in 0..settings.new_pods {
        let pod = settings.layout.new_pod(k);
        let json = pod.json(settings.layout.pod_bytes);
        let workload = match &agent {
            Some(agent) => Some(Workload::spawn(&agent.socket, &pod, &mut cgroups).await),
            None => None,
        };
        tokio::time::sleep(support::random_delay(Duration::from_millis(200))).await;

        node0_pods.push(json.clone());
        kubelet.set_pods(node0_pods.clone());
        let t0 = Instant::now();
        cluster.api.put_pod(json);
        puts.push(t0.elapsed());
        let entry = async {
            // Polled: the datastore has no notification for a reader beside the server.
            while !cluster.datastore.has_pod_entry(&pod.uid).await {
                assert!(
                    t0.elapsed() < Duration::from_secs(120),
                    "no entry for pod {k} after 120 s:\n{}",
                    controller.log()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            t0.elapsed()
        };
        let svid = async {
            match workload {
                Some(workload) => Some(workload.go(&pod).await.map(|(at, n)| (at - t0, n))),
                None => None,
            }
        };
        let (entry, svid) = tokio::join!(entry, svid);
        to_entry.push(entry);
        if let Some(result) = svid {
            let (at, n) = result.unwrap_or_else(|e| panic!("pod {k}: {e}"));
            to_svid.push(at);
            entry_to_svid.push(at.saturating_sub(entry));
            attempts.push(n);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = controller.cpu() - cpu0;
    let n = settings.new_pods;
    println!(
        "s19/pod→entry: {} (of which the test apiserver's store of the pod: {})",
        support::summarize(to_entry),
        support::summarize(puts)
    );
    if !to_svid.is_empty() {
        attempts.sort_unstable();
        println!(
            "s19/pod→SVID in the pod: {}; attempts per pod p50 {} max {}",
            support::summarize(to_svid),
            attempts[attempts.len() / 2],
            attempts[attempts.len() - 1]
        );
        println!(
            "s19/entry committed→SVID in the pod (0 when the SVID came first, within the 2 ms poll): {}",
            support::summarize(entry_to_svid)
        );
    }
    println!(
        "s19: {n} pods in {secs:.1} s at {} existing; controller CPU {cpu:.2} s = {:.1} ms per new pod; \
         kubelet GETs {}",
        settings.layout.pods,
        cpu / n as f64 * 1000.0,
        kubelet.request_count()
    );
    drop(cgroups);
    if let Some(agent) = agent {
        agent.stop().await;
    }
}

/// A process waiting to be told `go` inside a pod's app-container cgroup.
struct Workload {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Workload {
    async fn spawn(socket: &Path, pod: &BenchPod, cgroups: &mut Cgroups) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .env(ROLE_ENV, "workload")
            .env(SOCKET_ENV, socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next_line().await.unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));
        cgroups.enter(&pod.cgroup(), child.id().unwrap()).unwrap();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Tells it to ask for its SVID; when the answer arrived, and how many attempts it took.
    async fn go(mut self, pod: &BenchPod) -> Result<(Instant, u32), String> {
        self.stdin.write_all(b"go\n").await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.next_line())
            .await
            .map_err(|_| "no answer from the workload after 90 s".to_owned())?
            .unwrap()
            .unwrap_or_default();
        let at = Instant::now();
        let _ = self.child.wait().await;
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("ok"), Some(id), Some(n)) if id == spiffe_id(pod) => Ok((at, n.parse().unwrap())),
            _ => Err(format!(
                "workload answered {line:?}, wanted {}",
                spiffe_id(pod)
            )),
        }
    }
}
