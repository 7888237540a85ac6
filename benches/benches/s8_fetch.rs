//! S8: Workload API FetchX509SVID, new stream → first message, for a unix workload whose
//! identity the agent already holds (cache hit), end to end with the real binaries
//! (`benches/benches/support`). Three measures:
//!
//! * `new_stream`: a new FetchX509SVID stream on an open connection (HTTP/2 stream, peer
//!   attestation through /proc, subscription, encoded response);
//! * `new_connection`: connect the Unix socket, HTTP/2 handshake, then the same;
//! * throughput: 4 concurrent clients on their own connections, with the agent's CPU time
//!   from /proc/<pid>/stat, giving fetches per agent CPU-second (per core).
//!
//! The floor, measured in the same run: a raw Unix-socket round trip (64 B request, 2 KiB
//! reply, blocking std sockets on two threads), as in docs/performance.md B.4.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod support;

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use support::{Domain, Options};
use tokio::time::Instant;

const WARMUP: usize = 500;
const NEW_STREAM: usize = 10_000;
const NEW_CONNECTION: usize = 3_000;
const CLIENTS: usize = 4;
const PER_CLIENT: usize = 5_000;
const FLOOR: usize = 20_000;

fn main() {
    let floor = uds_floor();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(floor));
}

/// Raw Unix-socket round trips: 64 B → 2 KiB.
fn uds_floor() -> support::Summary {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floor.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 64];
        let reply = [7u8; 2048];
        while conn.read_exact(&mut request).is_ok() {
            if conn.write_all(&reply).is_err() {
                return;
            }
        }
    });
    let mut conn = UnixStream::connect(&path).unwrap();
    let request = [1u8; 64];
    let mut reply = [0u8; 2048];
    let mut samples = Vec::with_capacity(FLOOR);
    for i in 0..WARMUP + FLOOR {
        let t0 = Instant::now();
        conn.write_all(&request).unwrap();
        conn.read_exact(&mut reply).unwrap();
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    drop(conn);
    server.join().unwrap();
    support::summarize(samples)
}

/// utime + stime of `pid` in seconds (all threads).
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / ticks_per_second
}

fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn first_message(
    client: &mut spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient<
        tonic::transport::Channel,
    >,
) -> usize {
    let mut stream = client
        .fetch_x509svid(support::x509_request())
        .await
        .unwrap()
        .into_inner();
    let message = stream.message().await.unwrap().unwrap();
    message.svids.len()
}

async fn run(floor: support::Summary) {
    let domain = Domain::start(&Options::default());
    let agent = domain.agent_pid();
    let uid = format!("uid:{}", support::my_uid());
    let mut admin = domain.admin().await;
    support::create_entries(
        &mut admin,
        vec![support::entry(
            &domain.agent_id,
            "/s8/workload",
            &[("unix", uid.as_str())],
            Some("workload.s8.svc"),
        )],
    )
    .await;
    // Wait until the identity is cached (the first fetch that returns it).
    let mut client = domain.workload().await;
    let started = Instant::now();
    loop {
        if let Ok(response) = client.fetch_x509svid(support::x509_request()).await
            && let Ok(Some(m)) = response.into_inner().message().await
            && m.svids.len() == 1
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no identity");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_before = support::rss_kib(agent);

    // New stream on an open connection.
    let mut samples = Vec::with_capacity(NEW_STREAM);
    for i in 0..WARMUP + NEW_STREAM {
        let t0 = Instant::now();
        assert_eq!(first_message(&mut client).await, 1);
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    let new_stream = support::summarize(samples);
    let rss_after_streams = support::rss_kib(agent);

    // New connection per fetch.
    let mut samples = Vec::with_capacity(NEW_CONNECTION);
    for _ in 0..NEW_CONNECTION {
        let t0 = Instant::now();
        let mut client = domain.workload().await;
        assert_eq!(first_message(&mut client).await, 1);
        samples.push(t0.elapsed());
    }
    let new_connection = support::summarize(samples);

    // Throughput: concurrent clients, agent CPU time.
    let ticks = clock_ticks();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(domain.workload().await);
    }
    let cpu0 = cpu_seconds(agent, ticks);
    let t0 = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                for _ in 0..PER_CLIENT {
                    assert_eq!(first_message(&mut client).await, 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(agent, ticks) - cpu0;
    let total = (CLIENTS * PER_CLIENT) as f64;
    let rss_end = support::rss_kib(agent);

    println!("binaries: {}", domain.bins.profile);
    println!("s8/floor_uds_rtt        {floor}");
    println!("s8/new_stream           {new_stream}");
    println!("s8/new_connection       {new_connection}");
    println!(
        "s8/throughput          {CLIENTS} clients: {:.0} fetch/s wall; agent CPU {cpu:.2} s \
         → {:.0} fetch per agent CPU-second",
        total / wall,
        total / cpu
    );
    println!(
        "s8/agent_rss_kib       before {rss_before}, after {NEW_STREAM}+{WARMUP} streams \
         {rss_after_streams}, at end {rss_end}"
    );
}
