//! Support for `k8s_seed.rs`: the seed's quickstart manifest read at test time, its HCL
//! configs edited only where paths and addresses must move, Kubernetes pods whose processes
//! are real (a cgroup v1 `pids` directory per container), the SDS client that runs inside
//! such a cgroup (a re-execution of the test binary on an ignored test), kubelet-style HTTP
//! probes, and SPIRE's `entry` output read back.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spire_test_k8s::PodBuilder;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Status;

use crate::envoy_client::{EnvoyStream, context, envoy_node, kinds, secrets, tls};
use crate::istio_support::{my_uid, sds_client, wait};

/// The cgroup v1 hierarchy the test's pods live in (`pids` leaves the machine's resource
/// accounting alone).
pub const HIERARCHY: &str = "/sys/fs/cgroup/pids";
/// The QoS class directory of the pods (the cgroupfs driver's layout).
const QOS: &str = "kubepods/burstable";

// ---------------------------------------------------------------------------------------
// The seed's manifest
// ---------------------------------------------------------------------------------------

/// What the test takes from the seed's `spire-quickstart.yaml`, as written there.
#[derive(Debug)]
pub struct Quickstart {
    /// `ConfigMap spire/spire-server`, key `server.conf`.
    pub server_conf: String,
    /// `ConfigMap spire/spire-agent`, key `agent.conf`.
    pub agent_conf: String,
    /// `ConfigMap spire/trust-bundle` (no data: `k8sbundle` fills it).
    pub trust_bundle: Value,
    /// `ConfigMap spire/k8s-workload-registrar`, key `k8s-workload-registrar.conf`.
    pub registrar_conf: String,
}

// === impl Quickstart ===

impl Quickstart {
    /// Reads `spire-quickstart.yaml` in `dir` (every document of it).
    pub fn load(dir: &Path) -> Self {
        let docs = spire_test::manifest_objects(&dir.join("spire-quickstart.yaml"));
        let conf = |name: &str, key: &str| spire_test::config_map_data(&docs, "spire", name, key);
        Self {
            server_conf: conf("spire-server", "server.conf"),
            agent_conf: conf("spire-agent", "agent.conf"),
            trust_bundle: docs
                .iter()
                .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "trust-bundle")
                .expect("the seed's ConfigMap spire/trust-bundle")
                .clone(),
            registrar_conf: conf("k8s-workload-registrar", "k8s-workload-registrar.conf"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// HCL edits
// ---------------------------------------------------------------------------------------

/// One change to a SPIRE config file: a key of a block, by the block's path of headers
/// (`plugins/DataStore "sql"/plugin_data`).
#[derive(Clone, Debug)]
pub struct Edit {
    block: &'static str,
    key: &'static str,
    value: String,
    /// `Some(why)`: the key is not in the file (its default must move) and is added, with
    /// `why` as a comment above it.
    added: Option<&'static str>,
}

// === impl Edit ===

impl Edit {
    /// Replaces the value of `key`, which the file sets in `block`.
    pub fn set(block: &'static str, key: &'static str, value: impl ToString) -> Self {
        Self {
            block,
            key,
            value: value.to_string(),
            added: None,
        }
    }

    /// Adds `key` to `block` (the file leaves it at its default), saying why.
    pub fn add(
        block: &'static str,
        key: &'static str,
        value: impl ToString,
        why: &'static str,
    ) -> Self {
        Self {
            block,
            key,
            value: value.to_string(),
            added: Some(why),
        }
    }
}

/// `text` with `edits` applied, each exactly once (a key to set must be in its block, a key
/// to add must not); every other line is kept as written. Values are written quoted, as the
/// seed writes its ports.
pub fn edit_config(text: &str, edits: &[Edit]) -> String {
    let mut path: Vec<String> = Vec::new();
    let mut applied = vec![0; edits.len()];
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let indent = &line[..line.len() - line.trim_start().len()];
        if trimmed.starts_with('}') {
            path.pop();
        } else if let Some(header) = trimmed.strip_suffix('{') {
            path.push(header.trim().trim_end_matches('=').trim().to_owned());
            out.push_str(line);
            out.push('\n');
            let here = path.join("/");
            for (i, edit) in edits.iter().enumerate() {
                if let (Some(why), true) = (edit.added, edit.block == here) {
                    out.push_str(&format!("{indent}  # {why}\n"));
                    out.push_str(&format!("{indent}  {} = \"{}\"\n", edit.key, edit.value));
                    applied[i] += 1;
                }
            }
            continue;
        } else if let Some((key, _)) = trimmed.split_once('=') {
            let here = path.join("/");
            let key = key.trim();
            if let Some(i) = edits.iter().position(|e| e.block == here && e.key == key) {
                assert!(
                    edits[i].added.is_none(),
                    "{here}: {key} is already set; it cannot be added"
                );
                out.push_str(&format!("{indent}{key} = \"{}\"\n", edits[i].value));
                applied[i] += 1;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    for (edit, n) in edits.iter().zip(applied) {
        assert_eq!(
            n, 1,
            "{}/{} applied {n} times:\n{text}",
            edit.block, edit.key
        );
    }
    out
}

/// `server.conf`'s changes for a test in `dir`: paths and ports; the apiserver's kubeconfig
/// where the seed relies on the in-cluster configuration of the server's pod. The server
/// socket becomes `<dir>/sockets/server.sock`.
pub fn seed_server_edits(dir: &Path, port: u16, health_port: u16, kubeconfig: &Path) -> Vec<Edit> {
    let data = dir.join("server-data");
    let in_cluster = "added by the test: the server's pod would use its in-cluster configuration";
    vec![
        Edit::set("server", "bind_port", port),
        Edit::set(
            "server",
            "socket_path",
            dir.join("sockets/server.sock").display(),
        ),
        Edit::set("server", "data_dir", data.display()),
        Edit::set(
            r#"plugins/DataStore "sql"/plugin_data"#,
            "connection_string",
            data.join("datastore.sqlite3").display(),
        ),
        Edit::add(
            r#"plugins/NodeAttestor "k8s_psat"/plugin_data/clusters/"demo-cluster""#,
            "kube_config_file",
            kubeconfig.display(),
            in_cluster,
        ),
        Edit::set(
            r#"plugins/KeyManager "disk"/plugin_data"#,
            "keys_path",
            data.join("keys.json").display(),
        ),
        Edit::add(
            r#"plugins/Notifier "k8sbundle"/plugin_data"#,
            "kube_config_file_path",
            kubeconfig.display(),
            in_cluster,
        ),
        Edit::set("health_checks", "bind_port", health_port),
    ]
}

/// `agent.conf`'s changes for a test in `dir`: paths and addresses; where the seed relies on
/// a default path of the agent's pod (the projected token, the service account token for the
/// kubelet, the kubelet's port 10250) the key is added. The Workload API socket becomes
/// `<dir>/run/secrets/workload-spiffe-uds/socket`, the bootstrap bundle
/// `<dir>/bundle/root-cert.pem`, the PSAT `<dir>/tokens/spire-agent` and the kubelet's token
/// `<dir>/serviceaccount/token`.
pub fn seed_agent_edits(
    dir: &Path,
    server_port: u16,
    health_port: u16,
    kubelet_port: u16,
) -> Vec<Edit> {
    vec![
        Edit::set("agent", "data_dir", dir.join("agent-data").display()),
        Edit::set("agent", "server_address", "127.0.0.1"),
        Edit::set("agent", "server_port", server_port),
        Edit::set(
            "agent",
            "socket_path",
            dir.join("run/secrets/workload-spiffe-uds/socket").display(),
        ),
        Edit::set(
            "agent",
            "trust_bundle_path",
            dir.join("bundle/root-cert.pem").display(),
        ),
        Edit::add(
            r#"plugins/NodeAttestor "k8s_psat"/plugin_data"#,
            "token_path",
            dir.join("tokens/spire-agent").display(),
            "added by the test: default /var/run/secrets/tokens/spire-agent (projected volume)",
        ),
        Edit::add(
            r#"plugins/WorkloadAttestor "k8s"/plugin_data"#,
            "kubelet_secure_port",
            kubelet_port,
            "added by the test: default 10250, the node's kubelet",
        ),
        Edit::add(
            r#"plugins/WorkloadAttestor "k8s"/plugin_data"#,
            "token_path",
            dir.join("serviceaccount/token").display(),
            "added by the test: default /var/run/secrets/kubernetes.io/serviceaccount/token",
        ),
        Edit::set("health_checks", "bind_port", health_port),
    ]
}

/// `N` distinct free TCP ports.
pub fn distinct_ports<const N: usize>() -> [u16; N] {
    let mut ports = [0; N];
    for i in 0..N {
        ports[i] = loop {
            let port = crate::istio_support::free_port();
            if !ports[..i].contains(&port) {
                break port;
            }
        };
    }
    ports
}

// ---------------------------------------------------------------------------------------
// Pods with real processes
// ---------------------------------------------------------------------------------------

/// Why this machine cannot put processes into pods' cgroups, if it cannot.
pub fn cgroups_unusable() -> Option<String> {
    if my_uid() != "0" {
        return Some("not root: the test creates cgroups for its pods".into());
    }
    let probe = Path::new(HIERARCHY).join(format!("spire-rs-k8s-seed-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            std::fs::remove_dir(&probe).unwrap();
            None
        }
        Err(e) => Some(format!(
            "{HIERARCHY} is not a writable cgroup v1 hierarchy: {e}"
        )),
    }
}

/// A fresh `containerd` container ID (64 hex digits).
pub fn container_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A pod on the test's node: its identity, the container the test's processes run in, and
/// that container's cgroup (`kubepods/burstable/pod<uid>/<container id>`), which exists while
/// this value does. Only the directories it created are removed.
#[derive(Debug)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The pod as the kubelet and the apiserver return it.
    pub json: Value,
    /// The cgroup directory of the container the test's processes join.
    pub cgroup: PathBuf,
    created: Vec<PathBuf>,
}

// === impl Pod ===

impl Pod {
    /// A pod whose `containers` (name, image) get fresh container IDs; the test's processes
    /// join the first one's cgroup, created now. `build` finishes the pod (node, service
    /// account, labels...).
    pub fn create(
        name: &str,
        namespace: &str,
        containers: &[(&str, &str)],
        build: impl FnOnce(PodBuilder) -> PodBuilder,
    ) -> std::io::Result<Self> {
        let uid = uuid::Uuid::new_v4().to_string();
        let mut builder = PodBuilder::new(name, namespace, &uid);
        let mut first = None;
        for (container, image) in containers {
            let id = container_id();
            let digest = container_id();
            builder = builder.container(
                container,
                &format!("containerd://{id}"),
                &format!("docker.io/{image}"),
                &format!("docker.io/{image}@sha256:{digest}"),
            );
            first.get_or_insert(id);
        }
        let mut pod = Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            json: build(builder).build(),
            cgroup: Path::new(HIERARCHY).join(QOS).join(format!("pod{uid}")),
            uid,
            created: Vec::new(),
        };
        pod.cgroup.push(first.expect("a pod has a container"));
        let mut dir = PathBuf::from(HIERARCHY);
        for part in pod.cgroup.strip_prefix(HIERARCHY).unwrap() {
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => pod.created.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(pod)
    }

    /// Runs the SDS client (see [`run_sds_client`]) as a process of this pod's container:
    /// `sh` writes its own PID into `cgroup.procs`, then becomes the client, so it is in the
    /// pod before it connects. `patience`: how long it retries `default` while refused.
    /// Returns once the process exited (so the cgroup is empty again).
    pub async fn ask_sds(&self, socket: &Path, work: &Path, patience: Duration) -> SdsOutcome {
        let mut command = tokio::process::Command::new("sh");
        command
            .args([
                "-c",
                r#"echo $$ > "$1" && exec "$2" --ignored --exact sds_client_in_pod --nocapture"#,
                "sh",
            ])
            .arg(self.cgroup.join("cgroup.procs"))
            .arg(std::env::current_exe().unwrap())
            .env(ENV_SOCKET, socket);
        self.run_sds_client(command, work, patience).await
    }

    /// [`ask_sds`](Self::ask_sds) as a process of the container that mounts `volume` (a host
    /// directory, e.g. a published CSI volume) at `mount_path`: in a mount namespace of its
    /// own (as the container runtime gives it) with a private tmpfs on `/run` and the volume
    /// bind-mounted at `mount_path` under it, asking on `<mount_path>/socket`. Nothing
    /// changes on the host's mounts.
    pub async fn ask_sds_in_container(
        &self,
        volume: &Path,
        mount_path: &str,
        work: &Path,
        patience: Duration,
    ) -> SdsOutcome {
        assert!(
            mount_path.starts_with("/run/"),
            "the private tmpfs covers /run only"
        );
        let mut command = tokio::process::Command::new("unshare");
        command
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                r#"mount -t tmpfs container-run /run && mkdir -p "$3" && mount --bind "$4" "$3" \
                   && echo $$ > "$1" && exec "$2" --ignored --exact sds_client_in_pod --nocapture"#,
                "sh",
            ])
            .arg(self.cgroup.join("cgroup.procs"))
            .arg(std::env::current_exe().unwrap())
            .arg(mount_path)
            .arg(volume)
            .env(ENV_SOCKET, Path::new(mount_path).join("socket"));
        self.run_sds_client(command, work, patience).await
    }

    async fn run_sds_client(
        &self,
        mut command: tokio::process::Command,
        work: &Path,
        patience: Duration,
    ) -> SdsOutcome {
        let out = work.join(format!("sds-{}.json", self.name));
        let mut child = command
            .env(ENV_OUT, &out)
            .env(ENV_PATIENCE_MS, patience.as_millis().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let run = async {
            let (mut o, mut e) = (Vec::new(), Vec::new());
            let (a, b) = tokio::join!(stdout.read_to_end(&mut o), stderr.read_to_end(&mut e));
            a.unwrap();
            b.unwrap();
            (child.wait().await.unwrap(), o, e)
        };
        // The client bounds every wait of its own; this only catches a wedged process.
        let limit = patience + CLIENT_SLACK;
        let (status, o, e) = tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| panic!("the SDS client in {} ran past {limit:?}", self.name));
        let log = format!(
            "--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&e)
        );
        assert!(
            status.success(),
            "SDS client in {}: {status}\n{log}",
            self.name
        );
        let text = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("SDS client in {} wrote no result ({e})\n{log}", self.name));
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // `ask_sds` waits for its process, but a failed test may leave one behind (killed,
        // maybe not gone yet): move whatever is still in the leaf back to the root first.
        let procs = std::fs::read_to_string(self.cgroup.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(Path::new(HIERARCHY).join("cgroup.procs"), pid);
        }
        for dir in self.created.iter().rev() {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The SDS client inside a pod
// ---------------------------------------------------------------------------------------

const ENV_SOCKET: &str = "SPIRE_K8S_SEED_SDS_SOCKET";
const ENV_OUT: &str = "SPIRE_K8S_SEED_SDS_OUT";
const ENV_PATIENCE_MS: &str = "SPIRE_K8S_SEED_SDS_PATIENCE_MS";
/// How long one stream may take to answer.
const ANSWER: Duration = Duration::from_secs(10);
/// Time for the client process beyond its patience (start-up, one last answer).
const CLIENT_SLACK: Duration = Duration::from_secs(30);

/// The gRPC status code and message that refused a resource.
pub type Refusal = (i32, String);
/// A validation context's shape (`spiffe` or `trusted_ca`) and its (trust domain, PEM) pairs.
pub type Roots = (String, Vec<(String, String)>);

/// What a process in a pod got over SDS, as Istio's Envoy asks (`default`, then `ROOTCA`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SdsOutcome {
    /// `/proc/self/cgroup` of the client when it asked.
    pub cgroup: String,
    /// How many `default` streams it opened.
    pub attempts: u32,
    /// `default`: the certificate chain and key (PEM), or the status that refused it.
    pub default: Result<(String, String), Refusal>,
    /// `ROOTCA`, or the status that refused it.
    pub rootca: Result<Roots, Refusal>,
}

/// The body of the ignored test the parent re-executes inside a pod: asks the agent socket
/// for `default` (again every 100 ms while refused, up to the patience it was given), then
/// for `ROOTCA`, and writes an [`SdsOutcome`]. `false` when not started by a parent.
pub async fn run_sds_client() -> bool {
    let (Some(socket), Some(out), Some(patience)) = (
        std::env::var_os(ENV_SOCKET),
        std::env::var_os(ENV_OUT),
        std::env::var(ENV_PATIENCE_MS).ok(),
    ) else {
        return false;
    };
    let patience = Duration::from_millis(patience.parse().unwrap());
    let client = sds_client(Path::new(&socket)).await;
    let mut attempts = 0;
    let ask = |names: &'static [&'static str]| {
        let mut client = client.clone();
        async move {
            let node = envoy_node((1, 22), &[]);
            let mut stream = EnvoyStream::open(&mut client, node, names).await?;
            tokio::time::timeout(ANSWER, stream.next_acked())
                .await
                .map_err(|_| Status::deadline_exceeded(format!("no answer within {ANSWER:?}")))?
        }
    };
    let status = |s: Status| (s.code() as i32, s.message().to_owned());
    let deadline = tokio::time::Instant::now() + patience;
    let default = loop {
        attempts += 1;
        match ask(&["default"]).await {
            Err(s)
                if s.code() == tonic::Code::InvalidArgument
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    let default = default.map(|r| tls(&single(&r, "tls:default")));
    let rootca = ask(&["ROOTCA"]).await.map(|r| {
        let (shape, tds) = context(&single(&r, "ctx:ROOTCA"));
        (shape.to_owned(), tds)
    });
    let outcome = SdsOutcome {
        cgroup: std::fs::read_to_string("/proc/self/cgroup").unwrap(),
        attempts,
        default: default.map_err(status),
        rootca: rootca.map_err(status),
    };
    std::fs::write(out, serde_json::to_vec(&outcome).unwrap()).unwrap();
    true
}

// === impl SdsOutcome ===

impl SdsOutcome {
    /// The `default` chain (PEM), checking the key is PKCS#8; a failure naming `who` and the
    /// process's cgroup when `default` was refused.
    pub fn served(&self, who: &str) -> &str {
        match &self.default {
            Ok((chain, key)) => {
                assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 key");
                chain
            }
            Err(status) => panic!(
                "{who}: `default` refused {status:?}; cgroup:\n{}",
                self.cgroup
            ),
        }
    }

    /// The `ROOTCA` roots (PEM), checking there is one trust domain, `example.org`.
    pub fn rootca_pem(&self) -> &str {
        let (shape, tds) = self.rootca.as_ref().unwrap();
        assert_eq!(tds.len(), 1, "one trust domain: {tds:?}");
        if shape == "spiffe" {
            assert_eq!(tds[0].0, "example.org");
        }
        &tds[0].1
    }
}

/// The subject of the leaf of a PEM chain (`C=US, O=SPIRE, CN=…`).
pub fn leaf_subject(chain_pem: &str) -> String {
    let der = &crate::istio_support::ders(chain_pem)[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.subject().to_string()
}

/// The one secret of `response`, which must be `kind` (`tls:default`, `ctx:ROOTCA`).
fn single(
    response: &DiscoveryResponse,
    kind: &str,
) -> envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret {
    let mut got = secrets(response);
    assert_eq!(kinds(&got), [kind]);
    got.remove(0)
}

// ---------------------------------------------------------------------------------------
// Probes and CLI output
// ---------------------------------------------------------------------------------------

/// The kubelet's probe timeout in the seed's manifests (`timeoutSeconds: 3`).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP answer: status code, `Content-Type`, body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// `GET <path>` on `127.0.0.1:<port>` as the kubelet's `httpGet` probe sends it (HTTP/1.1,
/// `User-Agent: kube-probe/…`, `Connection: close`); `None` if it fails or takes longer than
/// the probe's timeout.
pub async fn probe(port: u16, path: &str) -> Option<HttpAnswer> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.24\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.ok()?;
        Some(raw)
    };
    let raw = tokio::time::timeout(PROBE_TIMEOUT, exchange).await.ok()??;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_owned())
    });
    Some(HttpAnswer {
        status,
        content_type,
        body: body.to_owned(),
    })
}

/// Waits until `GET <path>` answers 200, as a kubelet probe succeeds; the answer.
pub async fn probe_ok(what: &str, port: u16, path: &str) -> HttpAnswer {
    wait(what, Duration::from_secs(30), || async move {
        probe(port, path).await.filter(|a| a.status == 200)
    })
    .await
}

/// The blocks of SPIRE's pretty `entry` output, each as (label, value) lines; every line
/// must be in SPIRE's layout (`<label padded to 24>: <value>`).
pub fn entry_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    text.split("\n\n")
        .filter(|b| b.contains("Entry ID"))
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with("Found "))
                .map(|l| {
                    let (label, value) = l.split_once(": ").unwrap();
                    assert_eq!(
                        format!("{:<24}: {value}", label.trim_end()),
                        l,
                        "not SPIRE's entry layout"
                    );
                    (label.trim_end().to_owned(), value.to_owned())
                })
                .collect()
        })
        .collect()
}
