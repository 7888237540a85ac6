//! Leader election through a `coordination.k8s.io/v1` Lease, as controller-runtime does it,
//! so replicas of ours and of upstream's controllers can share one lock.
//!
//! A candidate takes the Lease when it is free, released (no holder) or not renewed for
//! `lease_duration` as observed on this replica's monotonic clock (never by comparing another
//! host's timestamps, so clock skew cannot steal a live lease). The leader renews every
//! `retry_period`; if it cannot renew within `renew_deadline` it has lost the lease and stops,
//! and Kubernetes restarts it as a candidate. A leader that stops cleanly releases the Lease so
//! a standby takes over at once.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use spire_task::Shutdown;
use spire_time::Clock;
use tokio::time::Instant;

/// Leader election settings (controller-runtime's names and defaults).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (`holderIdentity`).
    pub identity: String,
    /// How long a lease is valid without renewal (15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up (10 s).
    pub renew_deadline: Duration,
    /// Time between attempts (2 s).
    pub retry_period: Duration,
}

/// Why leadership ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The lease could not be renewed within the renew deadline.
    #[error("leader election lost: lease {0} not renewed within the renew deadline")]
    Lost(String),
    /// Another replica holds the lease now.
    #[error("leader election lost: lease {lease} is held by {holder}")]
    Taken {
        /// The Lease.
        lease: String,
        /// The new holder.
        holder: String,
    },
}

/// One replica's side of the election.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
    /// The last lease record seen and when (monotonic) it was first seen.
    observed: Option<(Observed, Instant)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    holder: String,
    renew_time: Option<String>,
    transitions: i32,
}

enum Attempt {
    /// We hold the lease (acquired or renewed).
    Held,
    /// Someone else holds a live lease.
    Busy(String),
}

impl LeaderElector {
    /// An elector for the Lease in `config`, written through `client`.
    pub fn new(client: kube::Client, config: LeaseConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            clock,
            observed: None,
        }
    }

    /// Waits until this replica holds the lease (or the process stops: `false`).
    pub async fn acquire(&mut self, shutdown: &Shutdown) -> bool {
        let stopped = shutdown.stopped();
        tokio::pin!(stopped);
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "successfully acquired lease");
                    return true;
                }
                Ok(Attempt::Busy(holder)) => {
                    tracing::debug!(lease = %self.config.name, %holder, "lease is held by another replica");
                }
                Err(error) => {
                    tracing::warn!(lease = %self.config.name, %error, "error retrieving or updating the lease");
                }
            }
            tokio::select! {
                () = &mut stopped => return false,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    /// Renews the lease every retry period until the process stops (then releases it and
    /// returns `Ok`) or leadership is lost.
    pub async fn hold(&mut self, shutdown: &Shutdown) -> Result<(), LeaderError> {
        let stopped = shutdown.stopped();
        tokio::pin!(stopped);
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = &mut stopped => {
                    self.release().await;
                    return Ok(());
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => last_renewal = Instant::now(),
                Ok(Attempt::Busy(holder)) => {
                    return Err(LeaderError::Taken {
                        lease: self.config.name.clone(),
                        holder,
                    });
                }
                Err(error) => {
                    tracing::warn!(lease = %self.config.name, %error, "failed to renew the lease");
                    if last_renewal.elapsed() >= self.config.renew_deadline {
                        return Err(LeaderError::Lost(self.config.name.clone()));
                    }
                }
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = self.now();
        let existing = self.api.get_opt(&self.config.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now.clone(), now, 0)),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            return Ok(Attempt::Held);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let observed = Observed {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
        };
        let observed_at = match &self.observed {
            Some((seen, at)) if *seen == observed => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((observed.clone(), at));
                at
            }
        };
        let ours = observed.holder == self.config.identity;
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        let free = observed.holder.is_empty() || observed_at.elapsed() >= duration;
        if !ours && !free {
            return Ok(Attempt::Busy(observed.holder));
        }
        let (acquired, transitions) = if ours {
            (
                spec.acquire_time.unwrap_or_else(|| now.clone()),
                observed.transitions,
            )
        } else {
            (now.clone(), observed.transitions + 1)
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        // The resourceVersion from the GET makes this a compare-and-swap: a replica that raced
        // us gets 409 and tries again next period.
        let replaced = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        if let Some(spec) = &replaced.spec {
            self.observed = Some((
                Observed {
                    holder: spec.holder_identity.clone().unwrap_or_default(),
                    renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
                    transitions: spec.lease_transitions.unwrap_or(0),
                },
                Instant::now(),
            ));
        }
        Ok(Attempt::Held)
    }

    async fn release(&mut self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(());
            };
            let Some(spec) = lease.spec.as_mut() else {
                return Ok(());
            };
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(self.now());
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
                .map(drop)
        }
        .await;
        match result {
            Ok(()) => tracing::info!(lease = %self.config.name, "released the lease"),
            Err(error) => {
                tracing::warn!(lease = %self.config.name, %error, "could not release the lease")
            }
        }
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: i32::try_from(self.config.lease_duration.as_secs()).ok(),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    fn now(&self) -> MicroTime {
        let now = k8s_openapi::jiff::Timestamp::try_from(self.clock.now())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        MicroTime(now)
    }
}
