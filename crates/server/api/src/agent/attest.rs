//! The agent-facing methods: `AttestAgent` (node attestation, with challenges over the
//! stream), `RenewAgent` (a new SVID for an attested agent) and their SPIRE messages.

use spire_id::{SelectorSet, SpiffeId};
use spire_proto::spire::api::server::agent::v1::{
    AttestAgentRequest, AttestAgentResponse, RenewAgentRequest, RenewAgentResponse,
    attest_agent_request, attest_agent_response,
};
use spire_proto::spire::api::types;
use spire_server_datastore::{AttestedNode, Error as DsError, NodeMask};
use spire_server_plugin::Error as PluginError;
use spire_server_plugin::nodeattestor::{AttestCode, Attestation, Challenger, NodeAttestor};
use spire_svid::CsrError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::AgentService;
use crate::AuthorizedCaller;
use crate::authz::PeerSvid;
use crate::convert::id_to_proto;
use crate::status::{internal, make_err};

/// The response stream of `AttestAgent`: challenges, then the result or the error.
pub type AttestStream = ReceiverStream<Result<AttestAgentResponse, Status>>;

/// The `AttestAgent` stream seen by a NodeAttestor.
struct StreamChallenger<'a> {
    requests: &'a mut Streaming<AttestAgentRequest>,
    responses: &'a mpsc::Sender<Result<AttestAgentResponse, Status>>,
}

/// A freshly signed agent SVID and the facts the node record keeps of it.
struct SignedSvid {
    chain: Vec<Vec<u8>>,
    serial_number: String,
    expires_at: i64,
}

// === impl AgentService (agent-facing methods) ===

impl AgentService {
    /// `AttestAgent`: validates the first message, then runs the attestor in a task that
    /// talks to the agent through the response stream.
    pub(super) async fn attest(
        &self,
        request: Request<Streaming<AttestAgentRequest>>,
    ) -> Result<Response<AttestStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests.message().await.map_err(|e| {
            make_err(
                Code::InvalidArgument,
                "failed to receive request from stream",
                Some(&e),
            )
        })?;
        let params = match first.and_then(|m| m.step) {
            Some(attest_agent_request::Step::Params(params)) => params,
            _ => return Err(invalid("params cannot be nil")),
        };
        let data = params
            .data
            .ok_or_else(|| invalid("missing attestation data"))?;
        if data.r#type.is_empty() {
            return Err(invalid("missing attestation data type"));
        }
        let csr = params.params.map(|p| p.csr).unwrap_or_default();
        // The CSR is checked before the evidence, so a bad CSR never consumes a join token.
        let public_key = verify_csr(&csr)?;
        let attestor = self
            .config
            .node_attestors
            .get(&data.r#type)
            .cloned()
            .ok_or_else(|| {
                let cause = format!("could not find node attestor type {:?}", data.r#type);
                make_err(
                    Code::FailedPrecondition,
                    "error getting node attestor",
                    Some(&cause),
                )
            })?;

        let (responses, stream) = mpsc::channel(2);
        let service = self.clone();
        tokio::spawn(async move {
            let mut challenger = StreamChallenger {
                requests: &mut requests,
                responses: &responses,
            };
            let outcome = service
                .attest_and_sign(
                    attestor.as_ref(),
                    data.payload,
                    &public_key,
                    &mut challenger,
                )
                .await;
            // The agent may have gone away; nothing is left to tell it then.
            let _ = responses.send(outcome).await;
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn attest_and_sign(
        &self,
        attestor: &dyn NodeAttestor,
        payload: Vec<u8>,
        public_key: &[u8],
        challenger: &mut StreamChallenger<'_>,
    ) -> Result<AttestAgentResponse, Status> {
        let Attestation {
            agent_id,
            selectors,
            can_reattest,
        } = attestor
            .attest(payload, challenger)
            .await
            .map_err(attestation_status)?;
        let existing = self
            .ds()
            .fetch_attested_node(&agent_id)
            .await
            .map_err(|e| internal("failed to fetch agent", &e))?;
        if let Some(node) = &existing {
            if node.cert_serial_number.is_empty() {
                return Err(make_err(
                    Code::PermissionDenied,
                    "failed to attest: agent is banned",
                    None,
                ));
            }
            if !can_reattest {
                return Err(invalid(
                    "failed to attest: join token has already been used",
                ));
            }
        }
        let svid = self.sign(public_key, &agent_id)?;
        let node = AttestedNode {
            spiffe_id: agent_id.clone(),
            attestation_type: attestor.name().to_owned(),
            cert_serial_number: svid.serial_number.clone(),
            cert_not_after: svid.expires_at,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            can_reattest,
            selectors: SelectorSet::new(),
        };
        let stored = match existing {
            Some(_) => {
                self.ds()
                    .update_attested_node(node, Some(NodeMask::ALL))
                    .await
            }
            None => match self.ds().create_attested_node(node.clone()).await {
                // Attested concurrently by another stream (re-attestable nodes only get here).
                Err(DsError::AlreadyExists { .. }) => {
                    self.ds()
                        .update_attested_node(node, Some(NodeMask::ALL))
                        .await
                }
                other => other,
            },
        };
        stored.map_err(|e| internal("failed to store attested agent", &e))?;
        let selectors = selectors
            .into_iter()
            .fold(SelectorSet::new(), |mut set, s| {
                set.insert(s);
                set
            });
        self.ds()
            .set_node_selectors(&agent_id, &selectors)
            .await
            .map_err(|e| internal("failed to update selectors", &e))?;
        self.config.feed.notify();
        tracing::info!(agent_id = %agent_id, attestation_type = attestor.name(), "Agent attestation request completed");
        Ok(AttestAgentResponse {
            step: Some(attest_agent_response::Step::Result(
                attest_agent_response::Result {
                    svid: Some(svid.to_proto(&agent_id)),
                    reattestable: can_reattest,
                },
            )),
        })
    }

    /// `RenewAgent`: a new SVID for the calling agent, recorded as its *new* serial; the
    /// current one stays valid until the agent first presents the new one.
    pub(super) async fn renew(
        &self,
        request: Request<RenewAgentRequest>,
    ) -> Result<Response<RenewAgentResponse>, Status> {
        let agent_id = request
            .extensions()
            .get::<AuthorizedCaller>()
            .and_then(|caller| caller.id.clone())
            .ok_or_else(|| {
                make_err(
                    Code::Internal,
                    "caller ID missing from request context",
                    None,
                )
            })?;
        let params = request
            .into_inner()
            .params
            .ok_or_else(|| invalid("params cannot be nil"))?;
        let public_key = verify_csr(&params.csr)?;
        let svid = self.sign(&public_key, &agent_id)?;
        let update = AttestedNode {
            spiffe_id: agent_id.clone(),
            attestation_type: String::new(),
            cert_serial_number: String::new(),
            cert_not_after: 0,
            new_cert_serial_number: svid.serial_number.clone(),
            new_cert_not_after: svid.expires_at,
            can_reattest: false,
            selectors: SelectorSet::new(),
        };
        let mask = NodeMask {
            attestation_type: false,
            cert_serial_number: false,
            cert_not_after: false,
            new_cert_serial_number: true,
            new_cert_not_after: true,
            can_reattest: false,
        };
        match self.ds().update_attested_node(update, Some(mask)).await {
            Ok(_) => {}
            Err(DsError::NotFound(_)) => {
                return Err(make_err(Code::NotFound, "agent not found", None));
            }
            Err(e) => return Err(internal("failed to update agent", &e)),
        }
        self.config.feed.notify();
        Ok(Response::new(RenewAgentResponse {
            svid: Some(svid.to_proto(&agent_id)),
        }))
    }

    fn sign(&self, public_key: &[u8], agent_id: &SpiffeId) -> Result<SignedSvid, Status> {
        let chain = self
            .config
            .ca
            .sign_agent_x509_svid(public_key, agent_id)
            .map_err(|e| internal("failed to sign X509 SVID", &e))?;
        let leaf = chain
            .first()
            .and_then(|leaf| PeerSvid::from_der(leaf))
            .ok_or_else(|| make_err(Code::Internal, "failed to sign X509 SVID", None))?;
        Ok(SignedSvid {
            chain,
            serial_number: leaf.serial_number,
            expires_at: leaf.expires_at,
        })
    }
}

// === impl SignedSvid ===

impl SignedSvid {
    fn to_proto(&self, agent_id: &SpiffeId) -> types::X509svid {
        types::X509svid {
            cert_chain: self.chain.clone(),
            id: Some(id_to_proto(agent_id)),
            expires_at: self.expires_at,
            hint: String::new(),
        }
    }
}

// === impl StreamChallenger ===

#[tonic::async_trait]
impl Challenger for StreamChallenger<'_> {
    async fn challenge(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let message = AttestAgentResponse {
            step: Some(attest_agent_response::Step::Challenge(challenge)),
        };
        if self.responses.send(Ok(message)).await.is_err() {
            return Err(PluginError::attestation(
                AttestCode::Unavailable,
                "failed to send challenge to agent",
            ));
        }
        match self.requests.message().await {
            Ok(Some(AttestAgentRequest {
                step: Some(attest_agent_request::Step::ChallengeResponse(response)),
            })) => Ok(response),
            Ok(Some(_)) => Err(PluginError::attestation(
                AttestCode::InvalidArgument,
                "expected a challenge response",
            )),
            Ok(None) => Err(PluginError::attestation(
                AttestCode::InvalidArgument,
                "failed to receive challenge response: stream closed",
            )),
            Err(e) => Err(PluginError::attestation(
                AttestCode::InvalidArgument,
                format!("failed to receive challenge response: {}", e.message()),
            )),
        }
    }
}

/// The public key of a CSR whose signature checks out, with SPIRE's messages.
fn verify_csr(csr: &[u8]) -> Result<Vec<u8>, Status> {
    spire_svid::verify_csr(csr).map_err(|e| match e {
        CsrError::Missing => invalid("missing CSR"),
        e => make_err(Code::InvalidArgument, "failed to parse CSR", Some(&e)),
    })
}

fn attestation_status(error: PluginError) -> Status {
    match error {
        PluginError::Attestation { code, message } => {
            let code = match code {
                AttestCode::InvalidArgument => Code::InvalidArgument,
                AttestCode::PermissionDenied => Code::PermissionDenied,
                AttestCode::Unavailable => Code::Unavailable,
                AttestCode::Internal => Code::Internal,
            };
            make_err(code, &message, None)
        }
        other => make_err(Code::Internal, "failed to attest", Some(&other)),
    }
}

fn invalid(message: &str) -> Status {
    make_err(Code::InvalidArgument, message, None)
}
