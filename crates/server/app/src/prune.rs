//! Keeping the datastore small: the server's periodic deletions of what it no longer needs.
//!
//! - change events older than `experimental.prune_events_older_than` (12h), every half of
//!   that window. A change-feed follower that falls behind the window finds a gap in the
//!   revisions and reloads in full (`spire_server_cache`), so nothing is missed;
//! - registration entries whose `expires_at` has passed (set by `entry create -entryExpiry`),
//!   and join tokens whose expiry has passed (they can no longer be used), every 5 minutes;
//! - with `prune_attested_nodes_expired_for`, attested nodes whose SVID expired longer ago
//!   than that: at most every hour, `prune_attested_nodes_batch_size` per transaction; banned
//!   nodes never, nodes that cannot re-attest only with `prune_tofu_nodes`, a join-token
//!   node's alias entry with it.
//!
//! Every server sharing a database runs the same passes; the deletes are idempotent. After a
//! pass that deleted entries or nodes, this server's change feed is woken so its cache and its
//! agents' streams follow at once.

use std::sync::Arc;
use std::time::Duration;

use spire_id::SpiffeId;
use spire_server_api::ChangeFeed;
use spire_server_datastore::{DataStore, Result};
use spire_task::{Shutdown, Supervisor};
use spire_time::SharedClock;

use crate::config::{NodePruning, ServerConfig};

/// How often expired entries and join tokens are looked for (SPIRE's registration manager).
pub const ENTRY_PRUNE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The longest wait between two attested-node passes.
pub const NODE_PRUNE_MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The prune passes over one datastore, on the server's clock.
#[derive(Clone, Debug)]
pub struct Pruner {
    datastore: Arc<dyn DataStore>,
    clock: SharedClock,
    events_older_than: Duration,
    nodes: Option<NodePruning>,
    feed: Option<Arc<ChangeFeed>>,
}

// === impl Pruner ===

impl Pruner {
    /// Passes over `datastore` with the windows of `config`.
    pub fn new(datastore: Arc<dyn DataStore>, clock: SharedClock, config: &ServerConfig) -> Self {
        Self::with_settings(
            datastore,
            clock,
            config.prune_events_older_than,
            config.prune_attested_nodes,
        )
    }

    /// Passes with explicit windows (tests and benchmarks).
    pub fn with_settings(
        datastore: Arc<dyn DataStore>,
        clock: SharedClock,
        events_older_than: Duration,
        nodes: Option<NodePruning>,
    ) -> Self {
        Self {
            datastore,
            clock,
            events_older_than,
            nodes,
            feed: None,
        }
    }

    /// Wakes `feed` after a pass that deleted entries or nodes.
    pub(crate) fn notifying(mut self, feed: Arc<ChangeFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }

    fn changed(&self) {
        if let Some(feed) = &self.feed {
            feed.notify();
        }
    }

    /// Deletes the change events older than the window; returns how many.
    pub async fn prune_events(&self) -> Result<u64> {
        let window = i64::try_from(self.events_older_than.as_secs()).unwrap_or(i64::MAX);
        self.datastore
            .prune_change_events(self.now().saturating_sub(window))
            .await
    }

    /// Deletes the registration entries and join tokens whose expiry has passed; returns how
    /// many entries.
    pub async fn prune_entries(&self) -> Result<u64> {
        let now = self.now();
        let entries = self.datastore.prune_registration_entries(now).await?;
        if entries > 0 {
            self.changed();
        }
        self.datastore.prune_join_tokens(now).await?;
        Ok(entries)
    }

    /// Deletes the attested nodes that expired longer ago than `prune_attested_nodes_expired_for`
    /// (nothing when it is unset); returns their IDs.
    pub async fn prune_nodes(&self) -> Result<Vec<SpiffeId>> {
        let Some(nodes) = self.nodes else {
            return Ok(Vec::new());
        };
        let expired_for = i64::try_from(nodes.expired_for.as_secs()).unwrap_or(i64::MAX);
        let pruned = self
            .datastore
            .prune_attested_nodes(
                self.now().saturating_sub(expired_for),
                nodes.tofu_nodes,
                nodes.batch_size,
            )
            .await?;
        if !pruned.is_empty() {
            self.changed();
        }
        Ok(pruned)
    }

    /// How long between two event passes: half the window.
    pub fn event_interval(&self) -> Duration {
        (self.events_older_than / 2).max(Duration::from_secs(1))
    }

    /// How long between two node passes, when nodes are pruned.
    pub fn node_interval(&self) -> Option<Duration> {
        self.nodes.map(|n| {
            n.expired_for
                .clamp(Duration::from_secs(1), NODE_PRUNE_MAX_INTERVAL)
        })
    }

    /// Starts the passes as supervised tasks, each first run one interval after start.
    pub(crate) fn spawn(self, tasks: &mut Supervisor, stop: &Shutdown) {
        let pruner = Arc::new(self);
        let (p, s) = (pruner.clone(), stop.clone());
        tasks.spawn("event-pruner", async move {
            while due(p.event_interval(), &s).await {
                match p.prune_events().await {
                    Ok(0) => {}
                    Ok(count) => tracing::debug!(count, "Pruned change events"),
                    Err(error) => tracing::error!(%error, "Failed pruning change events"),
                }
            }
        });
        let (p, s) = (pruner.clone(), stop.clone());
        tasks.spawn("entry-pruner", async move {
            while due(ENTRY_PRUNE_INTERVAL, &s).await {
                match p.prune_entries().await {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "Pruned expired registration entries"),
                    Err(error) => tracing::error!(%error, "Failed pruning registration entries"),
                }
            }
        });
        if let Some(interval) = pruner.node_interval() {
            let s = stop.clone();
            tasks.spawn("node-pruner", async move {
                while due(interval, &s).await {
                    match pruner.prune_nodes().await {
                        Ok(ids) => {
                            for id in &ids {
                                tracing::info!(spiffe_id = %id, "Pruned expired attested node");
                            }
                        }
                        Err(error) => tracing::error!(
                            %error,
                            "Failed during periodic pruning of expired nodes"
                        ),
                    }
                }
            });
        }
    }
}

/// Waits `interval`: true when the next pass is due, false when stopping.
async fn due(interval: Duration, stop: &Shutdown) -> bool {
    tokio::select! {
        // The next pass is due.
        () = tokio::time::sleep(interval) => true,
        // Stopping.
        () = stop.stopped() => false,
    }
}

#[cfg(test)]
mod tests;
