//! S10: SDS push fan-out. The bench process, registered as a unix workload, opens N
//! `StreamSecrets` streams for `ROOTCA` on the real agent (`benches/benches/support`),
//! multiplexed over HTTP/2 connections (`S10_STREAMS_PER_CONN`, default 100), and ACKs the
//! first response on each, as Istio's Envoy does. It then appends a new X.509 authority to the
//! trust bundle through the server's admin socket (BundleService/AppendBundle); every stream
//! must receive the new bundle. Per stream: time from the AppendBundle call to the arrival of
//! its next response (p50/p99/max, the max being "the last stream has it"), plus the spread
//! from the first to the last arrival (the agent's fan-out alone). Agent CPU for the push
//! (utime+stime delta) and agent RSS before and after opening the streams.
//!
//! `S10_STREAMS` sets the rounds (default `1000,10000`); each round opens its streams on new
//! connections and closes them at the end.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod sds_support;
mod support;

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use sds_support::EnvoyStream;
use spire_proto::spire::api::server::bundle::v1::AppendBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::types::X509Certificate;
use support::{Domain, Options};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn main() {
    let rounds: Vec<usize> = std::env::var("S10_STREAMS")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let per_conn: usize = std::env::var("S10_STREAMS_PER_CONN")
        .map(|n| n.parse().unwrap())
        .unwrap_or(100);
    // One client thread: the agent keeps at least one of the two cores.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&rounds, per_conn));
}

/// A new self-signed CA certificate (P-256), DER.
fn new_authority() -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().to_vec()
}

/// The number of certificates in the one trust domain of a `ROOTCA` response.
fn roots_in(response: &DiscoveryResponse) -> usize {
    let secrets = sds_support::secrets(response);
    assert_eq!(secrets.len(), 1);
    let (kind, tds) = sds_support::context(&secrets[0]);
    assert_eq!(kind, "spiffe");
    assert_eq!(tds.len(), 1);
    tds[0].1.matches("-----BEGIN CERTIFICATE-----").count()
}

async fn run(rounds: &[usize], per_conn: usize) {
    let domain = Domain::start(&Options::default());
    let agent = domain.agent_pid();
    sds_support::register_and_wait(&domain).await;
    let mut bundle = BundleClient::new(support::uds_channel(&domain.server_socket).await.unwrap());
    println!("binaries: {}", domain.bins.profile);
    println!("s10/streams_per_connection {per_conn}");
    for &n in rounds {
        round(&domain, agent, &mut bundle, n, per_conn).await;
    }
}

async fn round(
    domain: &Domain,
    agent: u32,
    bundle: &mut BundleClient<tonic::transport::Channel>,
    n: usize,
    per_conn: usize,
) {
    let rss_before = support::rss_kib(agent);
    println!("s10/{n}/agent_fds_before    {}", open_fds(agent));
    let connections = n.div_ceil(per_conn);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(sds_support::sds_client(&domain.agent_socket).await);
    }

    // Open every stream, take and ACK its first response, then wait for the push.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<usize>();
    let open_started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut client = clients[i % connections].clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = EnvoyStream::open(&mut client, sds_support::node(), &["ROOTCA"])
                .await
                .unwrap();
            let first = stream.next_acked().await.unwrap();
            ready.send(roots_in(&first)).unwrap();
            let pushed = stream.next().await.unwrap();
            let arrived = Instant::now();
            stream.ack(&pushed).await;
            (arrived, pushed, stream)
        }));
    }
    drop(ready_tx);
    let mut roots_before = None;
    for _ in 0..n {
        let roots = ready_rx.recv().await.unwrap();
        assert_eq!(*roots_before.get_or_insert(roots), roots);
    }
    let open_time = open_started.elapsed();
    // Let the agent finish with the last ACKs before the CPU and RSS readings.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = support::rss_kib(agent);

    let authority = new_authority();
    let cpu0 = sds_support::cpu_seconds(agent);
    let client_cpu0 = sds_support::cpu_seconds(std::process::id());
    let t0 = Instant::now();
    bundle
        .append_bundle(AppendBundleRequest {
            x509_authorities: vec![X509Certificate {
                asn1: authority,
                tainted: false,
            }],
            ..AppendBundleRequest::default()
        })
        .await
        .unwrap();
    let rpc = t0.elapsed();
    let mut arrivals = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    let mut reference = None;
    for task in tasks {
        let (arrived, pushed, stream) = task.await.unwrap();
        arrivals.push(arrived);
        // Every stream gets the same resources.
        assert_eq!(
            &pushed.resources,
            reference.get_or_insert_with(|| pushed.resources.clone())
        );
        streams.push(stream);
    }
    let cpu = sds_support::cpu_seconds(agent) - cpu0;
    let client_cpu = sds_support::cpu_seconds(std::process::id()) - client_cpu0;
    let roots_before = roots_before.unwrap();
    let pushed_roots = roots_in(&DiscoveryResponse {
        resources: reference.unwrap(),
        ..DiscoveryResponse::default()
    });
    assert_eq!(
        pushed_roots,
        roots_before + 1,
        "the new authority was not pushed"
    );
    // Settle, then read RSS with the streams still open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_pushed = support::rss_kib(agent);

    let first = *arrivals.iter().min().unwrap();
    let latencies: Vec<Duration> = arrivals.iter().map(|a| *a - t0).collect();
    let spread: Vec<Duration> = arrivals.iter().map(|a| *a - first).collect();
    let latencies = support::summarize(latencies);
    let spread = support::summarize(spread);

    drop(streams);
    drop(clients);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = support::rss_kib(agent);
    let fds_closed = open_fds(agent);

    let per_stream = (rss_open.saturating_sub(rss_before) * 1024) as f64 / n as f64;
    println!("s10/{n} streams on {connections} connections, opened in {open_time:?}");
    println!("s10/{n}/append_bundle_rpc   {rpc:?}");
    println!("s10/{n}/push_latency        {latencies}");
    println!("s10/{n}/fanout_spread       {spread}");
    println!(
        "s10/{n}/agent_cpu_push      {cpu:.2} core-s (bench client: {client_cpu:.2} core-s, \
         one thread)"
    );
    println!(
        "s10/{n}/agent_rss_kib       before {rss_before}, streams open {rss_open} \
         ({per_stream:.0} B/stream), after push {rss_pushed}, after close {rss_closed} ({fds_closed} fds open)"
    );
}

/// The number of open file descriptors of `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}
