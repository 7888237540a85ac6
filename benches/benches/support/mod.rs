//! A process-level trust domain for the end-to-end benchmarks: the real `spire-server` and
//! `spire-agent` binaries in a temp dir (SQLite datastore, memory key managers, join token,
//! unix workload attestor), driven over their Unix sockets with the gRPC clients of
//! `spire-proto`. Readiness is polled with each binary's `healthcheck`.
#![allow(dead_code, unreachable_pub)] // each bench uses part of it

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};
use spire_proto::workload::X509svidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// The trust domain every bench uses.
pub const TRUST_DOMAIN: &str = "example.org";
/// Entries per BatchCreateEntry call (SPIRE's batch limit).
pub const BATCH: usize = 500;

/// The two binaries under test.
#[derive(Debug)]
pub struct Bins {
    pub server: PathBuf,
    pub agent: PathBuf,
    /// `release`, `debug`, or the directory given in `SPIRE_BENCH_BIN_DIR`.
    pub profile: String,
}

/// Finds the binaries: `$SPIRE_BENCH_BIN_DIR`, else `target/release`, else `target/debug`
/// (build them first: `cargo build --release -p spire-server -p spire-agent`).
pub fn bins() -> Bins {
    let candidates: Vec<(PathBuf, String)> = match std::env::var_os("SPIRE_BENCH_BIN_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let name = dir.display().to_string();
            vec![(dir, name)]
        }
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            ["release", "debug"]
                .into_iter()
                .map(|p| (target.join(p), p.to_owned()))
                .collect()
        }
    };
    for (dir, profile) in candidates {
        let server = dir.join("spire-server");
        let agent = dir.join("spire-agent");
        if server.is_file() && agent.is_file() {
            return Bins {
                server,
                agent,
                profile,
            };
        }
    }
    panic!(
        "spire-server/spire-agent binaries not found: run \
         `cargo build --release -p spire-server -p spire-agent` (or set SPIRE_BENCH_BIN_DIR)"
    );
}

/// How to start a trust domain.
#[derive(Clone, Debug)]
pub struct Options {
    /// false: the server runs with `experimental { disable_push = true }`, so the agent falls
    /// back to polling every `sync_interval` (5 s), as against a SPIRE server.
    pub push: bool,
    /// The server's `log_level`.
    pub server_log_level: &'static str,
    /// The agent's `x509_svid_cache_max_size`.
    pub svid_cache_max_size: usize,
    /// More plugin blocks for the agent (beside `WorkloadAttestor "unix"`), as HCL.
    pub agent_plugins: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            push: true,
            server_log_level: "WARN",
            svid_cache_max_size: 1000,
            agent_plugins: String::new(),
        }
    }
}

/// A running server and agent; both are killed (by PID) and reaped on drop.
#[derive(Debug)]
pub struct Domain {
    dir: tempfile::TempDir,
    server: Child,
    agent: Child,
    /// The server's admin socket.
    pub server_socket: PathBuf,
    /// The agent's Workload API socket.
    pub agent_socket: PathBuf,
    /// The agent's SPIFFE ID (`spiffe://example.org/spire/agent/join_token/<token>`).
    pub agent_id: String,
    /// The binaries in use.
    pub bins: Bins,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` every 50 ms (up to 60 s); panics with the log if `child` exits first.
fn wait_until(what: &str, child: &mut Child, log: &Path, mut ready: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited early ({status}):\n{log}");
        }
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} not ready after 60 s:\n{log}");
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// === impl Domain ===

impl Domain {
    /// Starts the server, waits until healthy, generates a join token, starts the agent with
    /// it and waits until the agent is healthy (attested, first sync done).
    pub fn start(options: &Options) -> Domain {
        let bins = bins();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let server_socket = root.join("server.sock");
        let agent_socket = root.join("agent.sock");
        let port = free_port();
        let experimental = if options.push {
            String::new()
        } else {
            "    experimental {\n        disable_push = true\n    }\n".to_owned()
        };
        let server_conf = format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "{TRUST_DOMAIN}"
    data_dir = "{root}/server"
    log_level = "{level}"
{experimental}}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{root}/server/datastore.sqlite3"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#,
            socket = server_socket.display(),
            root = root.display(),
            level = options.server_log_level,
        );
        std::fs::create_dir_all(root.join("server")).unwrap();
        std::fs::write(root.join("server.conf"), server_conf).unwrap();
        let server_log = root.join("server.log");
        let mut server = Command::new(&bins.server)
            .arg("run")
            .arg("-config")
            .arg(root.join("server.conf"))
            .arg("-logFile")
            .arg(&server_log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("spire-server", &mut server, &server_log, || {
            quiet(
                Command::new(&bins.server)
                    .args(["healthcheck", "-socketPath"])
                    .arg(&server_socket),
            )
        });

        let bundle = output(
            Command::new(&bins.server)
                .args(["bundle", "show", "-socketPath"])
                .arg(&server_socket),
        );
        std::fs::write(root.join("bootstrap.crt"), bundle).unwrap();
        let token_out = output(
            Command::new(&bins.server)
                .args(["token", "generate", "-socketPath"])
                .arg(&server_socket),
        );
        let token = token_out
            .lines()
            .find_map(|l| l.strip_prefix("Token: "))
            .unwrap()
            .trim()
            .to_owned();
        let agent_id = format!("spiffe://{TRUST_DOMAIN}/spire/agent/join_token/{token}");

        let agent_conf = format!(
            r#"agent {{
    data_dir = "{root}/agent"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "{TRUST_DOMAIN}"
    trust_bundle_path = "{root}/bootstrap.crt"
    x509_svid_cache_max_size = {max}
}}

plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
{extra}
}}
"#,
            root = root.display(),
            socket = agent_socket.display(),
            max = options.svid_cache_max_size,
            extra = options.agent_plugins,
        );
        std::fs::create_dir_all(root.join("agent")).unwrap();
        std::fs::write(root.join("agent.conf"), agent_conf).unwrap();
        let agent_log = root.join("agent.log");
        let mut agent = Command::new(&bins.agent)
            .arg("run")
            .arg("-config")
            .arg(root.join("agent.conf"))
            .arg("-joinToken")
            .arg(&token)
            .arg("-logFile")
            .arg(&agent_log)
            // No node name: a k8s attestor reaches the kubelet on 127.0.0.1.
            .env_remove("MY_NODE_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("spire-agent", &mut agent, &agent_log, || {
            quiet(
                Command::new(&bins.agent)
                    .args(["healthcheck", "-socketPath"])
                    .arg(&agent_socket),
            )
        });
        Domain {
            dir,
            server,
            agent,
            server_socket,
            agent_socket,
            agent_id,
            bins,
        }
    }

    /// The agent's PID.
    pub fn agent_pid(&self) -> u32 {
        self.agent.id()
    }

    /// The server's PID.
    pub fn server_pid(&self) -> u32 {
        self.server.id()
    }

    /// The server's log file.
    pub fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// An Entry API client on the admin socket.
    pub async fn admin(&self) -> EntryClient<Channel> {
        EntryClient::new(uds_channel(&self.server_socket).await.unwrap())
    }

    /// A Workload API client on a new connection to the agent.
    pub async fn workload(&self) -> SpiffeWorkloadApiClient<Channel> {
        SpiffeWorkloadApiClient::new(uds_channel(&self.agent_socket).await.unwrap())
            .max_decoding_message_size(256 << 20)
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        for child in [&mut self.agent, &mut self.server] {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// A gRPC channel over the Unix socket at `path`.
pub async fn uds_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// A FetchX509SVID request with the Workload API security header.
pub fn x509_request() -> tonic::Request<X509svidRequest> {
    let mut request = tonic::Request::new(X509svidRequest {});
    request.metadata_mut().insert(
        "workload.spiffe.io",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

/// This process's uid (what the unix attestor reports as `unix:uid`).
pub fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A registration entry for `spiffe://example.org<path>` under `parent`.
pub fn entry(parent: &str, path: &str, selectors: &[(&str, &str)], dns: Option<&str>) -> Entry {
    let parent_path = parent
        .strip_prefix(&format!("spiffe://{TRUST_DOMAIN}"))
        .unwrap();
    Entry {
        spiffe_id: Some(Spiffeid {
            trust_domain: TRUST_DOMAIN.into(),
            path: path.into(),
        }),
        parent_id: Some(Spiffeid {
            trust_domain: TRUST_DOMAIN.into(),
            path: parent_path.into(),
        }),
        selectors: selectors
            .iter()
            .map(|(t, v)| Selector {
                r#type: (*t).into(),
                value: (*v).into(),
            })
            .collect(),
        dns_names: dns.into_iter().map(str::to_owned).collect(),
        ..Entry::default()
    }
}

/// Creates `entries` in batches of [`BATCH`]; panics unless every item succeeds.
pub async fn create_entries(client: &mut EntryClient<Channel>, entries: Vec<Entry>) {
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let batch: Vec<Entry> = entries.by_ref().take(BATCH).collect();
        let results = client
            .batch_create_entry(BatchCreateEntryRequest {
                entries: batch,
                output_mask: None,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        for r in results {
            let status = r.status.unwrap_or_default();
            assert_eq!(status.code, 0, "entry create failed: {}", status.message);
        }
    }
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A uniformly random duration in `[0, max)`.
pub fn random_delay(max: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(unit)
}

/// p50/p99/p99.9/max of a sample, for the BENCHMARKS.md tables.
#[derive(Debug)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub mean: Duration,
}

/// Summarises `samples` (nearest-rank percentiles).
pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    assert!(!samples.is_empty());
    samples.sort();
    let n = samples.len();
    let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let total: Duration = samples.iter().sum();
    Summary {
        n,
        p50: rank(0.50),
        p99: rank(0.99),
        p999: rank(0.999),
        max: samples[n - 1],
        mean: total / n as u32,
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:?} p99={:?} p99.9={:?} max={:?} mean={:?}",
            self.n, self.p50, self.p99, self.p999, self.max, self.mean
        )
    }
}

/// The environment variable `name` parsed, or `default` when unset.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}"))
        })
        .unwrap_or(default)
}

/// The 1, 5 and 15 minute load averages, for the figures' context.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
