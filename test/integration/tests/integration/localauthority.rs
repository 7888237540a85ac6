//! Forced CA rotation through the LocalAuthority API with an agent and an open Workload API
//! stream: prepare → activate → taint (the stream gets an SVID the tainted CA did not sign,
//! and the agent renews its own SVID) → revoke (the stream gets a bundle without it).

use spire_integration_tests::{
    ServerBuilder, chain_verifies, entry, eventually, init_logging, next_matching, uid_selector,
};
use spire_proto::spire::api::server::localauthority::v1::{
    self as la, local_authority_client::LocalAuthorityClient,
};

use crate::common::{assert_verifies, chain, fetch_context_eventually, ids};

const WORKLOAD: &str = "spiffe://example.org/workload";

/// `example.org`'s roots in a Workload API context.
pub(crate) fn roots(context: &spire_integration_tests::spiffe::X509Context) -> Vec<Vec<u8>> {
    let td = spire_integration_tests::spiffe::TrustDomain::new("example.org").unwrap();
    context
        .bundle_set()
        .get(&td)
        .map(|b| {
            b.authorities()
                .iter()
                .map(|c| c.as_ref().to_vec())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // Instant::now: the taint-to-workload figure is reported
async fn taint_reaches_the_workload_stream_and_revoke_removes_the_root() {
    init_logging();
    let server = ServerBuilder::new().start().await.unwrap();
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
    let old_root = server.bundle_roots().await.unwrap();
    assert_eq!(old_root.len(), 1);
    let old_root = old_root[0].clone();
    assert!(chain_verifies(
        &chain(&first.svids()[0]),
        std::slice::from_ref(&old_root)
    ));

    let mut authorities = LocalAuthorityClient::new(server.admin_channel().await.unwrap());
    let state = authorities
        .get_x509_authority_state(la::GetX509AuthorityStateRequest {})
        .await
        .unwrap()
        .into_inner();
    let old_id = state.active.unwrap().authority_id;

    // Prepare: the new root reaches the workload before anything is signed by it.
    let prepared = authorities
        .prepare_x509_authority(la::PrepareX509AuthorityRequest {})
        .await
        .unwrap()
        .into_inner()
        .prepared_authority
        .unwrap();
    next_matching(&mut stream, "a bundle with the prepared root", |c| {
        roots(c).len() == 2
    })
    .await
    .unwrap();
    authorities
        .activate_x509_authority(la::ActivateX509AuthorityRequest {
            authority_id: prepared.authority_id.clone(),
        })
        .await
        .unwrap();

    // Taint: the SVID on the open stream is replaced by one the old CA did not sign.
    let started = std::time::Instant::now();
    authorities
        .taint_x509_authority(la::TaintX509AuthorityRequest {
            authority_id: old_id.clone(),
        })
        .await
        .unwrap();
    let rotated = next_matching(&mut stream, "an SVID not signed by the tainted CA", |c| {
        c.svids()
            .first()
            .is_some_and(|s| !chain_verifies(&chain(s), std::slice::from_ref(&old_root)))
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    eprintln!("taint → new workload SVID on the open stream: {elapsed:?}");
    assert_eq!(ids(&rotated), [WORKLOAD]);
    assert_verifies(&rotated, "example.org");

    // The agent renews its own SVID too, before the old root goes away.
    eventually("an agent SVID not signed by the tainted CA", || async {
        let stored = agent.stored_svid().ok()?;
        (!stored.is_empty() && !chain_verifies(&stored, std::slice::from_ref(&old_root)))
            .then_some(())
    })
    .await
    .unwrap();

    // Revoke: the bundle on the stream loses the old root; the SVID still verifies.
    authorities
        .revoke_x509_authority(la::RevokeX509AuthorityRequest {
            authority_id: old_id.clone(),
        })
        .await
        .unwrap();
    let revoked = next_matching(&mut stream, "a bundle without the revoked root", |c| {
        !roots(c).contains(&old_root)
    })
    .await
    .unwrap();
    assert_eq!(roots(&revoked).len(), 1);
    assert_verifies(&revoked, "example.org");
    assert_eq!(server.bundle_roots().await.unwrap().len(), 1);

    // The agent keeps working over mTLS with its renewed SVID: a new entry still arrives.
    let later = "spiffe://example.org/after-revoke";
    server
        .create_entry(entry(later, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    next_matching(&mut stream, "an entry created after the revocation", |c| {
        ids(c).len() == 2
    })
    .await
    .unwrap();
}
