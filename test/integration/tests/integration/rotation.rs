//! Rotation on a manual clock: past half their lifetime, the workload SVID on an open stream
//! and the agent's own SVID are replaced.

use std::time::Duration;

use spire_integration_tests::{
    ServerBuilder, entry, eventually, init_logging, leaf_serial, manual_clock, next_matching,
    uid_selector,
};

use crate::common::{assert_verifies, fetch_context_eventually, ids, serial};

const WORKLOAD: &str = "spiffe://example.org/workload";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svids_rotate_after_half_their_lifetime() {
    init_logging();
    let (clock, shared) = manual_clock();
    // One-minute agent SVIDs; the workload entry asks for one-minute SVIDs too. The server's
    // own SVID keeps the default hour, so it stays valid throughout.
    let server = ServerBuilder::new()
        .server_extra("agent_ttl = \"1m\"")
        .clock(shared)
        .start()
        .await
        .unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    let mut workload = entry(WORKLOAD, &agent_id, &[&uid_selector()]);
    workload.x509_svid_ttl = 60;
    server.create_entry(workload).await.unwrap();

    let client = agent.workload().await.unwrap();
    fetch_context_eventually(&client).await;
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = next_matching(&mut stream, "the first message", |_| true)
        .await
        .unwrap();
    assert_eq!(ids(&first), [WORKLOAD]);
    let first_serial = serial(&first.svids()[0]);
    let node_before = server.find_agent(&agent_id).await.unwrap().unwrap();
    let agent_svid_before = agent.stored_svid().unwrap();

    // Past half of both lifetimes (with the ±10 % jitter), well before either expires.
    clock.advance(Duration::from_secs(40));

    let rotated = next_matching(&mut stream, "a rotated workload SVID", |c| {
        c.svids().first().is_some_and(|s| serial(s) != first_serial)
    })
    .await
    .unwrap();
    assert_eq!(ids(&rotated), [WORKLOAD]);
    assert_verifies(&rotated, "example.org");

    // The agent renewed its own SVID: a new serial on disk and in the node record.
    let agent_svid_after = eventually("a renewed agent SVID on disk", || async {
        let stored = agent.stored_svid().unwrap();
        (!stored.is_empty() && stored != agent_svid_before).then_some(stored)
    })
    .await
    .unwrap();
    assert_ne!(
        leaf_serial(&agent_svid_after[0]).unwrap(),
        leaf_serial(&agent_svid_before[0]).unwrap()
    );
    eventually("the new serial in the node record", || async {
        let node = server.find_agent(&agent_id).await.unwrap()?;
        (node.x509svid_serial_number != node_before.x509svid_serial_number).then_some(())
    })
    .await
    .unwrap();

    // The agent keeps working with its renewed SVID (new mTLS connections): a new entry
    // still reaches the open stream.
    let later = "spiffe://example.org/after-rotation";
    server
        .create_entry(entry(later, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let both = next_matching(&mut stream, "an entry created after rotation", |c| {
        ids(c).iter().any(|id| id == later)
    })
    .await
    .unwrap();
    assert_eq!(both.svids().len(), 2);
    assert_verifies(&both, "example.org");

    drop(stream);
    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}
