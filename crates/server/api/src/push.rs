//! `spirers.server.push.v1.Push`: spire-rs's own stream that tells an agent when to
//! synchronise (docs/push.md).
//!
//! Each Watch stream follows the server's [`ChangeFeed`]. It sends one message at once, then,
//! whenever the feed advances, recomputes two cheap fingerprints for the caller: of its
//! authorized entries (IDs, revision numbers, `created_at`) and of the bundles it uses (its
//! own trust domain and the trust domains its entries federate with). A message goes out only
//! when a fingerprint changed. The feed is a latest-value channel and the stream buffers at
//! most one message, so a slow agent gets one message summing up everything it missed; it
//! never falls behind and nothing is lost, because each message only means "synchronise".
//!
//! A stream lives only as long as its agent's standing: at the first feed change after the
//! agent is evicted or banned, it ends with the agent authorizer's `PermissionDenied` (and
//! its details reason), through the service's shared [`AgentGate`].

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spirers::server::push::v1::{WatchRequest, WatchResponse, push_server::Push};
use spire_server_cache::{ChangeFeed, FeedState};
use spire_server_datastore::DataStore;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::ApiContext;
use crate::authz::revoked::AgentGate;
use crate::entry::authorized::caller_id;
use crate::status::make_err;

/// What the Push service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain (its bundle is always "used").
    pub trust_domain: TrustDomain,
    /// The feed every stream follows.
    pub feed: Arc<ChangeFeed>,
    /// Where the standing of agents is read (evictions, bans).
    pub datastore: Arc<dyn DataStore>,
}

/// The Push service.
#[derive(Clone, Debug)]
pub struct PushService {
    config: Config,
    agents: Arc<AgentGate>,
}

/// One stream's view of its agent.
struct Watcher {
    feed: Arc<ChangeFeed>,
    trust_domain: TrustDomain,
    agent: SpiffeId,
    agents: Arc<AgentGate>,
    /// The gate epoch this stream last checked against.
    epoch: u64,
    entries: u64,
    bundles: u64,
    federates_with: BTreeSet<TrustDomain>,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            feed: ctx.entries.clone(),
            datastore: ctx.datastore.clone(),
        }
    }
}

// === impl PushService ===

impl PushService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        let agents = Arc::new(AgentGate::new(config.datastore.clone()));
        Self { config, agents }
    }
}

#[tonic::async_trait]
impl Push for PushService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let agent = caller_id(&request)?;
        let feed = self.config.feed.clone();
        // Subscribe before reading, so a change made meanwhile is seen by the first compare.
        let states = feed.subscribe();
        // After subscribing: a ban that lands later is seen at the next change.
        let epoch = self.agents.open(&agent).await?;
        let mut watcher = Watcher {
            feed,
            trust_domain: self.config.trust_domain.clone(),
            agent,
            agents: self.agents.clone(),
            epoch,
            entries: 0,
            bundles: 0,
            federates_with: BTreeSet::new(),
        };
        watcher.refresh_entries().await?;
        watcher.refresh_bundles(states.borrow().loads);
        let (messages, stream) = mpsc::channel(1);
        tokio::spawn(watcher.run(states, messages));
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

// === impl Watcher ===

impl Watcher {
    async fn run(
        mut self,
        mut states: watch::Receiver<FeedState>,
        messages: mpsc::Sender<Result<WatchResponse, Status>>,
    ) {
        let mut seen = *states.borrow_and_update();
        let first = WatchResponse {
            revision: seen.revision,
            entries_changed: true,
            bundles_changed: true,
        };
        if messages.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                changed = states.changed() => if changed.is_err() {
                    // The server is going away.
                    return;
                },
                () = messages.closed() => return,
            }
            let state = *states.borrow_and_update();
            let reloaded = state.loads != seen.loads;
            let mut entries_changed = false;
            let entries_moved = reloaded || state.entries_revision != seen.entries_revision;
            if entries_moved {
                match self.refresh_entries().await {
                    Ok(changed) => entries_changed = changed,
                    Err(status) => {
                        let _ = messages.send(Err(status)).await;
                        return;
                    }
                }
            }
            let bundles_changed =
                (reloaded || entries_changed || state.bundles_revision != seen.bundles_revision)
                    && self.refresh_bundles(state.loads);
            seen = state;
            if entries_changed || bundles_changed {
                let message = WatchResponse {
                    revision: state.revision,
                    entries_changed,
                    bundles_changed,
                };
                if messages.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            // Evictions and bans are node events: they move the entries revision. Checked
            // after the message above, so that its revision stays close to what was compared.
            if entries_moved {
                let standing = self
                    .agents
                    .check(&self.agent, state.revision, &mut self.epoch)
                    .await;
                if let Err(status) = standing {
                    let _ = messages.send(Err(status)).await;
                    return;
                }
            }
        }
    }

    /// Recomputes the entries fingerprint (and the federated trust domains); true if it
    /// changed.
    async fn refresh_entries(&mut self) -> Result<bool, Status> {
        let cache = self
            .feed
            .cache()
            .await
            .map_err(|e| make_err(Code::Internal, "failed to fetch entries", Some(&e)))?;
        let entries = cache.authorized_entries(&self.agent);
        let mut hasher = DefaultHasher::new();
        let mut federates_with = BTreeSet::new();
        for entry in &entries {
            entry.id.hash(&mut hasher);
            entry.revision_number.hash(&mut hasher);
            entry.created_at.hash(&mut hasher);
            federates_with.extend(entry.federates_with.iter().cloned());
        }
        let fingerprint = hasher.finish();
        self.federates_with = federates_with;
        let changed = fingerprint != self.entries;
        self.entries = fingerprint;
        Ok(changed)
    }

    /// Recomputes the bundles fingerprint from the feed's per-trust-domain bundle revisions;
    /// true if it changed.
    fn refresh_bundles(&mut self, loads: u64) -> bool {
        let mut hasher = DefaultHasher::new();
        loads.hash(&mut hasher);
        let own = std::iter::once(&self.trust_domain);
        for td in own.chain(&self.federates_with) {
            td.name().hash(&mut hasher);
            self.feed.bundle_revision(td.name()).hash(&mut hasher);
        }
        let fingerprint = hasher.finish();
        let changed = fingerprint != self.bundles;
        self.bundles = fingerprint;
        changed
    }
}
