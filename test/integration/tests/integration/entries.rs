//! From a registration entry to a workload SVID: join token and x509pop agents, entry
//! changes reaching open streams, and a client retrying after "no identity issued".

use spire_integration_tests::spiffe::WorkloadApiError;
use spire_integration_tests::{
    Dir, ServerBuilder, TestServer, chain_verifies, entry, init_logging, leaf_spiffe_id,
    next_matching, uid_selector,
};

use crate::common::{NodePki, assert_verifies, chain, fetch_context_eventually, ids};

const WORKLOAD: &str = "spiffe://example.org/workload";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_token_agent_serves_an_svid_that_chains_to_the_bundle() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let token = server.create_join_token().await.unwrap();
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let agent = server
        .agent()
        .await
        .unwrap()
        .join_token(&token)
        .start()
        .await
        .unwrap();
    assert_eq!(agent.agent_id().unwrap(), agent_id);

    let client = agent.workload().await.unwrap();
    let context = fetch_context_eventually(&client).await;
    assert_eq!(ids(&context), [WORKLOAD]);
    assert_verifies(&context, "example.org");
    // The bundle the workload got is the server's.
    let svid = &context.svids()[0];
    assert_eq!(leaf_spiffe_id(svid.leaf().as_ref()).unwrap(), WORKLOAD);
    let roots = server.bundle_roots().await.unwrap();
    assert!(chain_verifies(&chain(svid), &roots));

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509pop_agent_gets_entries_through_a_node_alias() {
    init_logging();
    let pki_dir = Dir::new().unwrap();
    let pki = NodePki::new(pki_dir.path(), "node-7");
    let server = ServerBuilder::new()
        .plugins_extra(&pki.server_plugin())
        .start()
        .await
        .unwrap();
    let alias = "spiffe://example.org/node/group-7";
    server
        .create_entry(entry(
            alias,
            "spiffe://example.org/spire/server",
            &["x509pop:subject:cn:node-7"],
        ))
        .await
        .unwrap();
    server
        .create_entry(entry(WORKLOAD, alias, &[&uid_selector()]))
        .await
        .unwrap();

    let agent = server
        .agent()
        .await
        .unwrap()
        .x509pop(&pki.key_path, &pki.cert_path)
        .start()
        .await
        .unwrap();
    let agent_id = agent.agent_id().unwrap();
    assert!(
        agent_id.starts_with("spiffe://example.org/spire/agent/x509pop/"),
        "{agent_id}"
    );
    let client = agent.workload().await.unwrap();
    let context = fetch_context_eventually(&client).await;
    assert_eq!(ids(&context), [WORKLOAD]);
    assert_verifies(&context, "example.org");
    let listed = server.find_agent(&agent_id).await.unwrap().unwrap();
    assert_eq!(listed.attestation_type, "x509pop");
    assert!(listed.can_reattest);

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_create_update_delete_reach_an_open_stream() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let client = agent.workload().await.unwrap();
    fetch_context_eventually(&client).await;

    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = next_matching(&mut stream, "the first message", |_| true)
        .await
        .unwrap();
    assert_eq!(ids(&first), [WORKLOAD]);

    // Create: a second identity appears.
    let second_id = "spiffe://example.org/second";
    let created = server
        .create_entry(entry(second_id, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let both = next_matching(&mut stream, "the created entry", |c| ids(c).len() == 2)
        .await
        .unwrap();
    let mut got = ids(&both);
    got.sort();
    assert_eq!(got, [second_id, WORKLOAD]);
    assert_verifies(&both, "example.org");

    // Update: the second identity gets a DNS name (a new SVID with it as CN/SAN).
    let mut updated = created.clone();
    updated.dns_names = vec!["second.example.org".into()];
    server.update_entry(updated).await.unwrap();
    let with_dns = next_matching(&mut stream, "the updated entry", |c| {
        c.svids()
            .iter()
            .any(|s| s.spiffe_id().to_string() == second_id && has_dns_name(s.leaf().as_ref()))
    })
    .await
    .unwrap();
    assert_eq!(with_dns.svids().len(), 2);

    // Delete: back to one identity.
    server.delete_entry(&created.id).await.unwrap();
    let one = next_matching(&mut stream, "the deleted entry", |c| ids(c).len() == 1)
        .await
        .unwrap();
    assert_eq!(ids(&one), [WORKLOAD]);

    drop(stream);
    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}

fn has_dns_name(der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.subject_alternative_name().unwrap().is_some_and(|san| {
        san.value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("second.example.org")))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_with_no_identity_gets_its_svid_once_the_entry_exists() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    let client = agent.workload().await.unwrap();

    let refused = client.fetch_x509_svid().await.unwrap_err();
    assert!(
        matches!(refused, WorkloadApiError::NoIdentityIssued),
        "{refused:?}"
    );

    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    // The client's retry loop (what a workload does on PermissionDenied).
    let svid = spire_integration_tests::eventually("the SVID after retries", || async {
        match client.fetch_x509_svid().await {
            Ok(svid) => Some(svid),
            Err(WorkloadApiError::NoIdentityIssued) => None,
            Err(other) => panic!("unexpected error while retrying: {other:?}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(svid.spiffe_id().to_string(), WORKLOAD);

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}
