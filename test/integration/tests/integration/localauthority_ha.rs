//! Forced CA rotation across two servers sharing one PostgreSQL database, with a federated
//! peer. Server B signs for the agent (its Workload API stream and its Envoy's SDS streams
//! are open); server A serves `example.org`'s bundle endpoint; server P, of
//! `example-federated.org`, federates with `example.org` through A. B's CA goes through
//! prepare → activate → taint → revoke: the workload and Envoy get an SVID the tainted CA
//! did not sign, then a bundle without it; A (through the shared change feed) and P (through
//! A's bundle endpoint) drop the revoked root too.

use spire_integration_tests::{
    ServerBuilder, chain_verifies, entry, eventually, free_port, init_logging, next_matching,
    types, uid_selector,
};
use spire_proto::spire::api::server::localauthority::v1::{
    self as la, local_authority_client::LocalAuthorityClient,
};

use crate::common::{assert_verifies, chain, fetch_context_eventually, ids};
use crate::localauthority::roots;
use crate::postgres::TempDatabase;
use crate::sds;

const EXAMPLE: &str = "example.org";
const FEDERATED: &str = "example-federated.org";
const WORKLOAD: &str = "spiffe://example.org/workload";
const BUNDLE_NAME: &str = "spiffe://example.org";

fn bundle_roots(bundle: &types::Bundle) -> Vec<Vec<u8>> {
    bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.clone())
        .collect()
}

/// True when `chain` verifies against `roots` but not against `tainted`.
fn signed_without(chain: &[Vec<u8>], roots: &[Vec<u8>], tainted: &[u8]) -> bool {
    !chain_verifies(chain, &[tainted.to_vec()]) && chain_verifies(chain, roots)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods, clippy::print_stdout)] // Instant::now, println!: the figures
async fn taint_and_revoke_reach_streams_the_other_server_and_the_federated_peer() {
    init_logging();
    let Some(database) = TempDatabase::create().await else {
        return;
    };
    let endpoint_port = free_port().unwrap();
    let server_a = ServerBuilder::new()
        .postgres(&database.url)
        .server_extra(&format!(
            r#"federation {{
        bundle_endpoint {{
            address = "127.0.0.1"
            port = {endpoint_port}
            profile "https_spiffe" {{}}
        }}
    }}"#
        ))
        .start()
        .await
        .unwrap();
    let server_b = ServerBuilder::new()
        .postgres(&database.url)
        .start()
        .await
        .unwrap();
    let peer = ServerBuilder::new()
        .trust_domain(FEDERATED)
        .start()
        .await
        .unwrap();

    // P bootstraps example.org's bundle by hand, then follows A's endpoint.
    let bundle = eventually("both servers' roots in the shared bundle", || async {
        let bundle = server_a.bundle().await.ok()?;
        (bundle.x509_authorities.len() == 2).then_some(bundle)
    })
    .await
    .unwrap();
    peer.set_federated_bundle(bundle).await.unwrap();
    peer.create_spiffe_federation(
        EXAMPLE,
        &format!("https://127.0.0.1:{endpoint_port}"),
        "spiffe://example.org/spire/server",
    )
    .await
    .unwrap();

    // The agent is B's and polls only hourly: what it gets below is pushed.
    let agent = server_b
        .agent()
        .await
        .unwrap()
        .join_token(&server_b.create_join_token().await.unwrap())
        .agent_extra("experimental { sync_interval = \"1h\" }")
        .start()
        .await
        .unwrap();
    let agent_id = agent.agent_id().unwrap();
    server_b
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let client = agent.workload().await.unwrap();
    fetch_context_eventually(&client).await;
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = next_matching(&mut stream, "the first message", |c| ids(c) == [WORKLOAD])
        .await
        .unwrap();
    let mut sds_client = sds::sds_client(&agent).await;
    let (mut sds_svid, first_sds) = sds::open_acked(&mut sds_client, &[WORKLOAD]).await;
    let (mut sds_bundle, _) = sds::open_acked(&mut sds_client, &[BUNDLE_NAME]).await;
    assert_eq!(
        sds::sds_chain(&first_sds, WORKLOAD).unwrap(),
        chain(&first.svids()[0])
    );

    // B's active authority signed the workload's SVID.
    let mut authorities = LocalAuthorityClient::new(server_b.admin_channel().await.unwrap());
    let old_id = authorities
        .get_x509_authority_state(la::GetX509AuthorityStateRequest {})
        .await
        .unwrap()
        .into_inner()
        .active
        .unwrap()
        .authority_id;
    let old_root = roots(&first)
        .into_iter()
        .find(|root| chain_verifies(&chain(&first.svids()[0]), std::slice::from_ref(root)))
        .expect("the root that signed the SVID");

    // Prepare publishes B's next root everywhere before it signs; activate makes it sign.
    let prepared = authorities
        .prepare_x509_authority(la::PrepareX509AuthorityRequest {})
        .await
        .unwrap()
        .into_inner()
        .prepared_authority
        .unwrap();
    next_matching(&mut stream, "a bundle with B's prepared root", |c| {
        roots(c).len() == 3
    })
    .await
    .unwrap();
    authorities
        .activate_x509_authority(la::ActivateX509AuthorityRequest {
            authority_id: prepared.authority_id.clone(),
        })
        .await
        .unwrap();

    // Taint: the open streams get an SVID the tainted CA did not sign.
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
            .is_some_and(|s| signed_without(&chain(s), &roots(c), &old_root))
    })
    .await
    .unwrap();
    let taint_ms = started.elapsed().as_millis();
    assert_eq!(ids(&rotated), [WORKLOAD]);
    assert_verifies(&rotated, EXAMPLE);
    let rotated_roots = roots(&rotated);
    sds::next_acked_matching(
        &mut sds_svid,
        "an SDS SVID not signed by the tainted CA",
        |r| {
            sds::sds_chain(r, WORKLOAD)
                .is_some_and(|c| signed_without(&c, &rotated_roots, &old_root))
        },
    )
    .await;
    // A sees the taint in the shared bundle.
    eventually("the tainted flag through server A", || async {
        let bundle = server_a.bundle().await.ok()?;
        bundle
            .x509_authorities
            .iter()
            .any(|a| a.asn1 == old_root && a.tainted)
            .then_some(())
    })
    .await
    .unwrap();

    // Revoke: the root leaves the bundle on both streams, at A, and at the federated peer.
    let started = std::time::Instant::now();
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
    let revoke_ms = started.elapsed().as_millis();
    println!(
        "two servers on PostgreSQL: taint → new workload SVID {taint_ms} ms, \
         revoke → workload bundle without the root {revoke_ms} ms"
    );
    assert_eq!(roots(&revoked).len(), 2);
    assert_verifies(&revoked, EXAMPLE);
    let mut sorted_revoked = roots(&revoked);
    sorted_revoked.sort();
    sds::next_acked_matching(
        &mut sds_bundle,
        "an SDS bundle without the revoked root",
        |r| {
            sds::sds_roots(r, BUNDLE_NAME, EXAMPLE).is_some_and(|mut roots| {
                roots.sort();
                roots == sorted_revoked
            })
        },
    )
    .await;
    let at_a = bundle_roots(&server_a.bundle().await.unwrap());
    assert!(
        !at_a.contains(&old_root),
        "server A still lists the revoked root"
    );
    assert_eq!(at_a.len(), 2);
    eventually("the federated peer without the revoked root", || async {
        peer.refresh_bundle(EXAMPLE).await.ok()?;
        let stored = peer.federated_bundle(EXAMPLE).await.ok()??;
        let stored = bundle_roots(&stored);
        (!stored.contains(&old_root) && stored.len() == 2).then_some(())
    })
    .await
    .unwrap();

    drop((stream, sds_svid, sds_bundle, sds_client));
    agent.stop().await.unwrap();
    peer.stop().await.unwrap();
    server_b.stop().await.unwrap();
    server_a.stop().await.unwrap();
    database.drop().await;
}
