//! Ending agent streams once their agent is evicted or banned.
//!
//! Authorization runs once, when a stream opens; a stream that lives for hours must notice
//! later that its agent lost its standing. An [`AgentGate`] follows the change events that
//! name attested nodes (one reader per gate, however many streams ask) and remembers which
//! agents are gone or banned, so each stream's check at a feed change is a map lookup. After
//! a gap in the events (pruned before the gate read them) the gate starts over and every
//! stream checks its node in the datastore once.

use std::collections::HashMap;
use std::sync::Arc;

use spire_id::SpiffeId;
use spire_proto::spire::api::types::permission_denied_details::Reason;
use spire_server_datastore::{Aggregate, DataStore, Error as DsError};
use tokio::sync::Mutex;
use tonic::{Code, Status};

use crate::status::{make_err, permission_denied};

/// Change events read per datastore call.
const EVENT_PAGE: u32 = 1000;
/// Revoked agents remembered at most; beyond that the gate starts over.
const MAX_REVOKED: usize = 65_536;

/// Which agents lost their standing, as the change events tell. Shared by the streams of a
/// service; each stream keeps the epoch it last checked against (start with
/// [`AgentGate::open`]).
#[derive(Debug)]
pub(crate) struct AgentGate {
    datastore: Arc<dyn DataStore>,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// The last change event read; `None` before first use.
    revision: Option<i64>,
    /// Bumped whenever `revoked` starts over: a stream that checked in an older epoch
    /// asks the datastore instead.
    epoch: u64,
    /// Agents deleted or banned since the epoch began (an agent attested again is removed).
    revoked: HashMap<SpiffeId, Reason>,
}

// === impl AgentGate ===

impl AgentGate {
    pub(crate) fn new(datastore: Arc<dyn DataStore>) -> Self {
        Self {
            datastore,
            state: Mutex::new(GateState::default()),
        }
    }

    /// Starts following `agent` for a stream that has just been authorized: checks the node
    /// once more in the datastore (a ban may have landed since) and returns the stream's
    /// epoch.
    pub(crate) async fn open(&self, agent: &SpiffeId) -> Result<u64, Status> {
        let epoch = self.state.lock().await.epoch;
        check_node(self.datastore.as_ref(), agent).await?;
        Ok(epoch)
    }

    /// After the feed published `revision`: `Ok` while `agent` is attested and not banned,
    /// `PermissionDenied` with the details reason (`AGENT_NOT_ATTESTED`, `AGENT_BANNED`)
    /// otherwise. `epoch` is the stream's, from [`Self::open`].
    pub(crate) async fn check(
        &self,
        agent: &SpiffeId,
        revision: i64,
        epoch: &mut u64,
    ) -> Result<(), Status> {
        let mut state = self.state.lock().await;
        if state.revision.is_none_or(|read| read < revision) {
            self.catch_up(&mut state).await.map_err(|e| {
                make_err(
                    Code::Internal,
                    "unable to look up agent information",
                    Some(&e),
                )
            })?;
        }
        if *epoch == state.epoch {
            return match state.revoked.get(agent) {
                Some(&reason) => Err(denied(agent, reason)),
                None => Ok(()),
            };
        }
        let current = state.epoch;
        drop(state);
        check_node(self.datastore.as_ref(), agent).await?;
        *epoch = current;
        Ok(())
    }

    /// Reads the change events after the last one read and records the state of every
    /// attested node they name.
    async fn catch_up(&self, state: &mut GateState) -> Result<(), DsError> {
        let Some(mut read) = state.revision else {
            return self.start_over(state).await;
        };
        loop {
            let events = self.datastore.list_change_events(read, EVENT_PAGE).await?;
            let contiguous = (read + 1..)
                .zip(&events)
                .all(|(expected, event)| event.revision == expected);
            if !contiguous {
                return self.start_over(state).await;
            }
            let Some(last) = events.last() else {
                break;
            };
            read = last.revision;
            let mut nodes: Vec<SpiffeId> = events
                .iter()
                .filter(|e| e.aggregate == Aggregate::AttestedNode)
                .filter_map(|e| SpiffeId::parse(&e.key).ok())
                .collect();
            nodes.sort_unstable();
            nodes.dedup();
            for id in nodes {
                match standing(self.datastore.fetch_attested_node(&id).await?) {
                    Some(reason) => state.revoked.insert(id, reason),
                    None => state.revoked.remove(&id),
                };
            }
            if events.len() < EVENT_PAGE as usize {
                break;
            }
        }
        state.revision = Some(read);
        if state.revoked.len() > MAX_REVOKED {
            return self.start_over(state).await;
        }
        Ok(())
    }

    /// Forgets what was read: from the newest revision on, in a new epoch.
    async fn start_over(&self, state: &mut GateState) -> Result<(), DsError> {
        state.revision = Some(self.datastore.latest_revision().await?);
        state.revoked.clear();
        state.epoch += 1;
        Ok(())
    }
}

/// Why a node (as stored now) may no longer stream, if it may not.
fn standing(node: Option<spire_server_datastore::AttestedNode>) -> Option<Reason> {
    match node {
        None => Some(Reason::AgentNotAttested),
        Some(node) if node.cert_serial_number.is_empty() => Some(Reason::AgentBanned),
        Some(_) => None,
    }
}

/// Asks the datastore whether `agent` is attested and not banned.
pub(crate) async fn check_node(datastore: &dyn DataStore, agent: &SpiffeId) -> Result<(), Status> {
    let node = datastore.fetch_attested_node(agent).await.map_err(|e| {
        make_err(
            Code::Internal,
            "unable to look up agent information",
            Some(&e),
        )
    })?;
    match standing(node) {
        Some(reason) => Err(denied(agent, reason)),
        None => Ok(()),
    }
}

/// The agent authorizer's denial for `reason`.
pub(crate) fn denied(agent: &SpiffeId, reason: Reason) -> Status {
    let id = agent.to_string();
    let message = match reason {
        Reason::AgentBanned => format!("agent {id:?} is banned"),
        _ => format!("agent {id:?} is not attested"),
    };
    permission_denied(reason, &message)
}
