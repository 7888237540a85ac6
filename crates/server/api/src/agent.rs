//! `spire.api.server.agent.v1.Agent`: attested nodes and join tokens.
//!
//! The agent-facing methods (AttestAgent, RenewAgent, PostStatus) live in [`attest`].

mod attest;
mod filter;

pub use attest::AttestStream;

use std::sync::Arc;

use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::server::agent::v1::{
    AttestAgentRequest, BanAgentRequest, CountAgentsRequest, CountAgentsResponse,
    CreateJoinTokenRequest, DeleteAgentRequest, GetAgentRequest, ListAgentsRequest,
    ListAgentsResponse, PostStatusRequest, PostStatusResponse, RenewAgentRequest,
    RenewAgentResponse, agent_server::Agent,
};
use spire_proto::spire::api::types;
use spire_server_ca::Ca;
use spire_server_cache::ChangeFeed;
use spire_server_datastore::{
    AttestedNode, DataStore, Error as DsError, JoinToken, NodeMask, Pagination, RegistrationEntry,
};
use spire_server_plugin::nodeattestor::NodeAttestors;
use spire_time::SharedClock;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::ApiContext;
use crate::convert::{
    agent_id_from_proto, agent_to_proto, apply_agent_mask, workload_id_from_proto,
};
use crate::ratelimit::{Limited, RateLimits};
use crate::status::{internal, make_err};

/// What the Agent service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain: agent IDs live under its `/spire/agent/`.
    pub trust_domain: TrustDomain,
    /// Where nodes and join tokens live.
    pub datastore: Arc<dyn DataStore>,
    /// Join-token expiry and entry creation times.
    pub clock: SharedClock,
    /// Signs agent SVIDs (AttestAgent, RenewAgent).
    pub ca: Ca,
    /// The configured NodeAttestors, by name.
    pub node_attestors: Arc<NodeAttestors>,
    /// Told about every node write, so the authorized-entry cache follows at once.
    pub feed: Arc<ChangeFeed>,
    /// SPIRE's per-IP rate limits (`ratelimit { }`).
    pub rate_limits: Arc<RateLimits>,
}

/// The Agent service.
#[derive(Clone, Debug)]
pub struct AgentService {
    config: Config,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            datastore: ctx.datastore.clone(),
            clock: ctx.clock.clone(),
            ca: ctx.ca.clone(),
            node_attestors: ctx.node_attestors.clone(),
            feed: ctx.entries.clone(),
            rate_limits: ctx.rate_limits.clone(),
        }
    }
}

// === impl AgentService ===

impl AgentService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    fn ds(&self) -> &dyn DataStore {
        self.config.datastore.as_ref()
    }

    fn agent_id(&self, id: Option<&types::Spiffeid>) -> Result<SpiffeId, Status> {
        agent_id_from_proto(&self.config.trust_domain, id)
            .map_err(|e| make_err(Code::InvalidArgument, "invalid agent ID", Some(&e)))
    }

    /// The node-alias entry SPIRE creates for a join token issued with an agent ID: the
    /// token's agent ID is the parent, the requested ID is the entry's SPIFFE ID, and the
    /// selector `spiffe_id:<token agent ID>` matches that agent.
    async fn create_alias_entry(&self, token: &str, agent_id: SpiffeId) -> Result<(), String> {
        let parent_id = SpiffeId::from_segments(
            self.config.trust_domain.clone(),
            &["spire", "agent", "join_token", token],
        )
        .map_err(|e| e.to_string())?;
        let selector =
            Selector::new("spiffe_id", &parent_id.to_string()).map_err(|e| e.to_string())?;
        let entry = RegistrationEntry {
            id: String::new(),
            spiffe_id: agent_id,
            parent_id,
            selectors: SelectorSet::non_empty([selector]).map_err(|e| e.to_string())?,
            x509_svid_ttl: 0,
            jwt_svid_ttl: 0,
            federates_with: Vec::new(),
            admin: false,
            downstream: false,
            expires_at: 0,
            dns_names: Vec::new(),
            revision_number: 0,
            store_svid: false,
            hint: String::new(),
            created_at: self.config.clock.unix_seconds(),
        };
        let mut results = self
            .ds()
            .create_registration_entries(vec![entry])
            .await
            .map_err(|e| e.to_string())?;
        match results.pop() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no result for the entry".to_owned()),
        }
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn count_agents(
        &self,
        request: Request<CountAgentsRequest>,
    ) -> Result<Response<CountAgentsResponse>, Status> {
        let filter = request.into_inner().filter;
        let list = filter::from_count(filter.as_ref())?;
        let count = self
            .ds()
            .count_attested_nodes(&list)
            .await
            .map_err(|e| internal("failed to count agents", &e))?;
        Ok(Response::new(CountAgentsResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        let request = request.into_inner();
        let mut list = filter::from_list(request.filter.as_ref())?;
        if request.page_size > 0 {
            list.pagination = Some(Pagination {
                token: request.page_token,
                page_size: request.page_size.unsigned_abs(),
            });
        }
        let page = self
            .ds()
            .list_attested_nodes(&list)
            .await
            .map_err(|e| match e {
                DsError::InvalidArgument(message) => Status::invalid_argument(message),
                e => internal("failed to list agents", &e),
            })?;
        let agents = page
            .items
            .iter()
            .map(|node| {
                let mut agent = agent_to_proto(node);
                apply_agent_mask(&mut agent, request.output_mask.as_ref());
                agent
            })
            .collect();
        Ok(Response::new(ListAgentsResponse {
            agents,
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_agent(
        &self,
        request: Request<GetAgentRequest>,
    ) -> Result<Response<types::Agent>, Status> {
        let request = request.into_inner();
        let id = self.agent_id(request.id.as_ref())?;
        match self.ds().fetch_attested_node(&id).await {
            Ok(Some(node)) => {
                let mut agent = agent_to_proto(&node);
                apply_agent_mask(&mut agent, request.output_mask.as_ref());
                Ok(Response::new(agent))
            }
            Ok(None) => Err(make_err(Code::NotFound, "agent not found", None)),
            Err(e) => Err(internal("failed to fetch agent", &e)),
        }
    }

    async fn delete_agent(
        &self,
        request: Request<DeleteAgentRequest>,
    ) -> Result<Response<()>, Status> {
        let id = self.agent_id(request.into_inner().id.as_ref())?;
        match self.ds().delete_attested_node(&id).await {
            Ok(_) => {
                self.config.feed.notify();
                tracing::info!(spiffe_id = %id, "Agent deleted");
                Ok(Response::new(()))
            }
            Err(DsError::NotFound(_)) => Err(make_err(Code::NotFound, "agent not found", None)),
            Err(e) => Err(internal("failed to remove agent", &e)),
        }
    }

    async fn ban_agent(&self, request: Request<BanAgentRequest>) -> Result<Response<()>, Status> {
        let id = self.agent_id(request.into_inner().id.as_ref())?;
        // Banned = both serial numbers cleared; nothing else changes.
        let banned = AttestedNode {
            spiffe_id: id.clone(),
            attestation_type: String::new(),
            cert_serial_number: String::new(),
            cert_not_after: 0,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            can_reattest: false,
            selectors: SelectorSet::new(),
        };
        let mask = NodeMask {
            attestation_type: false,
            cert_serial_number: true,
            cert_not_after: false,
            new_cert_serial_number: true,
            new_cert_not_after: false,
            can_reattest: false,
        };
        match self.ds().update_attested_node(banned, Some(mask)).await {
            Ok(_) => {
                self.config.feed.notify();
                tracing::info!(spiffe_id = %id, "Agent banned");
                Ok(Response::new(()))
            }
            Err(DsError::NotFound(_)) => Err(make_err(Code::NotFound, "agent not found", None)),
            Err(e) => Err(internal("failed to ban agent", &e)),
        }
    }

    type AttestAgentStream = AttestStream;

    async fn attest_agent(
        &self,
        request: Request<Streaming<AttestAgentRequest>>,
    ) -> Result<Response<Self::AttestAgentStream>, Status> {
        self.config
            .rate_limits
            .admit(Limited::AttestAgent, &request, 1)
            .await?;
        self.attest(request).await
    }

    async fn renew_agent(
        &self,
        request: Request<RenewAgentRequest>,
    ) -> Result<Response<RenewAgentResponse>, Status> {
        self.config
            .rate_limits
            .admit(Limited::RenewAgent, &request, 1)
            .await?;
        self.renew(request).await
    }

    async fn create_join_token(
        &self,
        request: Request<CreateJoinTokenRequest>,
    ) -> Result<Response<types::JoinToken>, Status> {
        let request = request.into_inner();
        if request.ttl < 1 {
            return Err(make_err(
                Code::InvalidArgument,
                "ttl is required, you must provide one",
                None,
            ));
        }
        // Checked before anything is stored, so a bad agent ID leaves no token behind.
        let agent_id = match request.agent_id.as_ref() {
            Some(id) => Some(
                workload_id_from_proto(&self.config.trust_domain, Some(id))
                    .map_err(|e| make_err(Code::InvalidArgument, "invalid agent ID", Some(&e)))?,
            ),
            None => None,
        };
        let value = if request.token.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.token
        };
        let expires_at = self
            .config
            .clock
            .unix_seconds()
            .saturating_add(i64::from(request.ttl));
        let token = JoinToken {
            token: value.clone(),
            expires_at,
        };
        self.ds()
            .create_join_token(token)
            .await
            .map_err(|e| internal("failed to create token", &e))?;
        if let Some(agent_id) = agent_id {
            self.create_alias_entry(&value, agent_id)
                .await
                .map_err(|e| internal("failed to create join token registration entry", &e))?;
        }
        Ok(Response::new(types::JoinToken { value, expires_at }))
    }

    async fn post_status(
        &self,
        _request: Request<PostStatusRequest>,
    ) -> Result<Response<PostStatusResponse>, Status> {
        // Our proto has no `agent_version` yet, so there is nothing to validate or record.
        Ok(Response::new(PostStatusResponse {}))
    }
}
