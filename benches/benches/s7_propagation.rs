//! S7: entry create → X509-SVID on an already-open FetchX509SVID stream, end to end with the
//! real binaries (`benches/benches/support`): the bench holds one Workload API stream open as
//! a unix workload (its own uid), creates an entry for that uid through the admin socket, and
//! times from the BatchCreateEntry call to the stream message that carries the new SPIFFE ID.
//!
//! Two runs: push (the server offers `spirers.server.push.v1.Push/Watch`) and polling (the
//! server runs with `experimental { disable_push = true }`, answers Watch with Unimplemented
//! like a SPIRE server, and the agent syncs every `sync_interval`, 5 s). Before each create the
//! bench waits a random delay (polling: uniform in [0, 5 s), so creates land at random points
//! of the agent's poll cycle; push: [0, 50 ms)).
//!
//! `S7_SAMPLES_PUSH` (default 200) and `S7_SAMPLES_POLL` (default 30) set the sample counts.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::{Domain, Options, Summary};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn samples(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let push = runtime.block_on(run(
        true,
        samples("S7_SAMPLES_PUSH", 200),
        Duration::from_millis(50),
    ));
    let poll = runtime.block_on(run(
        false,
        samples("S7_SAMPLES_POLL", 30),
        Duration::from_secs(5),
    ));
    println!("binaries: {}", support::bins().profile);
    for (name, (create, propagate)) in [("push", push), ("poll", poll)] {
        println!("s7/{name}/create_rpc  {create}");
        println!("s7/{name}/entry_to_svid {propagate}");
    }
}

/// One trust domain, `samples` creates; returns (create RPC latency, create → SVID latency).
async fn run(push: bool, samples: usize, max_delay: Duration) -> (Summary, Summary) {
    let domain = Domain::start(&Options {
        push,
        ..Options::default()
    });
    let uid = format!("uid:{}", support::my_uid());
    let selectors = [("unix", uid.as_str())];
    let mut admin = domain.admin().await;
    support::create_entries(
        &mut admin,
        vec![support::entry(
            &domain.agent_id,
            "/s7/base",
            &selectors,
            None,
        )],
    )
    .await;

    // Open the workload's stream once it has an identity (the base entry's SVID).
    let mut client = domain.workload().await;
    let started = Instant::now();
    let mut stream = loop {
        if let Ok(response) = client.fetch_x509svid(support::x509_request()).await {
            let mut stream = response.into_inner();
            if let Ok(Some(_)) = stream.message().await {
                break stream;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no identity for the base entry after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            let at = Instant::now();
            let ids: HashSet<String> = message.svids.into_iter().map(|s| s.spiffe_id).collect();
            if tx.send((at, ids)).is_err() {
                return;
            }
        }
    });

    let mut create = Vec::with_capacity(samples);
    let mut propagate = Vec::with_capacity(samples);
    for i in 0..samples {
        tokio::time::sleep(support::random_delay(max_delay)).await;
        while rx.try_recv().is_ok() {}
        let path = format!("/s7/e{i}");
        let want = format!("spiffe://{}{path}", support::TRUST_DOMAIN);
        let t0 = Instant::now();
        support::create_entries(
            &mut admin,
            vec![support::entry(&domain.agent_id, &path, &selectors, None)],
        )
        .await;
        create.push(t0.elapsed());
        let at = loop {
            let (at, ids) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("no SVID within 60 s")
                .expect("workload stream ended");
            if ids.contains(&want) {
                break at;
            }
        };
        propagate.push(at - t0);
    }
    (support::summarize(create), support::summarize(propagate))
}
