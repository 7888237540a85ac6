//! The `StreamSecrets` state machine (compat §5.4), free of I/O.
//!
//! Per stream: a version counter ("0", then +1 on every cache update), the nonce of the last
//! response (8 random hex characters each), the last node (Envoy sends it on the first
//! message only) and the last accepted request, whose names every later update answers.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use spire_agent_cache::WorkloadUpdate;

use crate::{Result, SdsConfig, ValidatorMode, secrets};

/// One `StreamSecrets` stream's state.
#[derive(Debug, Default)]
pub struct StreamState {
    version: u64,
    last_node: Option<Node>,
    last_request: Option<DiscoveryRequest>,
    update: Option<Arc<WorkloadUpdate>>,
    /// Nonce, version and resources of the last response sent.
    sent: Option<Sent>,
}

#[derive(Debug)]
struct Sent {
    nonce: String,
    version: String,
    resources: Vec<Arc<Any>>,
}

// === impl StreamState ===

impl StreamState {
    /// A new stream: version "0", nothing requested yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current version (`version_info` of the next response).
    pub fn version(&self) -> String {
        self.version.to_string()
    }

    /// Takes a request from Envoy; true when a response should be sent now. A request that
    /// does not carry the last response's nonce is ignored; an ACK or NACK of the last
    /// response is noted (NACKs are logged, nothing is resent); a response is due on the first
    /// request and whenever the set of names changes, once an update is there.
    pub fn on_request(&mut self, mut request: DiscoveryRequest) -> bool {
        if let Some(error) = &request.error_detail {
            tracing::warn!(
                code = error.code,
                message = %error.message,
                "Envoy reported errors applying secrets"
            );
        }
        match &request.node {
            Some(node) => self.last_node = Some(node.clone()),
            None => request.node = self.last_node.clone(),
        }
        if let Some(sent) = &self.sent {
            if request.response_nonce != sent.nonce {
                tracing::debug!(
                    nonce = %request.response_nonce,
                    expected = %sent.nonce,
                    "Received unexpected nonce; ignoring request"
                );
                return false;
            }
            if request.version_info != sent.version {
                tracing::warn!(
                    version = %request.version_info,
                    sent = %sent.version,
                    names = ?request.resource_names,
                    "Envoy rejected the last SDS response (NACK)"
                );
            }
        }
        let names_changed = self
            .last_request
            .as_ref()
            .is_none_or(|last| !same_names(&last.resource_names, &request.resource_names));
        self.last_request = Some(request);
        names_changed && self.update.is_some()
    }

    /// Takes a cache update (the version moves on); true when something was requested, so a
    /// response with the new state may be due (see [`StreamState::respond`]).
    pub fn on_update(&mut self, update: Arc<WorkloadUpdate>) -> bool {
        self.version += 1;
        self.update = Some(update);
        self.last_request.is_some()
    }

    /// The response for the last request and the current update, with a fresh `nonce`.
    /// `Ok(None)` when `only_if_changed` and the resources are those of the last response (an
    /// update that does not touch the requested names is not pushed). Errors end the stream.
    pub fn respond(
        &mut self,
        config: &SdsConfig,
        nonce: String,
        only_if_changed: bool,
    ) -> Result<Option<DiscoveryResponse>> {
        let (Some(request), Some(update)) = (&self.last_request, &self.update) else {
            return Ok(None);
        };
        let mode =
            ValidatorMode::for_node(config.disable_spiffe_cert_validation, request.node.as_ref());
        let resources = secrets::resources(config, &request.resource_names, mode, update)?;
        if only_if_changed
            && self
                .sent
                .as_ref()
                .is_some_and(|sent| same_resources(&sent.resources, &resources))
        {
            return Ok(None);
        }
        let version = self.version();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: resources.iter().map(|any| Any::clone(any)).collect(),
            type_url: request.type_url.clone(),
            nonce: nonce.clone(),
            ..DiscoveryResponse::default()
        };
        self.sent = Some(Sent {
            nonce,
            version,
            resources,
        });
        Ok(Some(response))
    }
}

/// The same set of names (order and repetition aside).
fn same_names(a: &[String], b: &[String]) -> bool {
    let a: std::collections::BTreeSet<&String> = a.iter().collect();
    let b: std::collections::BTreeSet<&String> = b.iter().collect();
    a == b
}

fn same_resources(a: &[Arc<Any>], b: &[Arc<Any>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
}

/// A fresh response nonce: 8 random hex characters.
pub fn nonce() -> String {
    let mut bytes = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        tracing::error!("random source failed; using a fixed nonce");
    }
    hex::encode(bytes)
}
