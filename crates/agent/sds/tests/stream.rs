//! The StreamSecrets rules of compat §5.4: per-stream versions and nonces, stale nonces
//! ignored, NACKs without a resend, the node of the first message reused.
#![allow(clippy::unwrap_used)]

mod support;

use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use spire_agent_cache::Cache;
use spire_agent_sds::SdsConfig;
use support::*;

fn setup() -> (TestCa, Cache, Served) {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry(
            "entry-a",
            "ns/default/sa/sleep",
            &[my_uid_selector()],
        )],
    );
    let served = serve(&cache, SdsConfig::default());
    (ca, cache, served)
}

/// A new SVID for entry-a: one cache update for this caller.
fn rotate(ca: &TestCa, cache: &Cache) {
    cache.store_svids(vec![(
        "entry-a".into(),
        ca.mint(&workload_id("ns/default/sa/sleep")),
    )]);
}

#[tokio::test]
async fn a_stale_nonce_is_ignored() {
    let (ca, cache, served) = setup();
    let mut client = served.client().await;
    let mut stream = EnvoyStream::open(&mut client, envoy_node((1, 28), &[]), &["default"])
        .await
        .unwrap();
    let first = stream.next().await.unwrap();
    assert_eq!(first.version_info, "1");
    // SPIRE's connection series count the open stream.
    let exposition = served.metrics.render();
    assert!(
        exposition.contains("\nspire_sds_api_connection 1\n"),
        "{exposition}"
    );
    assert!(
        exposition.contains("\nspire_sds_api_connections 1\n"),
        "{exposition}"
    );

    // Other names under a nonce that was never sent: ignored, so nothing is answered for them.
    let mut stale = request(None, &["ROOTCA"]);
    stale.version_info = first.version_info.clone();
    stale.response_nonce = "00000000".into();
    stream.send(stale).await;
    rotate(&ca, &cache);
    let next = stream.next().await.unwrap();
    assert_eq!(kinds(&secrets(&next)), ["tls:default"]);
    assert_eq!(next.version_info, "2");

    // The same change under the current nonce is answered at once.
    let mut fresh = request(None, &["ROOTCA"]);
    fresh.version_info = next.version_info.clone();
    fresh.response_nonce = next.nonce.clone();
    stream.send(fresh).await;
    let answered = stream.next().await.unwrap();
    assert_eq!(kinds(&secrets(&answered)), ["ctx:ROOTCA"]);
    assert_eq!(answered.version_info, "2");
    assert_ne!(answered.nonce, next.nonce);
}

#[tokio::test]
async fn a_nack_is_not_answered_with_a_resend() {
    let (ca, cache, served) = setup();
    let mut client = served.client().await;
    let mut stream = EnvoyStream::open(&mut client, envoy_node((1, 28), &[]), &["default"])
        .await
        .unwrap();
    let first = stream.next().await.unwrap();

    // Envoy rejects version 1: it repeats the version it had ("") with the nonce and an error.
    let mut nack = request(None, &["default"]);
    nack.response_nonce = first.nonce.clone();
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "failed to load certificate".into(),
        details: Vec::new(),
    });
    stream.send(nack).await;
    // No resend of version 1: the next response is the next change.
    rotate(&ca, &cache);
    let next = stream.next_acked().await.unwrap();
    assert_eq!(next.version_info, "2");
    assert_ne!(next.nonce, first.nonce);
}

#[tokio::test]
async fn the_node_of_the_first_message_is_reused() {
    let (_ca, _cache, served) = setup();
    let mut client = served.client().await;
    let disabled = [("disable_spiffe_cert_validation", Kind::BoolValue(true))];
    let mut stream = EnvoyStream::open(&mut client, envoy_node((1, 28), &disabled), &["ROOTCA"])
        .await
        .unwrap();
    let first = stream.next().await.unwrap();
    assert_eq!(context(&secrets(&first)[0]).0, "trusted_ca");

    // A later message without a node changes the names: still the first node's choice.
    let mut change = request(None, &["spiffe://example.org"]);
    change.version_info = first.version_info.clone();
    change.response_nonce = first.nonce.clone();
    stream.send(change).await;
    let second = stream.next().await.unwrap();
    assert_eq!(kinds(&secrets(&second)), ["ctx:spiffe://example.org"]);
    assert_eq!(context(&secrets(&second)[0]).0, "trusted_ca");
}

#[tokio::test]
async fn a_stream_without_any_node_gets_the_spiffe_validator() {
    let (_ca, _cache, served) = setup();
    let mut client = served.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(request(None, &["ROOTCA"])).await.unwrap();
    let mut responses = client
        .stream_secrets(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().unwrap();
    assert_eq!(context(&secrets(&first)[0]).0, "spiffe");
}

#[tokio::test]
async fn versions_are_per_stream_and_unchanged_names_are_not_resent() {
    let (ca, cache, served) = setup();
    let mut client = served.client().await;
    let node = envoy_node((1, 28), &[]);
    let mut a = EnvoyStream::open(&mut client, node.clone(), &["default"])
        .await
        .unwrap();
    assert_eq!(a.next_acked().await.unwrap().version_info, "1");
    rotate(&ca, &cache);
    assert_eq!(a.next_acked().await.unwrap().version_info, "2");
    // A stream opened now counts from its own start.
    let mut b = EnvoyStream::open(&mut client, node, &["default"])
        .await
        .unwrap();
    let b1 = b.next_acked().await.unwrap();
    assert_eq!(b1.version_info, "1");

    // The same names again (order and repetition aside) under the current nonce: no answer;
    // the next response is the next change.
    let mut same = request(None, &["default", "default"]);
    same.version_info = b1.version_info.clone();
    same.response_nonce = b1.nonce.clone();
    b.send(same).await;
    rotate(&ca, &cache);
    assert_eq!(b.next_acked().await.unwrap().version_info, "2");
    let a3: u64 = a.next_acked().await.unwrap().version_info.parse().unwrap();
    assert!(a3 >= 3, "stream a moved on to {a3}");
}
