//! SDS helpers for the end-to-end benches (S10 fan-out, SDS fetch latency): an Istio-like
//! Envoy client (the one `spire-agent-sds`'s tests use, included by path), HTTP/2 channels
//! to the agent socket with large flow-control windows, and the setup that gives the bench
//! process an identity on the agent.
#![allow(dead_code, unreachable_pub)] // each bench uses part of it

#[path = "../../../crates/agent/sds/tests/support/envoy_client.rs"]
mod envoy_client;

use std::io;
use std::path::Path;
use std::time::Duration;

pub use envoy_client::*;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::support::{self, Domain};

/// The SPIFFE ID path of the bench process's entry.
pub const WORKLOAD_PATH: &str = "/ns/bench/sa/envoy";

/// An SDS client on a new HTTP/2 connection to `socket`, with 16 MiB connection and 1 MiB
/// stream windows (so flow control does not throttle a burst of pushes on one connection).
pub async fn sds_client(socket: &Path) -> SecretDiscoveryServiceClient<Channel> {
    let path = socket.to_owned();
    let channel = Endpoint::from_static("http://localhost")
        .initial_connection_window_size(16 << 20)
        .initial_stream_window_size(1 << 20)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .unwrap();
    SecretDiscoveryServiceClient::new(channel)
}

/// The node Istio 1.24's Envoy 1.32 sends (SPIFFE-validator contexts).
pub fn node() -> envoy_types::pb::envoy::config::core::v3::Node {
    envoy_node((1, 32), &[])
}

/// Registers an entry for this process's uid (one DNS name, like an Istio workload) and
/// waits until the agent serves it as `default` over SDS.
pub async fn register_and_wait(domain: &Domain) {
    let uid = format!("uid:{}", support::my_uid());
    let mut admin = domain.admin().await;
    support::create_entries(
        &mut admin,
        vec![support::entry(
            &domain.agent_id,
            WORKLOAD_PATH,
            &[("unix", uid.as_str())],
            Some("envoy.bench.svc"),
        )],
    )
    .await;
    let mut client = sds_client(&domain.agent_socket).await;
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = EnvoyStream::open(&mut client, node(), &["default"]).await
            && let Ok(response) = stream.next().await
            && response.resources.len() == 1
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no identity");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// utime + stime of `pid` in seconds (all threads), from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / clock_ticks()
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
