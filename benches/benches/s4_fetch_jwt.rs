//! S4 over the wire: Workload API FetchJWTSVID end to end with the real binaries
//! (`benches/benches/support`).
//!
//! * `cold`: every request names a new audience, so the agent's JWT-SVID cache misses and the
//!   agent asks its server (`SVID.NewJWTSVID` over mTLS), which signs a token;
//! * `warm`: the same audience every time, served from the agent's cache;
//! * throughput: 4 concurrent clients on the cold path, per wall second.
//!
//! The in-process half of S4 and its ES256 floor are in `s4_s5_jwt`.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod support;

use std::time::Duration;

use spire_proto::workload::JwtsvidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use support::{Domain, Options};
use tokio::time::Instant;
use tonic::transport::Channel;

const WARMUP: usize = 200;
const COLD: usize = 5_000;
const WARM: usize = 10_000;
const CLIENTS: usize = 4;
const PER_CLIENT: usize = 2_500;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

fn request(audience: String) -> tonic::Request<JwtsvidRequest> {
    let mut request = tonic::Request::new(JwtsvidRequest {
        audience: vec![audience],
        spiffe_id: String::new(),
    });
    request.metadata_mut().insert(
        "workload.spiffe.io",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

async fn fetch(client: &mut SpiffeWorkloadApiClient<Channel>, audience: String) -> usize {
    let response = client.fetch_jwtsvid(request(audience)).await.unwrap();
    response.into_inner().svids.len()
}

async fn run() {
    let domain = Domain::start(&Options::default());
    let uid = format!("uid:{}", support::my_uid());
    let mut admin = domain.admin().await;
    support::create_entries(
        &mut admin,
        vec![support::entry(
            &domain.agent_id,
            "/s4/workload",
            &[("unix", uid.as_str())],
            None,
        )],
    )
    .await;
    let mut client = domain.workload().await;
    let started = Instant::now();
    loop {
        if let Ok(response) = client.fetch_jwtsvid(request("ready".into())).await
            && response.into_inner().svids.len() == 1
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no identity");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut samples = Vec::with_capacity(COLD);
    for i in 0..WARMUP + COLD {
        let t0 = Instant::now();
        assert_eq!(fetch(&mut client, format!("cold-{i}")).await, 1);
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    let cold = support::summarize(samples);

    let mut samples = Vec::with_capacity(WARM);
    for i in 0..WARMUP + WARM {
        let t0 = Instant::now();
        assert_eq!(fetch(&mut client, "warm".into()).await, 1);
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    let warm = support::summarize(samples);

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(domain.workload().await);
    }
    let t0 = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            tokio::spawn(async move {
                for i in 0..PER_CLIENT {
                    assert_eq!(fetch(&mut client, format!("tp-{c}-{i}")).await, 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let total = (CLIENTS * PER_CLIENT) as f64;

    println!("binaries: {}", domain.bins.profile);
    println!("s4/fetch_jwt_cold       {cold}");
    println!("s4/fetch_jwt_warm       {warm}");
    println!(
        "s4/cold_throughput      {CLIENTS} clients: {:.0} JWT-SVIDs/s (agent and server on the \
         same 2 vCPUs)",
        total / wall
    );
}
