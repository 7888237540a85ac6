//! Process-level harness for `sds_istio.rs` (and the pieces `k8s_seed.rs` shares): the real
//! `spire-server` and `spire-agent` in a private temporary directory with the stock configs
//! (free port, private sockets), the CLIs, bounded waits, and certificate checks. Every
//! process is killed when its [`Processes`] drops, on every path (a failed assertion
//! included); its logs are printed when the test failed.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::fs;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use spire_time::{Clock as _, SystemClock};
use tonic::transport::Channel;

/// The `spire-agent` binary under test.
pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_spire-agent");
/// The agent's SPIFFE ID (its join token's).
pub const PARENT: &str = "spiffe://example.org/myagent";
/// The seed's federation `sds` block.
pub const FEDERATION_SDS: &str = r#"    sds {
        default_svid_name = "default"
        default_bundle_name = "null"
        default_all_bundles_name = "ROOTCA"
    }
"#;
/// Bound on starting a process or waiting for it to be ready.
const START: Duration = Duration::from_secs(60);

/// `spire-server` in the same target directory (and profile) as `spire-agent`.
fn server_bin() -> PathBuf {
    Path::new(AGENT_BIN).with_file_name(format!("spire-server{}", std::env::consts::EXE_SUFFIX))
}

/// `spiffe-csi-driver` in the same target directory (and profile) as `spire-agent`; fails
/// with how to build it when it is missing.
pub fn require_csi_driver_bin() -> PathBuf {
    let driver = Path::new(AGENT_BIN)
        .with_file_name(format!("spiffe-csi-driver{}", std::env::consts::EXE_SUFFIX));
    assert!(
        driver.is_file(),
        "{} is missing: `cargo test --workspace` builds it before running tests; \
         with `cargo test -p spire-agent` run `cargo build -p spiffe-csi-driver` first",
        driver.display()
    );
    driver
}

/// `k8s-workload-registrar` in the same target directory (and profile) as `spire-agent`.
fn registrar_bin() -> PathBuf {
    Path::new(AGENT_BIN).with_file_name(format!(
        "k8s-workload-registrar{}",
        std::env::consts::EXE_SUFFIX
    ))
}

fn tool_available(name: &str, arg: &str) -> bool {
    Command::new(name)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The stock configs directory, or `None` (skipped, a failure under CI) when something the
/// test needs is missing.
pub fn prerequisites() -> Option<PathBuf> {
    let conf = spire_test::shared_testdata("spire-conf")?;
    if !tool_available("openssl", "version") {
        spire_test::skip("openssl is not installed");
        return None;
    }
    require_server_bin();
    Some(conf)
}

/// `spire-server` next to `spire-agent`; fails with how to build it when it is missing.
pub fn require_server_bin() -> PathBuf {
    let server = server_bin();
    assert!(
        server.is_file(),
        "{} is missing: `cargo test --workspace` builds it before running tests; \
         with `cargo test -p spire-agent` run `cargo build -p spire-server` first",
        server.display()
    );
    server
}

/// `k8s-workload-registrar` next to `spire-agent`; fails with how to build it when it is
/// missing.
pub fn require_registrar_bin() -> PathBuf {
    let registrar = registrar_bin();
    assert!(
        registrar.is_file(),
        "{} is missing: `cargo test --workspace` builds it before running tests; \
         with `cargo test -p spire-agent` run `cargo build -p k8s-workload-registrar` first",
        registrar.display()
    );
    registrar
}

/// The effective uid of this process (what the unix attestor reports).
pub fn my_uid() -> String {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        .unwrap()
}

/// A TCP port nobody listens on now: random below the kernel's ephemeral range (so no
/// outgoing connection takes it before the server binds it), probed by binding it.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, RandomState};
    let low: u16 = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    assert!(low > 11_000, "ephemeral port range starts too low ({low})");
    let random = RandomState::new();
    (0u32..1000)
        .map(|i| 10_000 + u16::try_from(random.hash_one(i) % u64::from(low - 10_000)).unwrap())
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("no free TCP port found")
}

/// Runs `attempt` until it yields a value, every 200 ms; fails after `limit`.
pub async fn wait<T, F, Fut>(what: &str, limit: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let polling = async {
        loop {
            if let Some(value) = attempt().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(limit, polling)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// A fresh SDS client on the agent socket.
pub async fn sds_client(socket: &Path) -> SecretDiscoveryServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::try_from(format!("unix://{}", socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    SecretDiscoveryServiceClient::new(channel)
}

/// The DER certificates of a PEM text.
pub fn ders(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect()
}

/// The chain (leaf first, then intermediates) verifies under `roots_pem` for TLS client and
/// server use now, and the leaf's one URI SAN is `spiffe_id`.
pub fn assert_chain_verifies(chain_pem: &str, roots_pem: &str, spiffe_id: &str) {
    let chain: Vec<CertificateDer<'static>> = ders(chain_pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let roots: Vec<CertificateDer<'static>> = ders(roots_pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let anchors: Vec<TrustAnchor<'_>> = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).unwrap())
        .collect();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(SystemClock.unix_seconds()).unwrap(),
    ));
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            now,
            usage,
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("chain does not verify against the delivered roots: {e}"));
    }
    assert_eq!(sans(&chain[0]).uris, [spiffe_id]);
}

/// The subject alternative names of a certificate, in order.
#[derive(Debug, Default)]
pub struct Sans {
    /// URI names.
    pub uris: Vec<String>,
    /// DNS names.
    pub dns: Vec<String>,
}

/// The URI and DNS SANs of a DER certificate (none when it has no SAN extension).
pub fn sans(der: &[u8]) -> Sans {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let mut sans = Sans::default();
    if let Some(ext) = cert.subject_alternative_name().unwrap() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::URI(uri) => sans.uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => sans.dns.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    sans
}

/// A server and an agent (joined with a token as `PARENT`) in a private directory.
pub struct Cluster {
    // Declared before `dir`: the processes stop (and their logs are read) before it goes.
    procs: Processes,
    dir: tempfile::TempDir,
    server_socket: PathBuf,
    /// `<dir>/run/secrets/workload-spiffe-uds/socket`, created by the agent.
    pub agent_socket: PathBuf,
}

/// The child processes of one test, each writing to `<dir>/<name>.log`. Every process is
/// killed when this drops, on every path; when the test failed, each log's tail is printed.
pub struct Processes {
    dir: PathBuf,
    children: Vec<(&'static str, Child)>,
}

/// `spire-server <args>` run in `dir`; its stdout, or a failure with its output.
pub fn spire_server_cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(server_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "spire-server {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Waits until `spire-server healthcheck` on `socket` says the server is healthy, failing
/// at once if one of `procs` exited.
pub async fn wait_server_healthy(procs: &mut Processes, socket: &Path) {
    wait("spire-server healthcheck", START, || {
        procs.assert_running();
        let healthy = Command::new(server_bin())
            .args(["healthcheck", "-socketPath", path_str(socket)])
            .output()
            .is_ok_and(|o| o.stdout == b"Server is healthy.\n");
        std::future::ready(healthy.then_some(()))
    })
    .await;
}

/// Waits until the agent created its Workload API socket (what Istio's init container waits
/// for), failing at once if one of `procs` exited.
pub async fn wait_agent_socket(procs: &mut Processes, socket: &Path) {
    wait("the agent socket", START, || {
        procs.assert_running();
        std::future::ready(socket.exists().then_some(()))
    })
    .await;
}

// === impl Cluster ===

impl Cluster {
    /// Lays out the stock configs (the agent's `agent {}` block gets `sds_block` when given),
    /// starts the server, waits until it is healthy, starts the agent with a fresh join token
    /// and returns as soon as the agent's socket file exists.
    pub async fn start(conf: &Path, sds_block: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("spire-sds.")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path();
        let server_socket = root.join("s/server/api.sock");
        let agent_socket = root.join("run/secrets/workload-spiffe-uds/socket");
        let port = free_port().to_string();
        for (sub, files) in [
            (
                "server",
                &[
                    "server.conf",
                    "dummy_upstream_ca.crt",
                    "dummy_upstream_ca.key",
                ][..],
            ),
            ("agent", &["agent.conf", "dummy_root_ca.crt"][..]),
        ] {
            fs::create_dir_all(root.join("conf").join(sub)).unwrap();
            for file in files {
                fs::copy(conf.join(file), root.join("conf").join(sub).join(file)).unwrap();
            }
        }
        rewrite(
            &root.join("conf/server/server.conf"),
            &[
                ("bind_port", &port),
                ("socket_path", path_str(&server_socket)),
            ],
            None,
        );
        rewrite(
            &root.join("conf/agent/agent.conf"),
            &[
                ("server_port", &port),
                ("socket_path", path_str(&agent_socket)),
            ],
            sds_block,
        );
        // The agent must create the socket's parent directories itself.
        assert!(!agent_socket.parent().unwrap().exists());

        let mut cluster = Self {
            procs: Processes::new(root),
            dir,
            server_socket,
            agent_socket,
        };
        cluster.procs.spawn(
            "server",
            &server_bin(),
            &["run", "-config", "conf/server/server.conf"],
        );
        wait_server_healthy(&mut cluster.procs, &cluster.server_socket).await;
        let token = cluster.server_cli("token", "generate", &["-spiffeID".into(), PARENT.into()]);
        let token = token
            .trim()
            .strip_prefix("Token: ")
            .unwrap_or_else(|| panic!("unexpected token output: {token}"))
            .to_owned();
        cluster.procs.spawn(
            "agent",
            Path::new(AGENT_BIN),
            &[
                "run",
                "-config",
                "conf/agent/agent.conf",
                "-joinToken",
                &token,
            ],
        );
        // Istio's init container waits for the socket file (CHECK_FILE), then the proxy dials.
        wait_agent_socket(&mut cluster.procs, &cluster.agent_socket).await;
        cluster
    }

    /// The private working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `spire-server <command> <sub> -socketPath … <args>`; its stdout, or a failure.
    pub fn server_cli(&self, command: &str, sub: &str, args: &[String]) -> String {
        let mut all = vec![command, sub, "-socketPath", path_str(&self.server_socket)];
        all.extend(args.iter().map(String::as_str));
        spire_server_cli(self.dir(), &all)
    }

    /// `openssl <args>` in the working directory; its stdout, or a failure.
    pub fn openssl(&self, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

// === impl Processes ===

impl Processes {
    /// No processes yet; logs go to `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            children: Vec::new(),
        }
    }

    /// Starts `bin args` in the directory, stdout and stderr to `<dir>/<name>.log`, without
    /// the environment variables that would move its sockets or tell it it runs in a pod.
    pub fn spawn(&mut self, name: &'static str, bin: &Path, args: &[&str]) {
        self.spawn_with_env(name, bin, args, &[]);
    }

    /// [`spawn`](Self::spawn), with `envs` set (as a pod's `env` or downward API would).
    pub fn spawn_with_env(
        &mut self,
        name: &'static str,
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) {
        let log = fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(bin)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("SPIRE_SERVER_PRIVATE_SOCKET")
            .env_remove("SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE")
            .env_remove("SPIRE_AGENT_PUBLIC_SOCKET")
            .env_remove("SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("MY_NODE_NAME")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name, child));
    }

    /// The PID of the process started as `name`.
    pub fn pid(&self, name: &str) -> u32 {
        self.children
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no process {name}"))
            .1
            .id()
    }

    /// Stops the process started as `name` (as the kubelet does when its pod goes) and
    /// forgets it.
    pub fn stop(&mut self, name: &str) {
        let index = self
            .children
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let (_, mut child) = self.children.remove(index);
        let _ = child.kill();
        child.wait().unwrap();
    }

    /// Fails (with the logs, through `Drop`) if a process has exited.
    pub fn assert_running(&mut self) {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("spire-{name} exited early: {status}");
            }
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for (name, _) in &self.children {
                let log =
                    fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("===== spire-{name} log (last 60 lines)");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Rewrites `key = "…"` lines of a stock config (each key must be found) and inserts
/// `block` after the first line that opens a section.
fn rewrite(path: &Path, values: &[(&str, &str)], block: Option<&str>) {
    let text = fs::read_to_string(path).unwrap();
    let mut out = String::new();
    let mut hit = vec![false; values.len()];
    let mut block = block;
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if let Some(i) = values.iter().position(|(k, _)| *k == key) {
            out.push_str(&format!("    {key} = \"{}\"\n", values[i].1));
            hit[i] = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.trim_end().ends_with('{')
            && let Some(b) = block.take()
        {
            out.push_str(b);
        }
    }
    assert!(
        hit.iter().all(|h| *h),
        "{}: not every key rewritten",
        path.display()
    );
    fs::write(path, out).unwrap();
}
