//! Shared by the end-to-end CLI tests: a real `spire-server run` with a config file in a temp
//! dir (SQLite datastore, `KeyManager "memory"`), driven only through the CLI. Readiness is
//! polled with `spire-server healthcheck` (no fixed sleeps).
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_spire-server");

/// A running server; killed and reaped on drop.
pub struct Server {
    child: Child,
    dir: PathBuf,
    pub socket: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn write_config(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = format!(
        r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
    log_level = "WARN"
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
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
        port = free_port(),
        socket = dir.join("sock").join("api.sock").display(),
        data = data.display(),
    );
    let path = dir.join("server.conf");
    std::fs::write(&path, config).unwrap();
    path
}

impl Server {
    /// Starts `spire-server run -config <dir>/server.conf` (written on first use) and waits
    /// until `healthcheck` succeeds.
    pub fn start(dir: &Path) -> Server {
        Self::start_with_env(dir, &[])
    }

    /// As [`Server::start`], with extra environment variables for the server process.
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Server {
        let config = dir.join("server.conf");
        let config = if config.exists() {
            config
        } else {
            write_config(dir)
        };
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(BIN)
            .arg("run")
            .arg("-config")
            .arg(&config)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            dir: dir.to_owned(),
            socket: dir.join("sock").join("api.sock"),
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&mut self) {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("server exited early ({status}):\n{log}");
            }
            let out = self.cli(&["healthcheck"]);
            if out.status.success() {
                assert_eq!(stdout(&out), "Server is healthy.\n");
                return;
            }
            // Poll interval, not a readiness guess: we retry until healthcheck passes.
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        panic!("server not healthy after 60s:\n{log}");
    }

    /// Runs a client command against this server's socket.
    pub fn cli(&self, args: &[&str]) -> Output {
        let (verb, rest) = split_verb(args);
        Command::new(BIN)
            .args(verb)
            .arg("-socketPath")
            .arg(&self.socket)
            .args(rest)
            .env_remove("SPIRE_SERVER_PRIVATE_SOCKET")
            .env_remove("SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE")
            .output()
            .unwrap()
    }

    /// What the server has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Splits `["entry", "create", "-x", ...]` after the (sub)command words.
pub fn split_verb<'a>(args: &'a [&'a str]) -> (&'a [&'a str], &'a [&'a str]) {
    let n = args.iter().take_while(|a| !a.starts_with('-')).count();
    args.split_at(n)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Replaces the value of every `Entry ID` line with `<ID>`.
pub fn mask_ids(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(": ") {
            Some((label, value)) if label.trim_end() == "Entry ID" && value != "(none)" => {
                format!("{label}: <ID>")
            }
            _ => line.to_owned(),
        })
        .map(|l| l + "\n")
        .collect()
}

pub fn entry_id_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Entry ID                : "))
        .unwrap()
        .to_owned()
}

pub const INGRESS_POD_UID: &str = "63c2bbf5-a8b1-4b1f-ad64-f62ad2a69807";
pub const INGRESS_POD: &str = "istio-ingressgateway-5b45864fd4-lgrxs";
pub const SLEEP_POD_UID: &str = "ee490447-e502-46bd-8532-5a746b0871d6";
pub const SLEEP_POD: &str = "sleep-5f4d47c948-njvpk";

pub const NODE_ALIAS: &str = "\
Entry ID                : <ID>
SPIFFE ID               : spiffe://example.org/ns/spire/sa/spire-agent
Parent ID               : spiffe://example.org/spire/server
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : k8s_psat:agent_ns:spire
Selector                : k8s_psat:agent_sa:spire-agent
Selector                : k8s_psat:cluster:demo-cluster

";

pub fn ingress_block() -> String {
    format!(
        "\
Entry ID                : <ID>
SPIFFE ID               : spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account
Parent ID               : spiffe://example.org/ns/spire/sa/spire-agent
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : k8s:ns:istio-system
Selector                : k8s:pod-uid:{INGRESS_POD_UID}
Selector                : k8s:sa:istio-ingressgateway-service-account
DNS name                : {INGRESS_POD}
DNS name                : istio-ingressgateway.istio-system.svc

"
    )
}

pub fn sleep_block() -> String {
    format!(
        "\
Entry ID                : <ID>
SPIFFE ID               : spiffe://example.org/ns/default/sa/sleep
Parent ID               : spiffe://example.org/ns/spire/sa/spire-agent
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : k8s:ns:default
Selector                : k8s:pod-uid:{SLEEP_POD_UID}
DNS name                : {SLEEP_POD}

"
    )
}

/// The seed's three manual registrations, exactly as written there.
pub fn register_seed_entries(server: &Server) -> [String; 3] {
    let node = ok(&server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/ns/spire/sa/spire-agent",
        "-selector",
        "k8s_psat:cluster:demo-cluster",
        "-selector",
        "k8s_psat:agent_ns:spire",
        "-selector",
        "k8s_psat:agent_sa:spire-agent",
        "-node",
    ]));
    let ingress = ok(&server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account",
        "-parentID",
        "spiffe://example.org/ns/spire/sa/spire-agent",
        "-selector",
        "k8s:sa:istio-ingressgateway-service-account",
        "-selector",
        "k8s:ns:istio-system",
        "-selector",
        &format!("k8s:pod-uid:{INGRESS_POD_UID}"),
        "-dns",
        INGRESS_POD,
        "-dns",
        "istio-ingressgateway.istio-system.svc",
    ]));
    let sleep = ok(&server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/ns/default/sa/sleep",
        "-parentID",
        "spiffe://example.org/ns/spire/sa/spire-agent",
        "-selector",
        "k8s:ns:default",
        "-selector",
        &format!("k8s:pod-uid:{SLEEP_POD_UID}"),
        "-dns",
        SLEEP_POD,
    ]));
    [node, ingress, sleep]
}

pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}
