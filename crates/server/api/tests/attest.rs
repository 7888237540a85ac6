//! Node attestation and agent authorization over a real server: join tokens (single use,
//! expiry, the concurrent race), x509pop challenges, RenewAgent with serial promotion, and
//! the PermissionDenied details agents react to.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature as sig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use spire_proto::spire::api::server::agent::v1::{
    AgentX509svidParams, AttestAgentRequest, AttestAgentResponse, BanAgentRequest,
    CreateJoinTokenRequest, DeleteAgentRequest, PostStatusRequest, RenewAgentRequest,
    agent_client::AgentClient, attest_agent_request, attest_agent_response,
};
use spire_proto::spire::api::types::{self, permission_denied_details::Reason};
use spire_server_api::ApiContext;
use spire_server_api::authz::denied_details;
use spire_server_plugin::nodeattestor::{JoinTokenAttestor, NodeAttestors, X509PopAttestor};
use support::{Harness, TD, as_peer, id, pid};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

fn with_attestors(roots: Vec<Vec<u8>>) -> impl FnOnce(&mut ApiContext) {
    move |ctx| {
        let mut attestors = NodeAttestors::new();
        attestors.insert(Arc::new(JoinTokenAttestor::new(
            ctx.trust_domain.clone(),
            ctx.datastore.clone(),
            ctx.clock.clone(),
        )));
        if !roots.is_empty() {
            attestors.insert(Arc::new(
                X509PopAttestor::from_roots(roots, ctx.trust_domain.clone(), ctx.clock.clone())
                    .unwrap(),
            ));
        }
        ctx.node_attestors = Arc::new(attestors);
    }
}

fn admin(h: &Harness) -> AgentClient<tonic::transport::Channel> {
    AgentClient::new(h.channel.clone())
}

fn tcp(h: &Harness) -> AgentClient<tonic::transport::Channel> {
    AgentClient::new(h.tcp_channel.clone())
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

fn params(kind: &str, payload: Vec<u8>, csr: Vec<u8>) -> AttestAgentRequest {
    AttestAgentRequest {
        step: Some(attest_agent_request::Step::Params(
            attest_agent_request::Params {
                data: Some(types::AttestationData {
                    r#type: kind.into(),
                    payload,
                }),
                params: Some(AgentX509svidParams { csr }),
            },
        )),
    }
}

async fn create_token(h: &Harness, token: &str, ttl: i32) {
    admin(h)
        .create_join_token(CreateJoinTokenRequest {
            ttl,
            token: token.into(),
            agent_id: None,
        })
        .await
        .unwrap();
}

/// One-message attestation (no challenge): the result, or the stream's status.
async fn attest_once(
    h: &Harness,
    request: AttestAgentRequest,
) -> Result<attest_agent_response::Result, Status> {
    let mut responses = tcp(h)
        .attest_agent(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    match responses.message().await?.and_then(|m| m.step) {
        Some(attest_agent_response::Step::Result(result)) => Ok(result),
        other => panic!("unexpected response {other:?}"),
    }
}

fn serial_of(svid: &types::X509svid) -> String {
    spire_server_api::PeerSvid::from_der(&svid.cert_chain[0])
        .unwrap()
        .serial_number
}

fn reason(status: &Status) -> Reason {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    denied_details(status).unwrap().reason()
}

#[tokio::test]
async fn join_token_attest_renew_promote_ban_delete_expire() {
    let h = Harness::start_with(with_attestors(Vec::new())).await;
    create_token(&h, "tok1", 600).await;
    let result = attest_once(&h, params("join_token", b"tok1".to_vec(), csr()))
        .await
        .unwrap();
    let svid = result.svid.unwrap();
    let agent = id("/spire/agent/join_token/tok1");
    assert_eq!(svid.id, Some(pid(TD, "/spire/agent/join_token/tok1")));
    assert!(!result.reattestable);
    let first_serial = serial_of(&svid);
    let node = h.ds.fetch_attested_node(&agent).await.unwrap().unwrap();
    assert_eq!(node.cert_serial_number, first_serial);
    assert_eq!(node.attestation_type, "join_token");
    assert_eq!(node.cert_not_after, svid.expires_at);

    // Single use.
    let err = attest_once(&h, params("join_token", b"tok1".to_vec(), csr()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "failed to attest: join token does not exist or has already been used"
    );

    // Renew: stored as new, the current one stays.
    let agent_str = agent.to_string();
    let renewed = tcp(&h)
        .renew_agent(as_peer(
            &agent_str,
            &first_serial,
            RenewAgentRequest {
                params: Some(AgentX509svidParams { csr: csr() }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .svid
        .unwrap();
    let new_serial = serial_of(&renewed);
    assert_ne!(new_serial, first_serial);
    let node = h.ds.fetch_attested_node(&agent).await.unwrap().unwrap();
    assert_eq!(
        (
            node.cert_serial_number.as_str(),
            node.new_cert_serial_number.as_str()
        ),
        (first_serial.as_str(), new_serial.as_str())
    );

    // First use of the new SVID promotes it; the old one is then refused.
    tcp(&h)
        .post_status(as_peer(
            &agent_str,
            &new_serial,
            PostStatusRequest::default(),
        ))
        .await
        .unwrap();
    let node = h.ds.fetch_attested_node(&agent).await.unwrap().unwrap();
    assert_eq!(node.cert_serial_number, new_serial);
    assert_eq!(node.new_cert_serial_number, "");
    assert_eq!(node.cert_not_after, renewed.expires_at);
    let err = tcp(&h)
        .post_status(as_peer(
            &agent_str,
            &first_serial,
            PostStatusRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), Reason::AgentNotActive);
    assert_eq!(
        err.message(),
        format!(
            "agent {agent_str:?} expected to have serial number {new_serial:?}; has {first_serial:?}"
        )
    );

    // Missing / bad CSR and nil params.
    for (request, message) in [
        (RenewAgentRequest { params: None }, "params cannot be nil"),
        (
            RenewAgentRequest {
                params: Some(AgentX509svidParams { csr: Vec::new() }),
            },
            "missing CSR",
        ),
    ] {
        let err = tcp(&h)
            .renew_agent(as_peer(&agent_str, &new_serial, request))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, message)
        );
    }
    let err = tcp(&h)
        .renew_agent(as_peer(
            &agent_str,
            &new_serial,
            RenewAgentRequest {
                params: Some(AgentX509svidParams {
                    csr: b"junk".to_vec(),
                }),
            },
        ))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("failed to parse CSR"), "{err:?}");

    // Expired SVID.
    let expired = format!("{};{new_serial};{}", agent_str, h.now() - 1);
    let mut request = tonic::Request::new(PostStatusRequest::default());
    request
        .metadata_mut()
        .insert("x-test-peer", expired.parse().unwrap());
    let err = tcp(&h).post_status(request).await.unwrap_err();
    assert_eq!(reason(&err), Reason::AgentExpired);
    assert_eq!(
        err.message(),
        format!("agent {agent_str:?} SVID is expired")
    );

    // Banned: every call refused, and attesting again too.
    admin(&h)
        .ban_agent(BanAgentRequest {
            id: Some(pid(TD, agent.path())),
        })
        .await
        .unwrap();
    let err = tcp(&h)
        .post_status(as_peer(
            &agent_str,
            &new_serial,
            PostStatusRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), Reason::AgentBanned);
    create_token(&h, "tok1", 600).await;
    let err = attest_once(&h, params("join_token", b"tok1".to_vec(), csr()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::PermissionDenied, "failed to attest: agent is banned")
    );

    // Deleted: not attested.
    admin(&h)
        .delete_agent(DeleteAgentRequest {
            id: Some(pid(TD, agent.path())),
        })
        .await
        .unwrap();
    let err = tcp(&h)
        .post_status(as_peer(
            &agent_str,
            &new_serial,
            PostStatusRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), Reason::AgentNotAttested);

    // A caller that is not an agent ID keeps the generic denial.
    let err = tcp(&h)
        .post_status(as_peer(
            &format!("spiffe://{TD}/workload"),
            "1",
            PostStatusRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(denied_details(&err).is_none());
}

#[tokio::test]
async fn join_token_expiry_consumes_and_unsafe_tokens_are_refused() {
    let h = Harness::start_with(with_attestors(Vec::new())).await;
    create_token(&h, "short", 1).await;
    h.clock.advance(Duration::from_secs(10));
    let err = attest_once(&h, params("join_token", b"short".to_vec(), csr()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "join token expired")
    );
    let err = attest_once(&h, params("join_token", b"short".to_vec(), csr()))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "failed to attest: join token does not exist or has already been used"
    );

    create_token(&h, "a/b", 600).await;
    let err = attest_once(&h, params("join_token", b"a/b".to_vec(), csr()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // First-message validation.
    for (request, message) in [
        (AttestAgentRequest { step: None }, "params cannot be nil"),
        (
            params("", Vec::new(), csr()),
            "missing attestation data type",
        ),
        (
            params("join_token", b"x".to_vec(), Vec::new()),
            "missing CSR",
        ),
    ] {
        let err = attest_once(&h, request).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, message)
        );
    }
    let err = attest_once(&h, params("join_token", b"x".to_vec(), b"junk".to_vec()))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("failed to parse CSR"), "{err:?}");
    let err = attest_once(&h, params("tpm_devid", Vec::new(), csr()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("could not find node attestor type \"tpm_devid\"")
    );
}

#[tokio::test]
async fn twenty_concurrent_attestations_with_one_token_have_one_winner() {
    let h = Harness::start_with(with_attestors(Vec::new())).await;
    create_token(&h, "race", 600).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut client = tcp(&h);
        let request = params("join_token", b"race".to_vec(), csr());
        tasks.spawn(async move {
            let mut responses = client
                .attest_agent(tokio_stream::iter(vec![request]))
                .await?
                .into_inner();
            responses.message().await.map(|_| ())
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "failed to attest: join token does not exist or has already been used"
        );
    }
}

struct Pop {
    root: Vec<u8>,
    leaf: Vec<u8>,
    pkcs8: Vec<u8>,
}

fn x509pop_pki() -> Pop {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "pop-root");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = ca.self_signed(&ca_key).unwrap().der().to_vec();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::default();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "node-a");
    leaf.serial_number = Some(vec![0x01, 0x02].into());
    let leaf = leaf.signed_by(&key, &issuer).unwrap().der().to_vec();
    Pop {
        root,
        leaf,
        pkcs8: key.serialize_der(),
    }
}

/// The full x509pop exchange as an agent runs it.
async fn attest_x509pop(h: &Harness, pop: &Pop) -> Result<attest_agent_response::Result, Status> {
    let (tx, rx) = mpsc::channel(4);
    let payload =
        serde_json::to_vec(&serde_json::json!({"certificates": [B64.encode(&pop.leaf)]})).unwrap();
    tx.send(params("x509pop", payload, csr())).await.unwrap();
    let mut responses = tcp(h)
        .attest_agent(ReceiverStream::new(rx))
        .await?
        .into_inner();
    loop {
        let AttestAgentResponse { step } = responses.message().await?.unwrap();
        match step.unwrap() {
            attest_agent_response::Step::Challenge(challenge) => {
                let challenge: serde_json::Value = serde_json::from_slice(&challenge).unwrap();
                let nonce = B64
                    .decode(challenge["ecdsa_signature"]["nonce"].as_str().unwrap())
                    .unwrap();
                let mine = [9u8; 32];
                let key = sig::EcdsaKeyPair::from_pkcs8(
                    &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pop.pkcs8,
                )
                .unwrap();
                let rs = key
                    .sign(&SystemRandom::new(), &[nonce.as_slice(), &mine].concat())
                    .unwrap();
                let rs = rs.as_ref();
                let response = serde_json::json!({"ecdsa_signature": {
                    "nonce": B64.encode(mine), "r": B64.encode(&rs[..32]), "s": B64.encode(&rs[32..])}});
                tx.send(AttestAgentRequest {
                    step: Some(attest_agent_request::Step::ChallengeResponse(
                        serde_json::to_vec(&response).unwrap(),
                    )),
                })
                .await
                .unwrap();
            }
            attest_agent_response::Step::Result(result) => return Ok(result),
        }
    }
}

#[tokio::test]
async fn x509pop_attests_stores_selectors_and_reattestation_replaces_the_node() {
    let pop = x509pop_pki();
    let h = Harness::start_with(with_attestors(vec![pop.root.clone()])).await;
    let first = attest_x509pop(&h, &pop).await.unwrap();
    assert!(first.reattestable);
    let svid = first.svid.unwrap();
    let path = svid.id.as_ref().unwrap().path.clone();
    assert!(path.starts_with("/spire/agent/x509pop/"), "{path}");
    let agent = id(&path);
    let node = h.ds.fetch_attested_node(&agent).await.unwrap().unwrap();
    assert_eq!(node.attestation_type, "x509pop");
    assert!(node.can_reattest);
    let selectors: Vec<String> = node
        .selectors
        .iter()
        .map(|s| format!("{}:{}", s.selector_type(), s.value()))
        .collect();
    assert_eq!(
        selectors,
        ["x509pop:serialnumber:0102", "x509pop:subject:cn:node-a"]
    );

    let second = attest_x509pop(&h, &pop).await.unwrap().svid.unwrap();
    let node = h.ds.fetch_attested_node(&agent).await.unwrap().unwrap();
    assert_eq!(node.cert_serial_number, serial_of(&second));
    assert_ne!(serial_of(&second), serial_of(&svid));

    // A leaf from another CA is refused.
    let stranger = x509pop_pki();
    let err = attest_x509pop(&h, &stranger).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}
