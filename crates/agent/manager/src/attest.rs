//! AttestAgent (first attestation and re-attestation) and RenewAgent.

use spire_agent_plugin::nodeattestor::NodeAttestor;
use spire_proto::spire::api::server::agent::v1::{
    AgentX509svidParams, AttestAgentRequest, RenewAgentRequest, agent_client::AgentClient,
    attest_agent_request, attest_agent_response,
};
use spire_proto::spire::api::types::AttestationData;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::{Error, Result};

/// What a successful attestation yields.
#[derive(Debug)]
pub(crate) struct Attested {
    /// The agent SVID chain, leaf first.
    pub(crate) chain: Vec<Vec<u8>>,
    /// Whether the agent may attest again.
    pub(crate) reattestable: bool,
}

/// Runs one AttestAgent exchange on `channel` (a connection without client certificate).
pub(crate) async fn attest(
    channel: Channel,
    attestor: &dyn NodeAttestor,
    csr: Vec<u8>,
) -> Result<Attested> {
    const CALL: &str = "AttestAgent";
    let closed = || Error::InvalidResponse("attestation request stream closed".into());
    let (tx, rx) = mpsc::channel(2);
    let params = attest_agent_request::Params {
        data: Some(AttestationData {
            r#type: attestor.name().to_owned(),
            payload: attestor.payload().await?,
        }),
        params: Some(AgentX509svidParams { csr }),
    };
    tx.send(AttestAgentRequest {
        step: Some(attest_agent_request::Step::Params(params)),
    })
    .await
    .map_err(|_| closed())?;
    let mut responses = AgentClient::new(channel)
        .attest_agent(ReceiverStream::new(rx))
        .await
        .map_err(Error::rpc(CALL))?
        .into_inner();
    loop {
        let response = responses
            .message()
            .await
            .map_err(Error::rpc(CALL))?
            .ok_or_else(|| Error::InvalidResponse("attestation ended without a result".into()))?;
        match response.step {
            Some(attest_agent_response::Step::Challenge(challenge)) => {
                let answer = attestor.challenge_response(&challenge).await?;
                tx.send(AttestAgentRequest {
                    step: Some(attest_agent_request::Step::ChallengeResponse(answer)),
                })
                .await
                .map_err(|_| closed())?;
            }
            Some(attest_agent_response::Step::Result(result)) => {
                let chain = result.svid.map(|s| s.cert_chain).unwrap_or_default();
                if chain.is_empty() {
                    return Err(Error::InvalidResponse(
                        "attestation result has no SVID".into(),
                    ));
                }
                return Ok(Attested {
                    chain,
                    reattestable: result.reattestable,
                });
            }
            None => {
                return Err(Error::InvalidResponse("empty attestation response".into()));
            }
        }
    }
}

/// RenewAgent over the agent's mTLS channel.
pub(crate) async fn renew(channel: Channel, csr: Vec<u8>) -> Result<Vec<Vec<u8>>> {
    let response = AgentClient::new(channel)
        .renew_agent(RenewAgentRequest {
            params: Some(AgentX509svidParams { csr }),
        })
        .await
        .map_err(Error::rpc("RenewAgent"))?
        .into_inner();
    let chain = response.svid.map(|s| s.cert_chain).unwrap_or_default();
    if chain.is_empty() {
        return Err(Error::InvalidResponse("renewal returned no SVID".into()));
    }
    Ok(chain)
}
