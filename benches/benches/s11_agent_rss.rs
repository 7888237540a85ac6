//! S11: resident memory of the real `spire-agent` with 0, 1 000 and 10 000 cached
//! X509-SVIDs (`benches/benches/support`). The agent runs with
//! `x509_svid_cache_max_size = 10000`, so it prefetches an SVID for every entry without any
//! workload asking. Entries look like controller-managed ones (parent: the agent,
//! `k8s:ns:bench` + a random `k8s:pod-uid`, one DNS name) and are created through the admin
//! socket, 500 per BatchCreateEntry. The server logs at DEBUG, one "Signed X509 SVID" line
//! per workload SVID (with its entry ID); the bench waits until the server has signed one per
//! entry, lets the agent settle for 1 s (it stores each 500-SVID batch as the response
//! arrives), then reads VmRSS and VmHWM from /proc/<pid>/status.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: fail loudly, print numbers

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::{Domain, Options};
use tokio::time::Instant;

/// How long the agent is given after the last signature before memory is read.
const SETTLE: Duration = Duration::from_secs(1);

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Distinct entry IDs of the workload SVIDs the server has signed so far.
fn signed_entries(log: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("Signed X509 SVID"))
        .filter_map(|l| {
            let at = l.find("entry_id=")?;
            l[at + "entry_id=".len()..].split_whitespace().next()
        })
        .collect::<HashSet<_>>()
        .len()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn run() {
    let domain = Domain::start(&Options {
        push: true,
        server_log_level: "DEBUG",
        svid_cache_max_size: 10_000,
        ..Options::default()
    });
    let agent = domain.agent_pid();
    let mut admin = domain.admin().await;
    tokio::time::sleep(SETTLE).await;
    let mut rows = vec![(
        0,
        support::rss_kib(agent),
        vm_hwm_kib(agent),
        Duration::ZERO,
    )];

    let mut created = 0;
    for target in [1_000, 10_000] {
        let entries = (created..target)
            .map(|i| {
                let pod = format!("pod-uid:{}", uuid::Uuid::new_v4());
                let dns = format!("w{i}.bench.svc");
                support::entry(
                    &domain.agent_id,
                    &format!("/ns/bench/sa/w{i}"),
                    &[("k8s", "ns:bench"), ("k8s", pod.as_str())],
                    Some(dns.as_str()),
                )
            })
            .collect();
        let t0 = Instant::now();
        support::create_entries(&mut admin, entries).await;
        created = target;
        loop {
            let signed = signed_entries(&domain.server_log());
            assert!(signed <= target, "more SVIDs signed than entries");
            if signed == target {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "only {signed}/{target} SVIDs after 300 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let minted_in = t0.elapsed();
        tokio::time::sleep(SETTLE).await;
        rows.push((
            target,
            support::rss_kib(agent),
            vm_hwm_kib(agent),
            minted_in,
        ));
    }

    println!("binaries: {}", domain.bins.profile);
    for (n, rss, hwm, minted_in) in rows {
        println!(
            "s11/agent svids={n:>6}  VmRSS {:>7.1} MiB  VmHWM {:>7.1} MiB  (registered+minted in {minted_in:?})",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
        );
    }
}
