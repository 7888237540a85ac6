//! `agent.tsv`: AttestAgent (join_token), RenewAgent, the PermissionDenied answers every agent
//! RPC gives a banned, deleted, superseded or expired agent, CreateJoinToken, and the admin
//! methods that name an agent (BanAgent, DeleteAgent, GetAgent).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spire_proto::spire::api::server::agent::v1::{
    AgentX509svidParams, AttestAgentRequest, BanAgentRequest, CreateJoinTokenRequest,
    DeleteAgentRequest, GetAgentRequest, ListAgentsRequest, RenewAgentRequest,
    agent_client::AgentClient, attest_agent_request, attest_agent_response,
};
use spire_proto::spire::api::types::{self, permission_denied_details::Reason};
use spire_server_api::ApiContext;
use spire_server_api::authz::denied_details;
use spire_server_plugin::nodeattestor::{JoinTokenAttestor, NodeAttestors};
use tonic::Status;
use tonic::transport::Channel;

use crate::support::{Harness, id};
use crate::table::{self, Input, Outcome, Row, Tally};
use crate::{check_revision, proto_id, revision};

fn with_join_token(ctx: &mut ApiContext) {
    let mut attestors = NodeAttestors::new();
    attestors.insert(Arc::new(JoinTokenAttestor::new(
        ctx.trust_domain.clone(),
        ctx.datastore.clone(),
        ctx.clock.clone(),
    )));
    ctx.node_attestors = Arc::new(attestors);
}

fn csr_der() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

/// `"valid"` (default), `"empty"` or `"garbage"`.
fn csr(input: &mut Input) -> Vec<u8> {
    match input.string("csr").as_deref() {
        None | Some("valid") => csr_der(),
        Some("empty") => Vec::new(),
        Some("garbage") => b"junk".to_vec(),
        Some(other) => panic!("unknown csr {other:?}"),
    }
}

fn admin(h: &Harness) -> AgentClient<Channel> {
    AgentClient::new(h.channel.clone())
}

fn tcp(h: &Harness) -> AgentClient<Channel> {
    AgentClient::new(h.tcp_channel.clone())
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

/// One AttestAgent stream with one message: the result or the stream's status.
async fn attest_once(h: &Harness, request: AttestAgentRequest) -> Result<(), Status> {
    let mut responses = tcp(h)
        .attest_agent(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    match responses.message().await?.and_then(|m| m.step) {
        Some(attest_agent_response::Step::Result(_)) => Ok(()),
        other => panic!("unexpected response {other:?}"),
    }
}

fn attest_request(kind: &str, payload: &str, csr: Vec<u8>) -> AttestAgentRequest {
    AttestAgentRequest {
        step: Some(attest_agent_request::Step::Params(
            attest_agent_request::Params {
                data: Some(types::AttestationData {
                    r#type: kind.into(),
                    payload: payload.as_bytes().to_vec(),
                }),
                params: Some(AgentX509svidParams { csr }),
            },
        )),
    }
}

/// Prepares the join token a row names: `fresh` (created), `used` (created and attested
/// once), `expired` (created with a 1 s TTL, then the clock moves 2 s), `banned` (created,
/// attested, the agent banned, the token created again).
async fn token_setup(h: &Harness, setup: &str, token: &str) {
    match setup {
        "fresh" => create_token(h, token, 600).await,
        "used" => {
            create_token(h, token, 600).await;
            attest_once(h, attest_request("join_token", token, csr_der()))
                .await
                .unwrap();
        }
        "expired" => {
            create_token(h, token, 1).await;
            h.clock.advance(Duration::from_secs(2));
        }
        "banned" => {
            create_token(h, token, 600).await;
            attest_once(h, attest_request("join_token", token, csr_der()))
                .await
                .unwrap();
            let agent = id(&format!("/spire/agent/join_token/{token}"));
            admin(h)
                .ban_agent(BanAgentRequest {
                    id: Some(types::Spiffeid {
                        trust_domain: agent.trust_domain().to_string(),
                        path: agent.path().to_owned(),
                    }),
                })
                .await
                .unwrap();
            create_token(h, token, 600).await;
        }
        other => panic!("unknown token_setup {other:?}"),
    }
}

/// The caller of an agent RPC: `agent` (attested, serial 100), `banned`, `deleted`,
/// `stale-serial` (the node moved on to serial 201) or `expired` (its SVID expired 1 s ago).
async fn caller<T>(h: &Harness, kind: &str, i: usize, message: T) -> tonic::Request<T> {
    // Each refused kind is used once, so its ID is fixed (the row's message names it).
    let path = match kind {
        "agent" => format!("/spire/agent/test/row{i}"),
        other => format!("/spire/agent/test/{other}"),
    };
    let (serial, expires_at) = match kind {
        "agent" => {
            h.add_node(&path, "100", "test").await;
            ("100", i64::MAX)
        }
        "banned" => {
            h.add_node(&path, "", "test").await;
            ("100", i64::MAX)
        }
        "deleted" => ("100", i64::MAX),
        "stale-serial" => {
            h.add_node(&path, "201", "test").await;
            ("200", i64::MAX)
        }
        "expired" => {
            h.add_node(&path, "100", "test").await;
            ("100", h.now() - 1)
        }
        other => panic!("unknown caller {other:?}"),
    };
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "x-test-peer",
        format!("{};{serial};{expires_at}", id(&path))
            .parse()
            .unwrap(),
    );
    request
}

fn reason(name: &str) -> Reason {
    Reason::from_str_name(name).unwrap_or_else(|| panic!("unknown reason {name}"))
}

async fn run(h: &Harness, i: usize, row: &Row) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    let mut expect_reason = input.string("reason").map(|r| reason(&r));
    let mut token_gone = None;
    let (before, result): (i64, Result<(), Status>) = match row.surface.as_str() {
        "AttestAgent" => {
            let payload = input.string("payload").unwrap_or_default();
            if let Some(setup) = input.string("token_setup") {
                token_setup(h, &setup, &payload).await;
                if setup == "expired" {
                    token_gone = Some(payload.clone());
                }
            }
            let attempts = usize::try_from(input.i64("concurrent").unwrap_or(1)).unwrap();
            let request = match input.take("params") {
                Some(Value::Null) => AttestAgentRequest { step: None },
                Some(other) => panic!("params: {other}"),
                None => {
                    let kind = input.string("type").unwrap_or_else(|| "join_token".into());
                    let csr = csr(&mut input);
                    if input.take("data") == Some(Value::Null) {
                        AttestAgentRequest {
                            step: Some(attest_agent_request::Step::Params(
                                attest_agent_request::Params {
                                    data: None,
                                    params: Some(AgentX509svidParams { csr }),
                                },
                            )),
                        }
                    } else {
                        attest_request(&kind, &payload, csr)
                    }
                }
            };
            if input.take("agent_version").is_some() {
                return Err("our AttestAgent has no agent version to send".into());
            }
            input.done()?;
            let before = revision(h).await;
            if attempts == 1 {
                (before, attest_once(h, request).await)
            } else {
                // N concurrent uses of one token: exactly one succeeds, the others answer
                // the row's status.
                let calls: Vec<_> = (0..attempts)
                    .map(|_| {
                        let request = attest_request("join_token", &payload, csr_der());
                        let channel = h.tcp_channel.clone();
                        tokio::spawn(async move {
                            let mut responses = AgentClient::new(channel)
                                .attest_agent(tokio_stream::iter(vec![request]))
                                .await?
                                .into_inner();
                            responses.message().await.map(|_| ())
                        })
                    })
                    .collect();
                let mut ok = 0;
                let mut failure = None;
                for call in calls {
                    match call.await.unwrap() {
                        Ok(()) => ok += 1,
                        Err(status) => failure = Some(status),
                    }
                }
                let after = revision(h).await;
                let mut outcome = failure.as_ref().map_or_else(Outcome::ok, Outcome::status);
                outcome.check(
                    ok == 1,
                    format!("{ok} of {attempts} attestations succeeded"),
                );
                // The one success stores its node and the node's selectors.
                check_revision(&mut outcome, before, after, 2);
                return Ok(outcome);
            }
        }
        "RenewAgent" => {
            let who = input.string("caller").unwrap_or_else(|| "agent".into());
            let message = match input.take("params") {
                Some(Value::Null) => RenewAgentRequest { params: None },
                Some(other) => panic!("params: {other}"),
                None => RenewAgentRequest {
                    params: Some(AgentX509svidParams {
                        csr: csr(&mut input),
                    }),
                },
            };
            input.done()?;
            let request = caller(h, &who, i, message).await;
            let before = revision(h).await;
            (before, tcp(h).renew_agent(request).await.map(|_| ()))
        }
        "CreateJoinToken" => {
            let token = format!("row{i}-token");
            let request = CreateJoinTokenRequest {
                ttl: i32::try_from(input.i64("ttl").unwrap_or(600)).unwrap(),
                token: token.clone(),
                agent_id: proto_id(&mut input, "agent_id").flatten(),
            };
            input.done()?;
            token_gone = Some(token);
            let before = revision(h).await;
            (
                before,
                admin(h).create_join_token(request).await.map(|_| ()),
            )
        }
        method @ ("BanAgent" | "DeleteAgent" | "GetAgent") => {
            let agent = proto_id(&mut input, "id").ok_or("no id")?;
            input.done()?;
            let mut client = admin(h);
            let before = revision(h).await;
            let result = match method {
                "BanAgent" => client
                    .ban_agent(BanAgentRequest { id: agent })
                    .await
                    .map(|_| ()),
                "DeleteAgent" => client
                    .delete_agent(DeleteAgentRequest { id: agent })
                    .await
                    .map(|_| ()),
                _ => client
                    .get_agent(GetAgentRequest {
                        id: agent,
                        output_mask: None,
                    })
                    .await
                    .map(|_| ()),
            };
            (before, result)
        }
        "ListAgents" => {
            let request = ListAgentsRequest {
                page_size: i32::try_from(input.i64("page_size").unwrap_or(0)).unwrap(),
                page_token: input.string("page_token").unwrap_or_default(),
                ..Default::default()
            };
            input.done()?;
            let before = revision(h).await;
            (before, admin(h).list_agents(request).await.map(|_| ()))
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    let mut outcome = Outcome::of(&result);
    check_revision(&mut outcome, before, revision(h).await, 0);
    if let Some(want) = expect_reason.take() {
        let got = result
            .as_ref()
            .err()
            .and_then(denied_details)
            .map(|d| d.reason());
        outcome.check(
            got == Some(want),
            format!("PermissionDenied details {got:?}, want {want:?}"),
        );
    }
    if let Some(token) = token_gone {
        let stored = h.ds.fetch_join_token(&token).await.unwrap();
        outcome.check(stored.is_none(), format!("join token {token:?} is stored"));
    }
    Ok(outcome)
}

#[tokio::test]
async fn agent_catalogue() {
    let h = Harness::start_with(with_join_token).await;
    let mut tally = Tally::new("agent.tsv");
    for (i, row) in table::load("agent.tsv").iter().enumerate() {
        let outcome = run(&h, i, row).await;
        tally.record(row, outcome);
    }
    tally.finish();
}
