//! `spire-agent logger get|set|reset` against a real agent's admin socket (`admin_socket_path`),
//! attested to a real spire-server with a join token: the level changes without a restart; and
//! the Debug API on the same socket.
//! `spire-server` is looked up next to `spire-agent` (`cargo build -p spire-server` first when
//! running `cargo test -p spire-agent` alone).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use spire_proto::spire::agent::debug::v1::GetInfoRequest;
use spire_proto::spire::agent::debug::v1::debug_client::DebugClient;

const AGENT_BIN: &str = env!("CARGO_BIN_EXE_spire-agent");

fn server_bin() -> PathBuf {
    Path::new(AGENT_BIN).with_file_name(format!("spire-server{}", std::env::consts::EXE_SUFFIX))
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    )
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

/// Polls `f` until it returns `Some` (the processes start on their own schedule), up to 60 s.
fn wait_for<T>(what: &str, proc: &mut Proc, log: &Path, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = f() {
            return v;
        }
        if let Some(status) = proc.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("exited early ({status}) while waiting for {what}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn agent_conf(dir: &Path, port: u16, token: &str, admin: &Path) -> String {
    format!(
        r#"agent {{
    data_dir = "{dir}/agent"
    log_level = "INFO"
    log_file = "{dir}/agent.log"
    server_address = "127.0.0.1"
    server_port = "{port}"
    socket_path = "{dir}/public/api.sock"
    admin_socket_path = "{admin}"
    trust_domain = "example.org"
    insecure_bootstrap = true
    join_token = "{token}"
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
}}
"#,
        dir = dir.display(),
        admin = admin.display(),
    )
}

fn calls_logged(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("level=info") && l.contains("msg=\"GetLogger Called\""))
        .count()
}

#[test]
fn set_warn_takes_effect_on_a_running_agent() {
    let server_bin = server_bin();
    assert!(
        server_bin.is_file(),
        "{} is missing: run `cargo build -p spire-server` first",
        server_bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server_socket = d.join("server/api.sock");
    std::fs::write(
        d.join("server.conf"),
        format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{dir}/data"
    log_level = "WARN"
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{dir}/datastore.sqlite3"
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
            dir = d.display(),
        ),
    )
    .unwrap();
    let server_log = d.join("server.out");
    let mut server = spawn(
        &server_bin,
        &["run", "-config", d.join("server.conf").to_str().unwrap()],
        &server_log,
    );
    let server_cli = |args: &[&str]| {
        Command::new(&server_bin)
            .args(args)
            .arg("-socketPath")
            .arg(&server_socket)
            .output()
            .unwrap()
    };
    wait_for("the server", &mut server, &server_log, || {
        server_cli(&["healthcheck"]).status.success().then_some(())
    });
    let out = server_cli(&["token", "generate"]);
    let token = text(&out)
        .0
        .strip_prefix("Token: ")
        .unwrap()
        .trim()
        .to_owned();

    // SPIRE's rule: not next to (or below) the Workload API socket.
    std::fs::write(
        d.join("bad.conf"),
        agent_conf(d, port, &token, &d.join("public/admin.sock")),
    )
    .unwrap();
    let out = Command::new(AGENT_BIN)
        .args(["validate", "-config", d.join("bad.conf").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains(
            "admin socket cannot be in the same directory or a subdirectory as that \
             containing the Workload API socket"
        ),
        "{:?}",
        text(&out)
    );

    let admin = d.join("private/admin.sock");
    std::fs::write(d.join("agent.conf"), agent_conf(d, port, &token, &admin)).unwrap();
    let agent_out = d.join("agent.out");
    let mut agent = spawn(
        Path::new(AGENT_BIN),
        &["run", "-config", d.join("agent.conf").to_str().unwrap()],
        &agent_out,
    );
    let logger = |args: &[&str]| {
        Command::new(AGENT_BIN)
            .arg("logger")
            .args(args)
            .arg("-socketPath")
            .arg(&admin)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = logger(args);
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
        text(&out).0
    };
    let first = wait_for("the admin socket", &mut agent, &agent_out, || {
        let out = logger(&["get"]);
        out.status.success().then(|| text(&out).0)
    });
    assert_eq!(first, "Logger Level : info\nLaunch Level : info\n\n");
    let log = d.join("agent.log");
    let before = calls_logged(&log);
    assert!(before >= 1);

    // Each GetLogger is logged at info: the line stops appearing at warn, without a restart.
    assert_eq!(ok(&["get"]), "Logger Level : info\nLaunch Level : info\n\n");
    assert_eq!(calls_logged(&log), before + 1);
    assert_eq!(
        ok(&["set", "-level", "warn"]),
        "Logger Level : warning\nLaunch Level : info\n\n"
    );
    assert_eq!(
        ok(&["get", "-output", "json"]),
        "{\"current_level\":\"WARN\",\"launch_level\":\"INFO\"}\n"
    );
    assert_eq!(calls_logged(&log), before + 1);
    assert_eq!(
        ok(&["reset"]),
        "Logger Level : info\nLaunch Level : info\n\n"
    );
    assert_eq!(ok(&["get"]), "Logger Level : info\nLaunch Level : info\n\n");
    assert_eq!(calls_logged(&log), before + 2);

    let out = logger(&["set", "-level", "never"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "Error: the value \"never\" is not a valid setting\n"
    );
    let out = logger(&["set"]);
    assert_eq!(text(&out).1, "Error: a value (-level) must be set\n");

    // The Debug API on the same socket: the agent's own SVID, no workload SVIDs (no entries),
    // and a sync already done.
    let info = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let channel = spire_cli::Client::connect(&admin).await.channel().unwrap();
            DebugClient::new(channel)
                .get_info(GetInfoRequest {})
                .await
                .unwrap()
                .into_inner()
        });
    let leaf = &info.svid_chain[0];
    let id = leaf.id.as_ref().unwrap();
    assert_eq!(id.trust_domain, "example.org");
    assert_eq!(id.path, format!("/spire/agent/join_token/{token}"));
    assert!(leaf.expires_at > 0);
    assert_eq!(leaf.subject, "O=SPIRE,C=US");
    assert_eq!(info.svids_count, 0);
    assert_eq!(info.cached_x509_svids_count, 0);
    assert_eq!(info.cached_jwt_svids_count, 0);
    assert_eq!(info.cached_svidstore_x509_svids_count, 0);
    assert!(info.last_sync_success > 0);
    assert!(info.uptime >= 0);

    // `spire-agent debug getinfo`, pretty and JSON.
    let debug = |args: &[&str]| {
        let out = Command::new(AGENT_BIN)
            .args(["debug", "getinfo", "-socketPath"])
            .arg(&admin)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0
    };
    let pretty = debug(&[]);
    let lines: Vec<&str> = pretty.lines().collect();
    assert_eq!(lines[0], "Agent Debug Info:");
    assert!(
        lines[1].starts_with("  Uptime:                          "),
        "{pretty}"
    );
    let last_sync = lines[2]
        .strip_prefix("  Last Sync Success:               ")
        .unwrap();
    assert!(
        last_sync.len() == 20 && last_sync.ends_with('Z'),
        "{pretty}"
    );
    assert_eq!(
        &lines[3..],
        [
            "  Cached X.509 SVIDs:              0",
            "  Cached JWT SVIDs:                0",
            "  Cached SVID Store X.509 SVIDs:   0",
            "  SVID Chain:",
            &format!("    [0] SPIFFE ID:  spiffe://example.org/spire/agent/join_token/{token}"),
            "        Subject:    O=SPIRE,C=US",
            lines[9],
        ]
    );
    assert!(lines[9].starts_with("        Expires At: "), "{pretty}");
    let json: serde_json::Value = serde_json::from_str(&debug(&["-output", "json"])).unwrap();
    assert_eq!(json["cached_x509_svids_count"], 0);
    assert_eq!(
        json["svid_chain"][0]["id"]["path"],
        format!("/spire/agent/join_token/{token}")
    );
    // int64 as a string, as protojson writes it; a sync may have happened since.
    let synced: i64 = json["last_sync_success"].as_str().unwrap().parse().unwrap();
    assert!(synced >= info.last_sync_success);
    drop(agent);
    drop(server);
}
