//! S18: k8s_psat node attestation on the server (`spire-server-plugin`), through a test
//! kube-apiserver over HTTPS that answers in the real JSON shapes: one TokenReview, one pod GET
//! and one node GET per attestation, on pooled keep-alive connections.
//!
//! - `attest_one`: one attestation at a time (criterion), beside `floor_get_node`, a single
//!   apiserver GET on the same client (the round-trip floor: an attestation is three of them).
//! - `burst`: 1 000 agents attesting at once (default; `S18_AGENTS` overrides), printing the
//!   wall time, p50/p99 latency and the apiserver connections used. No rate limit applies:
//!   spire-rs has none yet (SPIRE's default is 1 attestation/s per source IP, which would
//!   make this 1 000 s from one address).
//!
//! `cargo bench -p spire-benches --bench s18_k8s_psat`
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use spire_id::TrustDomain;
use spire_k8s::{ApiClient, ClientConfig};
use spire_server_plugin::nodeattestor::{Challenger, K8sPsatAttestor, K8sPsatConfig, NodeAttestor};
use spire_test_k8s::{PodBuilder, TestApiServer, TokenReviewOutcome, node_json, token_review_user};
use tokio::runtime::Runtime;

struct NoChallenge;

#[async_trait::async_trait]
impl Challenger for NoChallenge {
    async fn challenge(&mut self, _: Vec<u8>) -> spire_server_plugin::Result<Vec<u8>> {
        unreachable!("k8s_psat does not challenge")
    }
}

struct Setup {
    api: TestApiServer,
    _dir: tempfile::TempDir,
    attestor: Arc<K8sPsatAttestor>,
    client: ApiClient,
}

/// A cluster with `agents` agent pods on as many nodes, each with its own token.
async fn setup(agents: usize) -> Setup {
    let api = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    for i in 0..agents {
        let (pod, pod_uid, node, node_uid) = names(i);
        api.put_node(node_json(&node, &node_uid, &[]));
        api.put_pod(
            PodBuilder::new(&pod, "spire", &pod_uid)
                .node(&node)
                .service_account("spire-agent")
                .host_ip("10.0.0.5")
                .build(),
        );
        api.set_token_review(
            &format!("token-{i}"),
            TokenReviewOutcome::authenticated(token_review_user(
                "spire",
                "spire-agent",
                &pod,
                &pod_uid,
                &node,
                &node_uid,
            )),
        );
    }
    let config = K8sPsatConfig::from_plugin_data(&json!({ "clusters": { "demo-cluster": {
        "service_account_allow_list": ["spire:spire-agent"],
        "kube_config_file": kubeconfig.to_str().unwrap(),
    }}}))
    .unwrap();
    let attestor =
        Arc::new(K8sPsatAttestor::new(&config, TrustDomain::new("example.org").unwrap()).unwrap());
    let client = ApiClient::new(ClientConfig::from_kubeconfig(&kubeconfig).unwrap()).unwrap();
    Setup {
        api,
        _dir: dir,
        attestor,
        client,
    }
}

fn names(i: usize) -> (String, String, String, String) {
    (
        format!("spire-agent-{i:05}"),
        format!("00000000-0000-4000-8000-{i:012}"),
        format!("node-{i:05}"),
        format!("10000000-0000-4000-8000-{i:012}"),
    )
}

fn payload(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({ "cluster": "demo-cluster", "token": format!("token-{i}") }))
        .unwrap()
}

async fn attest(attestor: &K8sPsatAttestor, i: usize) {
    let attestation = attestor.attest(payload(i), &mut NoChallenge).await.unwrap();
    assert!(attestation.agent_id.path().ends_with(&names(i).3));
}

fn single(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let setup = runtime.block_on(setup(1));
    let mut group = c.benchmark_group("s18");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("floor_get_node", |b| {
        b.iter(|| {
            runtime
                .block_on(setup.client.get_node(&names(0).2))
                .unwrap()
        });
    });
    group.bench_function("attest_one", |b| {
        b.iter(|| runtime.block_on(attest(&setup.attestor, 0)));
    });
    group.finish();
}

fn burst(_: &mut Criterion) {
    let agents: usize = std::env::var("S18_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let runtime = Runtime::new().unwrap();
    runtime.block_on(async {
        let setup = setup(agents).await;
        let connections_before = setup.api.connections();
        let started = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..agents)
            .map(|i| {
                let attestor = setup.attestor.clone();
                tokio::spawn(async move {
                    let begun = tokio::time::Instant::now();
                    attest(&attestor, i).await;
                    begun.elapsed()
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(agents);
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
        let wall = started.elapsed();
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "s18/burst: {agents} agents attested in {wall:.2?} ({:.0}/s); latency p50 {:.2?}, \
             p99 {:.2?}; apiserver connections opened: {}; requests: {}",
            agents as f64 / wall.as_secs_f64(),
            at(0.50),
            at(0.99),
            setup.api.connections() - connections_before,
            setup.api.request_count(),
        );
    });
}

criterion_group!(benches, single, burst);
criterion_main!(benches);
