//! SDS `default` fetch latency: a new `StreamSecrets` stream → its first response (the
//! caller's TLS certificate) for a unix workload whose identity the agent already holds, end
//! to end with the real binaries (`benches/benches/support`), as S8 measures the Workload
//! API. Two measures: a new stream on an open HTTP/2 connection (stream, peer attestation
//! through /proc, subscription, the `Secret` from the per-update memo), and a new connection
//! per fetch (Unix connect + HTTP/2 handshake + the same). The request is Istio's Envoy's:
//! node with build version, `["default"]`, the Secret type URL.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod sds_support;
mod support;

use sds_support::EnvoyStream;
use support::{Domain, Options};
use tokio::time::Instant;

const WARMUP: usize = 500;
const NEW_STREAM: usize = 10_000;
const NEW_CONNECTION: usize = 3_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Opens a `default` stream and returns once its first response (one TLS secret) is there.
async fn fetch_default(
    client: &mut envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient<
        tonic::transport::Channel,
    >,
) {
    let mut stream = EnvoyStream::open(client, sds_support::node(), &["default"])
        .await
        .unwrap();
    let response = stream.next().await.unwrap();
    assert_eq!(response.resources.len(), 1);
}

async fn run() {
    let domain = Domain::start(&Options::default());
    let agent = domain.agent_pid();
    sds_support::register_and_wait(&domain).await;
    let rss_before = support::rss_kib(agent);

    let mut client = sds_support::sds_client(&domain.agent_socket).await;
    let mut samples = Vec::with_capacity(NEW_STREAM);
    for i in 0..WARMUP + NEW_STREAM {
        let t0 = Instant::now();
        fetch_default(&mut client).await;
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    let new_stream = support::summarize(samples);
    let rss_after = support::rss_kib(agent);

    let mut samples = Vec::with_capacity(NEW_CONNECTION);
    for _ in 0..NEW_CONNECTION {
        let t0 = Instant::now();
        let mut client = sds_support::sds_client(&domain.agent_socket).await;
        fetch_default(&mut client).await;
        samples.push(t0.elapsed());
    }
    let new_connection = support::summarize(samples);

    println!("binaries: {}", domain.bins.profile);
    println!("sds/default_new_stream      {new_stream}");
    println!("sds/default_new_connection  {new_connection}");
    println!(
        "sds/agent_rss_kib           before {rss_before}, after {} streams {rss_after}",
        WARMUP + NEW_STREAM
    );
}
