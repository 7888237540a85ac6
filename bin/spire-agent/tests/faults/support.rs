//! Real `spire-server` and `spire-agent` processes for the fault cases: config files in a
//! temp dir, logs captured to files, readiness polled (no fixed sleeps).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_spire-agent");

pub fn server_bin() -> PathBuf {
    let bin = Path::new(AGENT_BIN).with_file_name("spire-server");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p spire-server` first",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process with its log file; killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Proc {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `f` every 100 ms until it returns `Some`, failing if the process exits or a
    /// minute passes.
    pub fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..600 {
            if let Some(v) = f() {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited early ({status}) while waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}:\n{}", self.log_text());
    }

    /// Waits for the failpoint's announcement in the log.
    pub fn wait_failpoint(&mut self, name: &str) {
        let marker = format!("failpoint {name} reached");
        let log = self.log.clone();
        self.wait_for(&marker, || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(&marker)
                .then_some(())
        });
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(out)
}

/// A server's configuration: `datastore` is the `DataStore "sql"` plugin_data body.
pub fn server_conf(dir: &Path, port: u16, datastore: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let text = format!(
        r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{dir}/api.sock"
    trust_domain = "example.org"
    data_dir = "{dir}/data"
    log_level = "INFO"
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            {datastore}
        }}
    }}
    KeyManager "disk" {{
        plugin_data {{ keys_path = "{dir}/data/keys.json" }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#,
        dir = dir.display(),
    );
    let path = dir.join("server.conf");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn sqlite(dir: &Path) -> String {
    format!(
        "database_type = \"sqlite3\"\n            connection_string = \"{}/data/datastore.sqlite3\"",
        dir.display()
    )
}

/// A server process (config at `<dir>/server.conf`), healthy on return.
pub fn start_server(dir: &Path, env: &[(&str, &str)]) -> Proc {
    let conf = dir.join("server.conf");
    let mut proc = Proc::spawn(
        &server_bin(),
        &["run", "-config", conf.to_str().unwrap()],
        env,
        &dir.join("server.log"),
    );
    let socket = dir.join("api.sock");
    proc.wait_for("a healthy server", || {
        server_cli(&socket, &["healthcheck"])
            .status
            .success()
            .then_some(())
    });
    proc
}

/// Runs `spire-server <verb…> -socketPath <socket> <flags…>`.
pub fn server_cli(socket: &Path, args: &[&str]) -> Output {
    let n = args.iter().take_while(|a| !a.starts_with('-')).count();
    let (verb, rest) = args.split_at(n);
    Command::new(server_bin())
        .args(verb)
        .arg("-socketPath")
        .arg(socket)
        .args(rest)
        .output()
        .unwrap()
}

/// A one-use join token for `spiffe://example.org/node`.
pub fn join_token(socket: &Path) -> String {
    let out = ok(&server_cli(
        socket,
        &[
            "token",
            "generate",
            "-spiffeID",
            "spiffe://example.org/node",
        ],
    ));
    out.trim().strip_prefix("Token: ").unwrap().to_owned()
}

/// An agent's configuration in `dir` (disk keys, so a restart resumes without attesting).
pub fn agent_conf(dir: &Path, port: u16, token: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let text = format!(
        r#"agent {{
    data_dir = "{dir}/data"
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = "{port}"
    socket_path = "{dir}/public/api.sock"
    trust_domain = "example.org"
    insecure_bootstrap = true
    join_token = "{token}"
    experimental {{
        sync_interval = "1s"
    }}
}}

plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{ directory = "{dir}/data" }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
"#,
        dir = dir.display(),
    );
    let path = dir.join("agent.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// An agent process (config at `<dir>/agent.conf`), healthy on return.
pub fn start_agent(dir: &Path, env: &[(&str, &str)]) -> Proc {
    let conf = dir.join("agent.conf");
    let mut proc = Proc::spawn(
        Path::new(AGENT_BIN),
        &["run", "-config", conf.to_str().unwrap()],
        env,
        &dir.join("agent.log"),
    );
    let socket = dir.join("public/api.sock");
    proc.wait_for("a healthy agent", || {
        agent_cli(&["healthcheck", "-socketPath", socket.to_str().unwrap()])
            .status
            .success()
            .then_some(())
    });
    proc
}

pub fn agent_cli(args: &[&str]) -> Output {
    Command::new(AGENT_BIN).args(args).output().unwrap()
}
