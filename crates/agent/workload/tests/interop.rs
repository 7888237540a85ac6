//! The unmodified rust-spiffe `WorkloadApiClient` against our endpoint, a real agent cache
//! and SVIDs minted under a test CA.
#![allow(clippy::unwrap_used)]

mod support;

use spiffe::WorkloadApiClient;
use spiffe::workload_api::WorkloadApiError;
use spire_agent_workload::SECURITY_HEADER;
use spire_proto::workload::X509svidRequest;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use support::*;
use tokio_stream::StreamExt as _;
use tonic::Code;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The leaf verifies under one of the bundle's roots.
fn assert_chain_verifies(leaf_der: &[u8], roots: &[Vec<u8>]) {
    let (_, leaf) = X509Certificate::from_der(leaf_der).unwrap();
    let verified = roots.iter().any(|root| {
        let (_, root) = X509Certificate::from_der(root).unwrap();
        leaf.verify_signature(Some(root.public_key())).is_ok()
    });
    assert!(verified, "leaf does not chain to the bundle");
}

#[tokio::test]
async fn rust_spiffe_fetches_svid_and_bundles_and_sees_updates() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let served = serve(&cache, false);
    let client = WorkloadApiClient::connect_to(served.uri()).await.unwrap();

    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://example.org/workload-a"
    );
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new(TRUST_DOMAIN).unwrap();
    let bundle = bundles.get(&td).expect("own trust domain bundle");
    let roots: Vec<Vec<u8>> = bundle
        .authorities()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    assert_eq!(roots.as_slice(), std::slice::from_ref(&ca.root_der));
    let leaf = svid.leaf().as_ref().to_vec();
    assert_chain_verifies(&leaf, &roots);

    // An open stream sees a second identity once it is added.
    let mut contexts = client.stream_x509_contexts().await.unwrap();
    let first = contexts.next().await.unwrap().unwrap();
    assert_eq!(first.svids().len(), 1);
    set_entries(
        &cache,
        &ca,
        vec![
            entry("entry-a", "workload-a", &[my_uid_selector()]),
            entry("entry-b", "workload-b", &[my_uid_selector()]),
        ],
    );
    loop {
        let context = contexts.next().await.expect("stream stays open").unwrap();
        let ids: Vec<String> = context
            .svids()
            .iter()
            .map(|s| s.spiffe_id().to_string())
            .collect();
        if ids.len() == 2 {
            assert_eq!(
                ids,
                [
                    "spiffe://example.org/workload-a",
                    "spiffe://example.org/workload-b"
                ]
            );
            break;
        }
        assert_eq!(ids, ["spiffe://example.org/workload-a"]);
    }
}

#[tokio::test]
async fn no_identity_is_permission_denied_until_an_entry_matches() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry(
            "other",
            "other",
            &[spire_id::Selector::new("unix", "uid:4294967294").unwrap()],
        )],
    );
    let served = serve(&cache, false);
    let client = WorkloadApiClient::connect_to(served.uri()).await.unwrap();

    let error = client.fetch_x509_svid().await.unwrap_err();
    assert!(
        matches!(error, WorkloadApiError::NoIdentityIssued),
        "{error:?}"
    );
    let error = client.fetch_x509_bundles().await.unwrap_err();
    assert!(
        matches!(error, WorkloadApiError::NoIdentityIssued),
        "{error:?}"
    );

    set_entries(
        &cache,
        &ca,
        vec![entry("mine", "retried", &[my_uid_selector()])],
    );
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(svid.spiffe_id().to_string(), "spiffe://example.org/retried");
}

#[tokio::test]
async fn unauthenticated_verifiers_get_the_own_bundle() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    let served = serve(&cache, true);
    let client = WorkloadApiClient::connect_to(served.uri()).await.unwrap();
    let bundles = client.fetch_x509_bundles().await.unwrap();
    assert_eq!(bundles.len(), 1);
    let error = client.fetch_x509_svid().await.unwrap_err();
    assert!(
        matches!(error, WorkloadApiError::NoIdentityIssued),
        "{error:?}"
    );
}

#[tokio::test]
async fn raw_calls_need_the_security_header_and_health_does_not() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let served = serve(&cache, false);
    let channel = tonic::transport::Endpoint::try_from(served.uri())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut raw = SpiffeWorkloadApiClient::new(channel.clone());
    let status = raw.fetch_x509svid(X509svidRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "security header missing from request");

    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "true".parse().unwrap());
    let mut stream = raw.fetch_x509svid(request).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert_eq!(response.svids.len(), 1);
    assert_eq!(response.svids[0].bundle, ca.root_der);

    let mut request = tonic::Request::new(spire_proto::workload::JwtsvidRequest {
        audience: vec!["x".into()],
        spiffe_id: String::new(),
    });
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "true".parse().unwrap());
    // No JWT-SVID source on this endpoint.
    let status = raw.fetch_jwtsvid(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "could not fetch JWT-SVID: JWT-SVIDs are not available on this agent"
    );

    let mut health = spire_proto::health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(spire_proto::health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        spire_proto::health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn bundle_stream_skips_unchanged_bundles_and_sends_changes() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let served = serve(&cache, false);
    let client = WorkloadApiClient::connect_to(served.uri()).await.unwrap();
    let td = spiffe::TrustDomain::new(TRUST_DOMAIN).unwrap();
    let mut stream = client.stream_x509_bundles().await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.get(&td).unwrap().authorities().len(), 1);

    // A new identity changes the SVID stream but not the bundles: nothing is sent for it,
    // so the next message is the one for the new root below.
    set_entries(
        &cache,
        &ca,
        vec![
            entry("entry-a", "workload-a", &[my_uid_selector()]),
            entry("entry-b", "workload-b", &[my_uid_selector()]),
        ],
    );
    let mut bundle = ca.bundle();
    bundle.x509_authorities.push(spire_svid::X509Authority {
        asn1: TestCa::new().root_der,
        tainted: false,
    });
    bundle.sequence_number += 1;
    cache.update_bundles(bundle, Default::default());
    let next = stream.next().await.unwrap().unwrap();
    assert_eq!(next.get(&td).unwrap().authorities().len(), 2);
}

#[tokio::test]
async fn stopping_ends_open_streams_and_the_server() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let served = serve(&cache, false);
    let client = WorkloadApiClient::connect_to(served.uri()).await.unwrap();
    let mut contexts = client.stream_x509_contexts().await.unwrap();
    contexts.next().await.unwrap().unwrap();

    served.stop();
    while let Some(item) = contexts.next().await {
        item.unwrap();
    }
    let Served { task, .. } = served;
    task.await.expect("serve returns without panicking");
}

#[tokio::test]
async fn disable_workload_api_leaves_only_health_on_the_socket() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let served = serve_with(
        &cache,
        spire_agent_workload::EndpointConfig {
            disable_workload_api: true,
            ..spire_agent_workload::EndpointConfig::default()
        },
    );
    let channel = tonic::transport::Endpoint::try_from(served.uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(X509svidRequest {});
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "true".parse().unwrap());
    let status = SpiffeWorkloadApiClient::new(channel.clone())
        .fetch_x509svid(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    let reply = spire_proto::health::pb::health_client::HealthClient::new(channel)
        .check(spire_proto::health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        spire_proto::health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
