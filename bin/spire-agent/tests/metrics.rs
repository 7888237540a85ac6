//! `telemetry { Prometheus { host port } }` on a real spire-server and spire-agent: after real
//! traffic (admin CLI calls, attestation, sync, minting, a Workload API fetch) both listeners
//! answer with SPIRE's series, every name is one of SPIRE's (or one of spire-rs's own, listed
//! below), every series carries the `host` label, and `promtool check metrics` parses the
//! exposition (its only finding may be SPIRE's counters lacking `_total`).
//! `spire-server` is looked up next to `spire-agent` (`cargo build -p spire-server` first when
//! running `cargo test -p spire-agent` alone). Without `promtool` (Debian package
//! `prometheus`) the test skips, and fails under `CI=true`.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const AGENT_BIN: &str = env!("CARGO_BIN_EXE_spire-agent");

/// SPIRE's series (doc/telemetry/telemetry.md and its API method names) that this traffic
/// must produce on the server; each call counter also has `<name>_elapsed_time`.
const SERVER_SERIES: &[&str] = &[
    "spire_server_started",
    "spire_server_rpc_health_check",
    "spire_server_rpc_agent_v1_agent_create_join_token",
    "spire_server_rpc_agent_v1_agent_attest_agent",
    "spire_server_rpc_entry_v1_entry_batch_create_entry",
    "spire_server_rpc_svid_v1_svid_batch_new_x509svid",
    "spire_server_ca_manager_x509_ca_activate",
    "spire_server_manager_x509_ca_rotate_expiration",
    "spire_server_manager_x509_ca_rotate_ttl",
    "spire_server_datastore_join_token_create",
    "spire_server_datastore_join_token_delete",
    "spire_server_datastore_node_create",
    "spire_server_datastore_registration_entry_create",
];

/// The same for the agent.
const AGENT_SERIES: &[&str] = &[
    "spire_agent_started",
    "spire_agent_rpc_workload_api_fetch_x509svid",
    "spire_agent_workload_api_connection",
    "spire_agent_workload_api_connections",
    "spire_agent_workload_api_workload_attestation",
    "spire_agent_manager_sync_fetch_entries_updates",
    "spire_agent_manager_sync_fetch_svids_updates",
];

/// Every non-RPC name either binary may emit: SPIRE's keys, then spire-rs's own.
const KNOWN: &[&str] = &[
    // SPIRE's
    "spire_server_started",
    "spire_server_ca_manager_x509_ca_activate",
    "spire_server_manager_x509_ca_rotate_expiration",
    "spire_server_manager_x509_ca_rotate_ttl",
    "spire_server_svid_rotate",
    "spire_agent_started",
    "spire_agent_agent_svid_rotate",
    "spire_agent_workload_api_connection",
    "spire_agent_workload_api_connections",
    "spire_agent_workload_api_workload_attestation",
    "spire_agent_manager_sync_fetch_entries_updates",
    "spire_agent_manager_sync_fetch_svids_updates",
    "spire_agent_sds_api_connection",
    "spire_agent_sds_api_connections",
    "spire_server_datastore_bundle_append",
    "spire_server_datastore_bundle_count",
    "spire_server_datastore_bundle_create",
    "spire_server_datastore_bundle_delete",
    "spire_server_datastore_bundle_fetch",
    "spire_server_datastore_bundle_list",
    "spire_server_datastore_bundle_prune",
    "spire_server_datastore_bundle_set",
    "spire_server_datastore_bundle_update",
    "spire_server_datastore_registration_entry_count",
    "spire_server_datastore_registration_entry_create",
    "spire_server_datastore_registration_entry_delete",
    "spire_server_datastore_registration_entry_fetch",
    "spire_server_datastore_registration_entry_list",
    "spire_server_datastore_registration_entry_prune",
    "spire_server_datastore_registration_entry_update",
    "spire_server_datastore_node_count",
    "spire_server_datastore_node_create",
    "spire_server_datastore_node_delete",
    "spire_server_datastore_node_fetch",
    "spire_server_datastore_node_list",
    "spire_server_datastore_node_selectors_set",
    "spire_server_datastore_node_update",
    "spire_server_datastore_join_token_create",
    "spire_server_datastore_join_token_delete",
    "spire_server_datastore_join_token_fetch",
    "spire_server_datastore_join_token_prune",
    "spire_server_datastore_federation_relationship_create",
    "spire_server_datastore_federation_relationship_delete",
    "spire_server_datastore_federation_relationship_fetch",
    "spire_server_datastore_federation_relationship_list",
    "spire_server_datastore_federation_relationship_update",
    "spire_server_datastore_ca_journal_fetch",
    "spire_server_datastore_ca_journal_prune",
    "spire_server_datastore_ca_journal_set",
    // spire-rs's own
    "spire_agent_push_messages",
    "spire_server_datastore_bundle_edit",
    "spire_server_datastore_change_event_latest",
    "spire_server_datastore_change_event_list",
    "spire_server_datastore_change_event_prune",
];

/// The RPC services whose methods SPIRE names `rpc_<service key>_<method>`.
const RPC_SERVICES: &[&str] = &[
    "spire_server_rpc_agent_v1_agent_",
    "spire_server_rpc_bundle_v1_bundle_",
    "spire_server_rpc_entry_v1_entry_",
    "spire_server_rpc_svid_v1_svid_",
    "spire_server_rpc_trustdomain_v1_trust_domain_",
    "spire_server_rpc_localauthority_v1_local_authority_",
    "spire_server_rpc_debug_v1_debug_",
    "spire_server_rpc_logger_",
    "spire_server_rpc_health_",
    "spire_server_rpc_push_v1_push_",
    "spire_agent_rpc_workload_api_",
    "spire_agent_rpc_sds_v3_",
    "spire_agent_rpc_health_",
];

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
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("timed out waiting for {what}:\n{log}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over plain HTTP/1.1: the status line, the content type and the body.
fn scrape(port: u16) -> Option<(String, String, String)> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_owned();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Some((status, content_type, body.to_owned()))
}

/// The metric family names of an exposition (from its `# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

fn has_all(text: &str, series: &[&str]) -> bool {
    let names = families(text);
    series.iter().all(|s| names.contains(*s))
}

/// `promtool check metrics` on `text`: exit 0, or 3 with only SPIRE's counter names flagged.
fn promtool(text: &str, what: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => {}
        Some(3) => {
            for line in report.lines().filter(|l| !l.trim().is_empty()) {
                assert!(
                    line.ends_with("counter metrics should have \"_total\" suffix"),
                    "{what}: promtool finding not caused by SPIRE's names: {line}\n{text}"
                );
            }
        }
        code => panic!("{what}: promtool check metrics exited {code:?}: {report}\n{text}"),
    }
    eprintln!(
        "{what}: promtool check metrics exit {:?}",
        out.status.code()
    );
}

/// Every family is SPIRE's (or listed as ours), every sample has the `host` label, and every
/// call counter sample has a gRPC status name.
fn check_names(text: &str, what: &str) {
    for name in families(text) {
        let base = name.strip_suffix("_elapsed_time").unwrap_or(&name);
        assert!(
            KNOWN.contains(&base) || RPC_SERVICES.iter().any(|p| base.starts_with(p)),
            "{what}: {name} is not in the table of names"
        );
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("host=\""), "{what}: no host label: {line}");
        if line.contains("_rpc_") || line.contains("_datastore_") {
            assert!(line.contains("status=\""), "{what}: no status: {line}");
        }
    }
}

fn server_conf(d: &Path, port: u16, socket: &Path, metrics: u16) -> String {
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

telemetry {{
    Prometheus {{
        host = "127.0.0.1"
        port = {metrics}
    }}
}}
"#,
        socket = socket.display(),
        dir = d.display(),
    )
}

fn agent_conf(d: &Path, port: u16, token: &str, metrics: u16) -> String {
    format!(
        r#"agent {{
    data_dir = "{dir}/agent"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "{port}"
    socket_path = "{dir}/public/api.sock"
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

telemetry {{
    Prometheus {{
        port = {metrics}
    }}
}}
"#,
        dir = d.display(),
    )
}

#[test]
fn prometheus_series_after_real_traffic() {
    if Command::new("promtool").arg("--version").output().is_err() {
        spire_test::skip("promtool is absent (Debian package prometheus)");
        return;
    }
    let server_bin: PathBuf = Path::new(AGENT_BIN)
        .with_file_name(format!("spire-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server_bin.is_file(),
        "{} is missing: run `cargo build -p spire-server` first",
        server_bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, server_metrics, agent_metrics) = (free_port(), free_port(), free_port());
    let server_socket = d.join("server/api.sock");
    std::fs::write(
        d.join("server.conf"),
        server_conf(d, port, &server_socket, server_metrics),
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
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .strip_prefix("Token: ")
        .unwrap()
        .trim()
        .to_owned();
    let uid = std::fs::metadata(d).unwrap().uid();
    let out = server_cli(&[
        "entry",
        "create",
        "-parentID",
        &format!("spiffe://example.org/spire/agent/join_token/{token}"),
        "-spiffeID",
        "spiffe://example.org/workload",
        "-selector",
        &format!("unix:uid:{uid}"),
    ]);
    assert!(out.status.success(), "{out:?}");

    std::fs::write(
        d.join("agent.conf"),
        agent_conf(d, port, &token, agent_metrics),
    )
    .unwrap();
    let agent_log = d.join("agent.out");
    let mut agent = spawn(
        Path::new(AGENT_BIN),
        &["run", "-config", d.join("agent.conf").to_str().unwrap()],
        &agent_log,
    );
    let socket = d.join("public/api.sock");
    wait_for("a workload SVID", &mut agent, &agent_log, || {
        Command::new(AGENT_BIN)
            .args(["api", "fetch", "x509", "-socketPath"])
            .arg(&socket)
            .output()
            .unwrap()
            .status
            .success()
            .then_some(())
    });

    let agent_text = wait_for("the agent's series", &mut agent, &agent_log, || {
        let (status, content_type, body) = scrape(agent_metrics)?;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        has_all(&body, AGENT_SERIES).then_some(body)
    });
    let server_text = wait_for("the server's series", &mut server, &server_log, || {
        let (_, _, body) = scrape(server_metrics)?;
        has_all(&body, SERVER_SERIES).then_some(body)
    });
    for (text, what) in [(&server_text, "server"), (&agent_text, "agent")] {
        check_names(text, what);
        promtool(text, what);
    }
    // Call counters: a counter and a millisecond summary per status, Go's status names.
    assert!(
        agent_text
            .contains("# TYPE spire_agent_rpc_workload_api_fetch_x509svid_elapsed_time summary"),
        "{agent_text}"
    );
    assert!(
        agent_text
            .lines()
            .any(|l| l
                .starts_with("spire_agent_rpc_workload_api_fetch_x509svid{status=\"OK\",host=\"")),
        "{agent_text}"
    );
    assert!(
        server_text
            .lines()
            .any(|l| l
                .starts_with("spire_server_rpc_agent_v1_agent_attest_agent{status=\"OK\",host=\"")),
        "{server_text}"
    );
    assert!(
        server_text.contains("spire_server_started{version=\""),
        "{server_text}"
    );
}
