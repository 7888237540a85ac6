//! SPIRE's per-IP rate limits through the real services: AttestAgent 1/s and
//! BatchNewX509SVID 500 CSRs/s per TCP address, the Unix socket exempt, `signing = false`
//! honoured. Time is the harness's manual clock: nothing here sleeps.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use spire_proto::spire::api::server::agent::v1::{AttestAgentRequest, agent_client::AgentClient};
use spire_proto::spire::api::server::svid::v1::{
    BatchNewX509svidRequest, NewX509svidParams, svid_client::SvidClient,
};
use spire_server_api::ratelimit::RateLimits;
use support::*;
use tonic::{Code, Request, Status};

const AGENT: &str = "/spire/agent/x509pop/node-1";

/// An AttestAgent call whose first message has no params, from `addr` (a Unix-socket call
/// when `None`), with a deadline shorter than the attestation rate's 1 s.
async fn attest(h: &Harness, addr: Option<&str>) -> Status {
    let mut request = Request::new(tokio_stream::iter(vec![AttestAgentRequest { step: None }]));
    request.set_timeout(Duration::from_millis(900));
    let request = match addr {
        Some(addr) => from_addr(request, addr),
        None => request,
    };
    let result = AgentClient::new(h.tcp_channel.clone())
        .attest_agent(request)
        .await;
    match result {
        Ok(mut responses) => responses.get_mut().message().await.unwrap_err(),
        Err(status) => status,
    }
}

/// Passed the limiter: the handler itself refused the empty first message.
fn served(status: &Status) -> bool {
    status.code() == Code::InvalidArgument && status.message() == "params cannot be nil"
}

async fn batch(h: &Harness, addr: Option<&str>, n: usize) -> Result<usize, Status> {
    let params = (0..n)
        .map(|i| NewX509svidParams {
            entry_id: format!("no-such-entry-{i}"),
            csr: vec![1],
        })
        .collect();
    let request = as_peer(
        &id(AGENT).to_string(),
        "77",
        BatchNewX509svidRequest { params },
    );
    let request = match addr {
        Some(addr) => from_addr(request, addr),
        None => request,
    };
    SvidClient::new(h.tcp_channel.clone())
        .batch_new_x509svid(request)
        .await
        .map(|r| r.into_inner().results.len())
}

async fn with_agent(h: Harness) -> Harness {
    h.add_node(AGENT, "77", "x509pop").await;
    h
}

#[tokio::test]
async fn a_second_attestation_from_one_address_waits_for_the_clock_another_proceeds() {
    let h = Harness::start().await;
    assert!(served(&attest(&h, Some("192.0.2.1:4000")).await));

    // Within the same second the next call from that address would have to wait 1 s, past
    // its 900 ms deadline: refused at once, with SPIRE's message.
    let refused = attest(&h, Some("192.0.2.1:4001")).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "rejecting request due to attest agent rate limiting: \
         rate: Wait(n=1) would exceed context deadline"
    );
    // Another address has its own bucket.
    assert!(served(&attest(&h, Some("192.0.2.2:4000")).await));
    // The Unix socket is never limited.
    for _ in 0..3 {
        assert!(served(&attest(&h, None).await));
    }

    h.clock.advance(Duration::from_secs(1));
    assert!(served(&attest(&h, Some("192.0.2.1:4002")).await));
}

#[tokio::test]
async fn a_batch_of_501_csrs_fails_with_spires_message() {
    let h = with_agent(Harness::start().await).await;
    let err = batch(&h, Some("192.0.2.1:4000"), 501).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        "rejecting request due to certificate signing rate limiting: \
         rate (501) exceeds burst size (500)"
    );
    // 500 is the burst: served, item by item.
    assert_eq!(batch(&h, Some("192.0.2.1:4000"), 500).await.unwrap(), 500);
    // Over the Unix socket nothing is limited.
    assert_eq!(batch(&h, None, 501).await.unwrap(), 501);
}

#[tokio::test]
async fn signing_false_lifts_the_signing_limit() {
    let h = with_agent(
        Harness::start_with(|ctx| {
            ctx.rate_limits = Arc::new(RateLimits::new(ctx.clock.clone(), true, false));
        })
        .await,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(batch(&h, Some("192.0.2.1:4000"), 501).await.unwrap(), 501);
    }
    // Attestation stays limited.
    assert!(served(&attest(&h, Some("192.0.2.1:4000")).await));
    let refused = attest(&h, Some("192.0.2.1:4000")).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
}
