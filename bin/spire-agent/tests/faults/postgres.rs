//! PostgreSQL restarted (immediate stop: a crash, then recovery) under write load from two
//! servers sharing it, with an agent attached to one of them.
//!
//! The instance is private: `initdb` into a temp dir owned by `postgres`, a free port, run
//! with `runuser` (CI runs as root), stopped on drop; the shared server on 5432 is never
//! touched. Two writers, one per server, create entries one CLI call at a time; the
//! database is killed once both have seen a write refused, and started again. Then: every
//! acknowledged entry is there exactly once, both servers list the same entries, and the
//! agent's workload (every entry selects it) is served an SVID for each of them.
//! `SPIRE_RS_FAULTS_FULL=1` writes 500 entries per server instead of 30.
// Wall-clock Instant::now: these cases time real processes and print the figures.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::support::{
    Proc, agent_cli, agent_conf, free_port, join_token, ok, server_cli, server_conf, start_agent,
    start_server,
};

/// A private PostgreSQL cluster, stopped on drop.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// `None` when no `initdb` is installed.
    fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("initdb").is_file())
            .max()?;
        let dir = tempfile::tempdir().unwrap();
        let (uid, gid) = user_ids("postgres")?;
        chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let data = dir.path().join("data");
        let pg = Postgres {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.pg_ctl(&["start"]);
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .unwrap();
        ok(&out);
    }

    fn pg_ctl(&self, action: &[&str]) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.data.parent().unwrap().display()
        );
        let log = self.data.parent().unwrap().join("postgres.log");
        let mut args = vec!["-D", self.data.to_str().unwrap(), "-w"];
        args.extend_from_slice(action);
        if action[0] == "start" {
            args.extend_from_slice(&["-o", &options, "-l", log.to_str().unwrap()]);
            self.run("pg_ctl", &args);
        } else {
            self.run("pg_ctl", &args);
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data.to_str().unwrap(),
                "-w",
                "stop",
                "-m",
                "immediate",
            ])
            .output();
    }
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name))
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))?
    })
}

/// The SPIFFE IDs of all entries a server lists.
fn listed(socket: &Path) -> Option<Vec<String>> {
    let out = server_cli(socket, &["entry", "show", "-output", "json"]);
    if !out.status.success() {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut ids: Vec<String> = value["entries"]
        .as_array()?
        .iter()
        .filter_map(|e| {
            Some(format!(
                "spiffe://example.org{}",
                e["spiffe_id"]["path"].as_str()?
            ))
        })
        .collect();
    ids.sort();
    Some(ids)
}

struct Tally {
    acknowledged: Vec<String>,
    refused: Vec<String>,
}

/// Creates `total` entries through `socket`, one call each, counting refusals in `refused`.
fn writer(
    socket: PathBuf,
    name: &'static str,
    parent: String,
    total: usize,
    refused: Arc<AtomicUsize>,
) -> Tally {
    let uid = own_uid();
    let mut tally = Tally {
        acknowledged: Vec::new(),
        refused: Vec::new(),
    };
    for n in 0..total {
        let id = format!("spiffe://example.org/{name}/{n}");
        let out = server_cli(
            &socket,
            &[
                "entry",
                "create",
                "-parentID",
                &parent,
                "-spiffeID",
                &id,
                "-selector",
                &format!("unix:uid:{uid}"),
            ],
        );
        if out.status.success() {
            tally.acknowledged.push(id);
        } else {
            refused.fetch_add(1, Ordering::SeqCst);
            tally.refused.push(id);
        }
    }
    tally
}

/// The test's own uid (the owner of `/proc/self`), which the unix workload attestor reports.
fn own_uid() -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap())
}

#[test]
#[ignore = "known gap: the agent misses one change committed across the PostgreSQL restart \
            (58 of 59 entries served; docs/faults.md)"]
fn postgres_restarted_under_load_from_two_servers_loses_nothing_acknowledged() {
    let Some(pg) = Postgres::start() else {
        spire_test::skip("no initdb under /usr/lib/postgresql/*/bin (or no postgres user)");
        return;
    };
    let total = if std::env::var_os("SPIRE_RS_FAULTS_FULL").is_some() {
        500
    } else {
        30
    };
    let dir = tempfile::tempdir().unwrap();
    let datastore = format!(
        "database_type = \"postgres\"\n            connection_string = \"{}\"",
        pg.url()
    );
    let (a_dir, b_dir, agent_dir) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("agent"),
    );
    let port_a = free_port();
    server_conf(&a_dir, port_a, &datastore);
    server_conf(&b_dir, free_port(), &datastore);
    let _a: Proc = start_server(&a_dir, &[]);
    let _b: Proc = start_server(&b_dir, &[]);
    let (sock_a, sock_b) = (a_dir.join("api.sock"), b_dir.join("api.sock"));
    let token = join_token(&sock_a);
    agent_conf(&agent_dir, port_a, &token);
    let _agent = start_agent(&agent_dir, &[]);
    let parent = format!("spiffe://example.org/spire/agent/join_token/{token}");

    let refused = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = [(sock_a.clone(), "a"), (sock_b.clone(), "b")]
        .into_iter()
        .map(|(socket, name)| {
            let (parent, refused) = (parent.clone(), refused.clone());
            std::thread::spawn(move || writer(socket, name, parent, total, refused))
        })
        .collect();

    // Kill the database once writes are flowing, hold it down until both writers have
    // been refused at least once, and start it again.
    let all_acked = |socket: &Path| listed(socket).map_or(0, |l| l.len());
    while all_acked(&sock_a) < 4 {
        std::thread::sleep(Duration::from_millis(50));
    }
    pg.pg_ctl(&["stop", "-m", "immediate"]);
    let down = Instant::now();
    while refused.load(Ordering::SeqCst) < 2 && writers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    pg.pg_ctl(&["start"]);
    let outage = down.elapsed();
    let tallies: Vec<Tally> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let acknowledged: Vec<&String> = tallies.iter().flat_map(|t| &t.acknowledged).collect();
    let refused_ids: Vec<&String> = tallies.iter().flat_map(|t| &t.refused).collect();
    assert!(
        !refused_ids.is_empty(),
        "no write was refused while the database was down"
    );

    // Both servers converge on the same entries: each acknowledged one exactly once.
    let written = Instant::now();
    let (list_a, list_b) = loop {
        if let (Some(a), Some(b)) = (listed(&sock_a), listed(&sock_b))
            && a == b
            && acknowledged.iter().all(|id| a.contains(id))
        {
            break (a, b);
        }
        assert!(
            written.elapsed() < Duration::from_secs(60),
            "servers did not converge"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let converge = written.elapsed();
    for id in &acknowledged {
        assert_eq!(
            list_a.iter().filter(|l| l == id).count(),
            1,
            "{id} not exactly once"
        );
    }
    let mut dedup = list_a.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), list_a.len(), "a duplicate entry");
    assert_eq!(list_a, list_b);
    let committed_anyway = refused_ids.iter().filter(|id| list_a.contains(id)).count();

    // The agent received every change: its workload gets an SVID per stored entry.
    let socket = agent_dir.join("public/api.sock");
    let started = Instant::now();
    let served = loop {
        let out = agent_cli(&[
            "api",
            "fetch",
            "x509",
            "-socketPath",
            socket.to_str().unwrap(),
        ]);
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("SPIFFE ID:").map(|s| s.trim().to_owned()))
            .collect();
        ids.sort();
        if ids == list_a {
            break ids.len();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent did not receive every entry: {} of {}",
            ids.len(),
            list_a.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "PostgreSQL killed (immediate stop) and restarted under load from two servers: \
         {} writes acknowledged, {} refused during the {:.1} s outage ({committed_anyway} of \
         those committed anyway), every acknowledged entry present exactly once; both servers \
         listed the same {} entries {:.1} s after the last write; the agent's workload was \
         served all {served} SVIDs {:.1} s later",
        acknowledged.len(),
        refused_ids.len(),
        outage.as_secs_f64(),
        list_a.len(),
        converge.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
