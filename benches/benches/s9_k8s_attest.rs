//! S9: `k8s` workload attestation on a 100-pod node (docs/performance.md: p99 <2 ms from a
//! warm pod list; agent CPU <5 mCPU idle at 100 pods), in two parts.
//!
//! **In process** (`S9_PARTS` contains `inproc`): a real `sleep` process is moved into a real
//! cgroup `/sys/fs/cgroup/pids/kubepods/burstable/pod<uid>/<64 hex>` (cgroup v1; without root
//! or that hierarchy it falls back to a fake proc root and says so), and a test kubelet
//! (HTTPS, bearer token) serves 100 and 110 Istio-like pods of ~`S9_POD_KB` KiB each (default
//! 20: ~2 MB per list, as real kubelets send). Timed per call: `K8sAttestor::attest(pid)` with
//! a warm list (`poll_retry_interval = 1h`: every call a cache hit, checked), both attestors
//! as the agent runs them (`attest_all(unix, k8s)`), and a cache miss on every call
//! (`poll_retry_interval = 1ms`, 2 ms apart: locate + kubelet GET + parse + match, checked by
//! the request count). Beside them, the floors: a raw read of `/proc/<pid>/cgroup`, the
//! container locator alone, the `unix` attestor alone, the kubelet GET alone
//! (`KubeletSource::fetch_pods`, keep-alive; it includes the test kubelet encoding the list in
//! this process, shown as `kubelet_side_encode`) and the pod-list parse alone.
//!
//! **Process level** (`S9_PARTS` contains `process`; needs root and `/sys/fs/cgroup/pids`,
//! and the release binaries: `cargo build --release -p spire-server -p spire-agent`): the
//! real `spire-server` and `spire-agent` (join token; `WorkloadAttestor "k8s"` on the test
//! kubelet serving `S9_PODS` pods (default 100) through `kubelet_secure_port`,
//! `skip_kubelet_verification` and `token_path`, plus `"unix"`), one registration entry per
//! pod (`k8s:pod-uid:<uid>`). One workload process per pod (this binary re-executed) is moved
//! into its pod's app-container cgroup and holds one SDS `StreamSecrets` stream for
//! `default`, ACKed like Istio's proxies. Agent CPU is utime+stime from `/proc/<pid>/stat`
//! over windows:
//!
//! 1. `baseline`: entries registered and SVIDs cached, no workload connected (`S9_BASE_SECS`,
//!    default 10 s);
//! 2. `idle`: the pod processes' streams open, nothing else (`S9_IDLE_SECS`, default 20 s);
//! 3. `load_k8s`: plus `S9_RATE` (default 10) new attestations per second — a pod process,
//!    round-robin, opens a new connection and a new `default` stream and takes the first
//!    response (`S9_LOAD_SECS`, default 20 s);
//! 4. `load_unix` (the peer): the same rate from `S9_PEERS` (default 10) processes outside any
//!    pod cgroup (gid 4242, one `unix:gid` entry), for which the k8s attestor only reads the
//!    cgroup file: the same agent, the `unix` attestor alone.
//!
//! The kubelet request count and the agent's RSS are printed per window, and the latency of
//! the load's fetches (new connection → first response, measured in the workload process).
//! Every cgroup this bench makes is removed at the end, also after a panic.
//!
//! `cargo bench -p spire-benches --bench s9_k8s_attest`
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod s9_support;
mod sds_support;
mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use s9_support::{BenchPod, Cgroups, HIERARCHY, NODE};
use serde_json::{Value, json};
use spire_agent_plugin::workloadattestor::k8s::pods::PodList;
use spire_agent_plugin::workloadattestor::k8s::{
    K8sConfig, K8sOptions, KubeletSource, PodListSource, cgroup,
};
use spire_agent_plugin::workloadattestor::{
    K8sAttestor, UnixAttestor, UnixConfig, WorkloadAttestor, attest_all,
};
use spire_test_k8s::{TestKubelet, TestKubeletAuth, TestKubeletConfig};
use support::{Summary, env_or, loadavg};
use tokio::time::Instant;

/// Set in the environment of the workload processes this bench starts.
const CHILD_ENV: &str = "S9_CHILD";
const KUBELET_TOKEN: &str = "s9-kubelet-token";
/// The group of the `load_unix` peer processes.
const PEER_GID: u32 = 4242;

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        workload::main();
        return;
    }
    let parts = std::env::var("S9_PARTS").unwrap_or_else(|_| "inproc,process".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("s9: {cores} cores, load average {}", loadavg());
    if parts.contains("inproc") {
        // Two workers, as the agent's runtime on this 2-core machine.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(in_process::run());
    }
    if parts.contains("process") {
        // One worker (kubelet, pipes); the agent keeps at least one core.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(process::run());
    }
    println!("s9: done, load average {}", loadavg());
}

/// A child process killed and reaped on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test kubelet (bearer token) and a token file for it.
async fn kubelet() -> (TestKubelet, tempfile::TempDir, PathBuf) {
    let kubelet = TestKubelet::start(TestKubeletConfig::new(
        NODE,
        TestKubeletAuth::Bearer(KUBELET_TOKEN.into()),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, KUBELET_TOKEN).unwrap();
    (kubelet, dir, token)
}

mod in_process {
    use super::*;

    /// Times `n` calls of `f` after `n / 10` warm-up calls.
    async fn sample<F, Fut>(n: usize, mut f: F) -> Summary
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        for _ in 0..n / 10 {
            f().await;
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            f().await;
            samples.push(t0.elapsed());
        }
        support::summarize(samples)
    }

    fn config(port: u16, token: &Path, poll_retry_interval: &str) -> K8sConfig {
        K8sConfig::from_plugin_data(&json!({
            "kubelet_secure_port": port,
            "skip_kubelet_verification": true,
            "token_path": token.to_str().unwrap(),
            "poll_retry_interval": poll_retry_interval,
            "max_poll_attempts": 1,
        }))
        .unwrap()
    }

    fn attestor(config: K8sConfig, proc_root: &Path) -> K8sAttestor {
        K8sAttestor::new(
            config,
            K8sOptions {
                proc_root: proc_root.to_owned(),
                // No node name: the kubelet is called on 127.0.0.1.
                env: Arc::new(|_| None),
                ..K8sOptions::default()
            },
        )
        .unwrap()
    }

    fn row(name: &str, s: &Summary) {
        println!(
            "s9/inproc/{name:<34} n={:<6} p50={:>9.1?} p99={:>9.1?} p99.9={:>9.1?} max={:>9.1?}",
            s.n, s.p50, s.p99, s.p999, s.max
        );
    }

    pub(super) async fn run() {
        let iters: usize = env_or("S9_ITERS", 20_000);
        let miss_iters: usize = env_or("S9_MISS_ITERS", 200);
        let pod_kb: usize = env_or("S9_POD_KB", 20);
        let counts: Vec<usize> = std::env::var("S9_INPROC_PODS")
            .unwrap_or_else(|_| "100,110".to_owned())
            .split(',')
            .map(|n| n.trim().parse().unwrap())
            .collect();
        let max = counts.iter().copied().max().unwrap();
        let pods: Vec<BenchPod> = (0..max).map(BenchPod::new).collect();
        let pod_json: Vec<Value> = pods.iter().map(|p| p.json(pod_kb * 1024)).collect();
        let target = &pods[0];
        let (kubelet, _token_dir, token) = kubelet().await;

        // The attested process: `sleep` in pod 0's app-container cgroup. Dropped in reverse
        // order: the cgroups (process moved out, directories removed), then the process.
        let sleeper = Reaped(
            std::process::Command::new("sleep")
                .arg("3600")
                .spawn()
                .unwrap(),
        );
        let pid = sleeper.0.id();
        let mut cgroups = Cgroups::default();
        let fake_root;
        let proc_root = match Cgroups::unusable() {
            None => {
                cgroups.enter(&target.cgroup(), pid).unwrap();
                fake_root = None;
                println!(
                    "s9/inproc: process {pid} in the real cgroup {HIERARCHY}/{}",
                    target.cgroup()
                );
                PathBuf::from("/proc")
            }
            Some(reason) => {
                let dir = tempfile::tempdir().unwrap();
                let pid_dir = dir.path().join(pid.to_string());
                std::fs::create_dir_all(&pid_dir).unwrap();
                std::fs::write(
                    pid_dir.join("cgroup"),
                    format!("8:pids:/{}\n0::/\n", target.cgroup()),
                )
                .unwrap();
                println!(
                    "s9/inproc: FALLBACK to a fake proc root ({reason}): the cgroup file is a \
                     copy in {}, the unix attestor still reads /proc",
                    dir.path().display()
                );
                let root = dir.path().to_owned();
                fake_root = Some(dir);
                root
            }
        };
        let pid = i32::try_from(pid).unwrap();
        let location = cgroup::locate(&proc_root, pid, false).unwrap();
        assert_eq!(
            (location.pod_uid.as_str(), location.container_id.as_str()),
            (target.uid.as_str(), target.app_cid.as_str())
        );
        let cgroup_file = proc_root.join(pid.to_string()).join("cgroup");
        let unix: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::new(UnixConfig::default()));

        println!(
            "s9/inproc: {iters} timed calls per warm measure, {miss_iters} per miss / kubelet \
             measure; pods of ~{pod_kb} KiB"
        );
        let cgroup_file_ref = &cgroup_file;
        let proc_root_ref = &proc_root;
        row(
            "floor_read_proc_cgroup",
            &sample(iters, || async move {
                std::hint::black_box(std::fs::read(cgroup_file_ref).unwrap());
            })
            .await,
        );
        row(
            "floor_locate (cgroup parse)",
            &sample(iters, || async move {
                std::hint::black_box(cgroup::locate(proc_root_ref, pid, false).unwrap());
            })
            .await,
        );
        let unix_ref = &unix;
        row(
            "peer_unix_attest",
            &sample(iters, || async move {
                std::hint::black_box(unix_ref.attest(pid).await.unwrap());
            })
            .await,
        );

        for &n in &counts {
            kubelet.set_pods(pod_json[..n].to_vec());
            let port = kubelet.port();
            let defaults = K8sOptions::default();
            let source = KubeletSource::new(
                &config(port, &token, "1h"),
                None,
                defaults.kubelet_timeout,
                defaults.max_body_bytes,
            )
            .unwrap();
            let body = source.fetch_pods().await.unwrap();
            assert_eq!(PodList::parse(&body).unwrap().len(), n);
            println!(
                "s9/inproc/{n} pods: /pods body {:.2} MB ({:.1} KB per pod)",
                body.len() as f64 / 1e6,
                body.len() as f64 / 1e3 / n as f64
            );
            let source_ref = &source;
            row(
                &format!("{n}/floor_kubelet_get"),
                &sample(miss_iters, || async move {
                    std::hint::black_box(source_ref.fetch_pods().await.unwrap());
                })
                .await,
            );
            // The test kubelet's share of each GET: it encodes the pod list per request.
            let pods_ref = &pod_json[..n];
            row(
                &format!("{n}/kubelet_side_encode"),
                &sample(miss_iters, || async move {
                    std::hint::black_box(serde_json::to_vec(pods_ref).unwrap());
                })
                .await,
            );
            let body_ref = &body;
            row(
                &format!("{n}/floor_pod_list_parse"),
                &sample(miss_iters, || async move {
                    std::hint::black_box(PodList::parse(body_ref).unwrap());
                })
                .await,
            );

            // Warm: one fetch, then every call is served from the cached list.
            let warm = attestor(config(port, &token, "1h"), &proc_root);
            let selectors: Vec<String> = warm
                .attest(pid)
                .await
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect();
            let expected = format!("k8s:pod-uid:{}", target.uid);
            assert!(selectors.contains(&expected), "{selectors:?}");
            let fetched = warm.kubelet_requests();
            let warm_ref = &warm;
            row(
                &format!("{n}/k8s_attest_warm"),
                &sample(iters, || async move {
                    std::hint::black_box(warm_ref.attest(pid).await.unwrap());
                })
                .await,
            );
            assert_eq!(
                warm.kubelet_requests(),
                fetched,
                "warm calls hit the kubelet"
            );
            let both: Vec<Arc<dyn WorkloadAttestor>> =
                vec![Arc::clone(&unix), Arc::new(warm.clone())];
            let both_ref = &both;
            row(
                &format!("{n}/attest_all_unix_k8s_warm"),
                &sample(iters, || async move {
                    std::hint::black_box(attest_all(pid, both_ref).await.unwrap());
                })
                .await,
            );
            assert_eq!(
                warm.kubelet_requests(),
                fetched,
                "warm calls hit the kubelet"
            );

            // Miss: the list is stale at every call, so each one fetches and parses.
            let cold = attestor(config(port, &token, "1ms"), &proc_root);
            cold.attest(pid).await.unwrap();
            let mut samples = Vec::with_capacity(miss_iters);
            for _ in 0..miss_iters {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let before = cold.kubelet_requests();
                let t0 = Instant::now();
                std::hint::black_box(cold.attest(pid).await.unwrap());
                samples.push(t0.elapsed());
                assert_eq!(cold.kubelet_requests(), before + 1, "a miss fetches once");
            }
            row(
                &format!("{n}/k8s_attest_miss"),
                &support::summarize(samples),
            );
        }
        drop(cgroups);
        drop(fake_root);
        drop(sleeper);
    }
}

mod process {
    use std::process::Stdio;

    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    use tokio::process::{Child, ChildStdin, Command};
    use tokio::sync::mpsc;

    use super::*;
    use s9_support::K8sDomain;

    /// A workload process: this binary in [`workload`] mode, driven over its stdin.
    struct Workload {
        child: Child,
        stdin: ChildStdin,
    }

    /// What a workload process printed, by workload index (`eof` when it closed stdout).
    type Replies = mpsc::UnboundedReceiver<(usize, String)>;

    fn spawn_workload(
        index: usize,
        socket: &Path,
        hold: bool,
        gid: Option<u32>,
        replies: &mpsc::UnboundedSender<(usize, String)>,
    ) -> Workload {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(CHILD_ENV, "1")
            .env("S9_SOCKET", socket)
            .env("S9_HOLD", if hold { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(gid) = gid {
            command.gid(gid);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let replies = replies.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if replies.send((index, line)).is_err() {
                    return;
                }
            }
            let _ = replies.send((index, "eof".to_owned()));
        });
        Workload { child, stdin }
    }

    async fn send(workload: &mut Workload, line: &str) {
        workload
            .stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Waits until `count` workloads printed `ready`; panics on an error line or timeout.
    async fn wait_ready(replies: &mut Replies, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for _ in 0..count {
            let (index, line) = tokio::time::timeout_at(deadline, replies.recv())
                .await
                .expect("workloads not ready after 120 s")
                .unwrap();
            assert_eq!(line, "ready", "workload {index}");
        }
    }

    struct Window {
        secs: f64,
        agent_cpu: f64,
        kubelet_requests: usize,
        rss_kib: u64,
    }

    impl Window {
        fn mcpu(&self) -> f64 {
            self.agent_cpu / self.secs * 1000.0
        }
    }

    struct Meter<'a> {
        agent: u32,
        kubelet: &'a TestKubelet,
        cpu0: f64,
        requests0: usize,
        t0: Instant,
    }

    impl<'a> Meter<'a> {
        fn start(agent: u32, kubelet: &'a TestKubelet) -> Self {
            let cpu0 = sds_support::cpu_seconds(agent);
            Self {
                agent,
                kubelet,
                cpu0,
                requests0: kubelet.request_count(),
                t0: Instant::now(),
            }
        }

        fn stop(self) -> Window {
            let agent_cpu = sds_support::cpu_seconds(self.agent) - self.cpu0;
            Window {
                secs: self.t0.elapsed().as_secs_f64(),
                agent_cpu,
                kubelet_requests: self.kubelet.request_count() - self.requests0,
                rss_kib: support::rss_kib(self.agent),
            }
        }
    }

    /// `rate` fetches per second for `secs`, round-robin over `workloads`; the window closes
    /// `secs` after the first, then the stragglers' replies are collected.
    async fn load(
        workloads: &mut [Workload],
        replies: &mut Replies,
        agent: u32,
        kubelet: &TestKubelet,
        secs: u64,
        rate: u32,
    ) -> (Window, Summary, usize) {
        let total = usize::try_from(secs * u64::from(rate)).unwrap();
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut results = Results::default();
        let meter = Meter::start(agent, kubelet);
        let end = meter.t0 + Duration::from_secs(secs);
        for k in 0..total {
            ticks.tick().await;
            send(&mut workloads[k % workloads.len()], "fetch").await;
            while let Ok(reply) = replies.try_recv() {
                results.take(reply);
            }
        }
        tokio::time::sleep_until(end).await;
        let window = meter.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while results.count() < total {
            let reply = tokio::time::timeout_at(deadline, replies.recv())
                .await
                .expect("replies missing after 30 s")
                .unwrap();
            results.take(reply);
        }
        if let Some(error) = &results.first_error {
            println!(
                "s9/process: {} failed fetches, first: {error}",
                results.errors
            );
        }
        let errors = results.errors;
        (window, support::summarize(results.latencies), errors)
    }

    /// The replies to `fetch` lines.
    #[derive(Default)]
    struct Results {
        latencies: Vec<Duration>,
        errors: usize,
        first_error: Option<String>,
    }

    impl Results {
        fn take(&mut self, (index, line): (usize, String)) {
            if let Some(nanos) = line.strip_prefix("ok ") {
                self.latencies
                    .push(Duration::from_nanos(nanos.parse().unwrap()));
            } else {
                self.errors += 1;
                self.first_error
                    .get_or_insert(format!("workload {index}: {line}"));
            }
        }

        fn count(&self) -> usize {
            self.latencies.len() + self.errors
        }
    }

    fn window_row(name: &str, w: &Window, extra: &str) {
        println!(
            "s9/process/{name:<10} {:>5.1} s  agent CPU {:>6.2} core-s = {:>6.1} mCPU  kubelet \
             GETs {:>4}  agent VmRSS {:>5.1} MiB{extra}",
            w.secs,
            w.agent_cpu,
            w.mcpu(),
            w.kubelet_requests,
            w.rss_kib as f64 / 1024.0
        );
    }

    pub(super) async fn run() {
        if let Some(reason) = Cgroups::unusable() {
            println!("s9/process: SKIPPED: {reason} (needs root and {HIERARCHY})");
            return;
        }
        let n_pods: usize = env_or("S9_PODS", 100);
        let base_secs: u64 = env_or("S9_BASE_SECS", 10);
        let idle_secs: u64 = env_or("S9_IDLE_SECS", 20);
        let load_secs: u64 = env_or("S9_LOAD_SECS", 20);
        let rate: u32 = env_or("S9_RATE", 10);
        let n_peers: usize = env_or("S9_PEERS", 10);
        let pod_kb: usize = env_or("S9_POD_KB", 20);

        let (kubelet, _token_dir, _token) = kubelet().await;
        let pods: Vec<BenchPod> = (0..n_pods).map(BenchPod::new).collect();
        kubelet.set_pods(pods.iter().map(|p| p.json(pod_kb * 1024)).collect());
        let port = kubelet.port();
        let domain = tokio::task::spawn_blocking(move || K8sDomain::start(port, KUBELET_TOKEN))
            .await
            .unwrap();
        let agent = domain.agent_pid();
        println!(
            "s9/process: binaries {}, {n_pods} pods of ~{pod_kb} KiB, agent pid {agent}",
            domain.bins.profile
        );

        let mut entries: Vec<_> = pods
            .iter()
            .map(|p| {
                let uid = format!("pod-uid:{}", p.uid);
                let dns = format!("{}.{}.svc", p.app, s9_support::NAMESPACE);
                support::entry(
                    &domain.agent_id,
                    &p.spiffe_path(),
                    &[("k8s", uid.as_str())],
                    Some(dns.as_str()),
                )
            })
            .collect();
        let peer_gid = format!("gid:{PEER_GID}");
        entries.push(support::entry(
            &domain.agent_id,
            "/ns/bench/sa/unix-peer",
            &[("unix", peer_gid.as_str())],
            None,
        ));
        let mut admin = domain.admin().await;
        support::create_entries(&mut admin, entries).await;
        // The agent syncs and mints the pods' SVIDs; give it time before the baseline.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let meter = Meter::start(agent, &kubelet);
        tokio::time::sleep(Duration::from_secs(base_secs)).await;
        let baseline = meter.stop();
        window_row("baseline", &baseline, "  (SVIDs cached, no workload)");

        // Declared before the workloads so that it drops after them (workloads killed, then
        // moved out and their cgroups removed).
        let mut cgroups = Cgroups::default();
        let (tx, mut replies) = mpsc::unbounded_channel();
        let mut workloads = Vec::with_capacity(n_pods);
        let requests0 = kubelet.request_count();
        let t0 = Instant::now();
        for (i, pod) in pods.iter().enumerate() {
            let mut workload = spawn_workload(i, &domain.agent_socket, true, None, &tx);
            cgroups
                .enter(&pod.cgroup(), workload.child.id().unwrap())
                .unwrap();
            send(&mut workload, "go").await;
            workloads.push(workload);
        }
        wait_ready(&mut replies, n_pods).await;
        println!(
            "s9/process/startup    {n_pods} pod processes started, attested and holding a \
             `default` stream in {:.2?}; kubelet GETs {}",
            t0.elapsed(),
            kubelet.request_count() - requests0
        );
        tokio::time::sleep(Duration::from_secs(2)).await;

        let meter = Meter::start(agent, &kubelet);
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        let idle = meter.stop();
        window_row(
            "idle",
            &idle,
            &format!("  ({n_pods} streams open)  target <5 mCPU"),
        );

        let (load_k8s, k8s_latency, _) = load(
            &mut workloads,
            &mut replies,
            agent,
            &kubelet,
            load_secs,
            rate,
        )
        .await;
        window_row(
            "load_k8s",
            &load_k8s,
            &format!("  ({n_pods} streams + {rate} new pod attestations/s)"),
        );

        let mut peers = Vec::with_capacity(n_peers);
        for i in 0..n_peers {
            let mut peer =
                spawn_workload(n_pods + i, &domain.agent_socket, false, Some(PEER_GID), &tx);
            send(&mut peer, "go").await;
            peers.push(peer);
        }
        wait_ready(&mut replies, n_peers).await;
        // Until each peer got its identity once.
        for (i, peer) in peers.iter_mut().enumerate() {
            let started = Instant::now();
            loop {
                send(peer, "fetch").await;
                let (_, line) = replies.recv().await.unwrap();
                if line.starts_with("ok ") {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "peer {i}: {line}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let (load_unix, unix_latency, _) =
            load(&mut peers, &mut replies, agent, &kubelet, load_secs, rate).await;
        window_row(
            "load_unix",
            &load_unix,
            &format!("  ({n_pods} streams + {rate} new unix-only attestations/s, the peer)"),
        );
        println!(
            "s9/process/fetch_k8s   new connection + `default` stream → first response, pod \
             processes:   {k8s_latency}"
        );
        println!(
            "s9/process/fetch_unix  new connection + `default` stream → first response, unix \
             peer processes: {unix_latency}"
        );
        println!(
            "s9/process/summary     agent mCPU: baseline {:.1}, idle {:.1}, load_k8s {:.1} \
             (unix peer {:.1}; k8s extra {:.1} mCPU for {rate}/s = {:.0} µs CPU per \
             attestation, {:.1} ms per kubelet GET)",
            baseline.mcpu(),
            idle.mcpu(),
            load_k8s.mcpu(),
            load_unix.mcpu(),
            load_k8s.mcpu() - load_unix.mcpu(),
            (load_k8s.mcpu() - load_unix.mcpu()) / f64::from(rate) * 1000.0,
            (load_k8s.agent_cpu - load_unix.agent_cpu) * 1000.0
                / load_k8s.kubelet_requests.max(1) as f64,
        );

        // Orderly stop: stdin closed → each workload exits; then the cgroups go.
        for mut w in workloads.into_iter().chain(peers) {
            drop(w.stdin);
            if tokio::time::timeout(Duration::from_secs(5), w.child.wait())
                .await
                .is_err()
            {
                w.child.kill().await.ok();
            }
        }
        drop(cgroups);
        drop(domain);
    }
}

/// The workload processes: wait for `go` on stdin (by then the bench has moved this process
/// into its pod's cgroup), optionally open and hold a `default` SDS stream, print `ready`,
/// then answer each `fetch` line with `ok <nanoseconds>` (new connection + new `default`
/// stream → first response) or `err <message>`. Exits at EOF.
mod workload {
    use tokio::io::{AsyncBufReadExt as _, BufReader};

    use super::*;
    use sds_support::EnvoyStream;

    pub(super) fn main() {
        let socket = PathBuf::from(std::env::var_os("S9_SOCKET").unwrap());
        let hold = std::env::var("S9_HOLD").is_ok_and(|v| v == "1");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(&socket, hold));
    }

    async fn run(socket: &Path, hold: bool) {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        if lines.next_line().await.ok().flatten().as_deref() != Some("go") {
            return;
        }
        let _held = if hold {
            match hold_default(socket).await {
                Ok(task) => Some(task),
                Err(error) => {
                    println!("err {error}");
                    return;
                }
            }
        } else {
            None
        };
        println!("ready");
        while let Ok(Some(line)) = lines.next_line().await {
            if line != "fetch" {
                break;
            }
            let t0 = Instant::now();
            match fetch_default(socket).await {
                Ok(()) => println!("ok {}", t0.elapsed().as_nanos()),
                Err(error) => println!("err {error}"),
            }
        }
    }

    /// Opens the proxy's `default` stream, waits for its certificate and ACKs it; a task
    /// keeps ACKing later pushes, as Envoy does.
    async fn hold_default(socket: &Path) -> Result<tokio::task::JoinHandle<()>, String> {
        let started = Instant::now();
        let mut client = sds_support::sds_client(socket).await;
        loop {
            if let Ok(mut stream) =
                EnvoyStream::open(&mut client, sds_support::node(), &["default"]).await
                && let Ok(Ok(response)) =
                    tokio::time::timeout(Duration::from_secs(5), stream.next()).await
                && response.resources.len() == 1
            {
                stream.ack(&response).await;
                return Ok(tokio::spawn(async move {
                    while stream.next_acked().await.is_ok() {}
                }));
            }
            if started.elapsed() > Duration::from_secs(90) {
                return Err("no identity after 90 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn fetch_default(socket: &Path) -> Result<(), String> {
        let mut client = sds_support::sds_client(socket).await;
        let mut stream = EnvoyStream::open(&mut client, sds_support::node(), &["default"])
            .await
            .map_err(|s| s.to_string())?;
        let response = stream.next().await.map_err(|s| s.to_string())?;
        match response.resources.len() {
            1 => Ok(()),
            n => Err(format!("{n} resources")),
        }
    }
}
