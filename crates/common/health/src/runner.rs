//! The check schedule: every second until all subsystems pass, then every minute. Probes read
//! the latest [`Report`]; nothing they do makes a check run.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::check::{Checker, Report, State};
use crate::listener::HealthListener;
use crate::{Error, HealthConfig};

/// Re-check interval until every subsystem has passed once (SPIRE: 1 s).
pub const UNTIL_PASSING_INTERVAL: Duration = Duration::from_secs(1);
/// Re-check interval once every subsystem has passed (SPIRE: 1 min), failing or not.
pub const STEADY_INTERVAL: Duration = Duration::from_secs(60);
/// A check still running after this is reported failed (SPIRE's checks use the same bound).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// The subsystem checks of one binary and their latest results.
///
/// ```ignore
/// let health = Health::new(checkers)?;
/// let reports = health.subscribe(); // e.g. for a gRPC health service
/// tokio::spawn(health.serve(listener, shutdown));
/// ```
#[derive(Debug)]
pub struct Health {
    checkers: Vec<Arc<dyn Checker>>,
    until_passing: Duration,
    steady: Duration,
    check_timeout: Duration,
    report: watch::Sender<Arc<Report>>,
}

/// Failure bookkeeping of one subsystem, for the logs.
#[derive(Debug)]
struct Failing {
    since: Instant,
    checks: u64,
}

// === impl Health ===

impl Health {
    /// Checks for these subsystems, none checked yet (live, not ready). Names must be unique.
    pub fn new(checkers: Vec<Arc<dyn Checker>>) -> Result<Self, Error> {
        let mut subsystems = BTreeMap::new();
        for checker in &checkers {
            if subsystems.insert(checker.name().to_owned(), None).is_some() {
                return Err(Error::DuplicateCheck(checker.name().to_owned()));
            }
        }
        let (report, _) = watch::channel(Arc::new(Report::new(subsystems)));
        Ok(Self {
            checkers,
            until_passing: UNTIL_PASSING_INTERVAL,
            steady: STEADY_INTERVAL,
            check_timeout: CHECK_TIMEOUT,
            report,
        })
    }

    /// Replaces SPIRE's intervals (1 s until every subsystem passed, then 60 s).
    pub fn with_intervals(mut self, until_passing: Duration, steady: Duration) -> Self {
        self.until_passing = until_passing;
        self.steady = steady;
        self
    }

    /// Replaces [`CHECK_TIMEOUT`].
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The latest report, updated after every check; it keeps the last value once the runner
    /// has stopped.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Report>> {
        self.report.subscribe()
    }

    /// The latest report.
    pub fn report(&self) -> Arc<Report> {
        self.report.borrow().clone()
    }

    /// Runs the checks on their schedule and, with `listener`, serves the probes, until
    /// `shutdown` resolves.
    pub async fn serve(self, listener: Option<HealthListener>, shutdown: impl Future<Output = ()>) {
        let reports = self.subscribe();
        let (stop_tx, stop_rx) = watch::channel(false);
        let listening = async move {
            if let Some(listener) = listener {
                listener.serve(reports, stopped(stop_rx)).await;
            }
        };
        let checking = async move {
            self.run(shutdown).await;
            stop_tx.send_replace(true);
        };
        tokio::join!(checking, listening);
    }

    /// Runs the checks on their schedule until `shutdown` resolves: one round at once, then
    /// every `until_passing` until a round in which every subsystem passed, then every
    /// `steady`. A round checks all subsystems concurrently and publishes each result as it
    /// arrives.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut subsystems: BTreeMap<String, Option<State>> = self
            .checkers
            .iter()
            .map(|c| (c.name().to_owned(), None))
            .collect();
        let mut failing: BTreeMap<String, Failing> = BTreeMap::new();
        let mut steady = false;
        tracing::debug!(checks = self.checkers.len(), "Initializing health checkers");
        loop {
            let round = self.round(&mut subsystems, &mut failing);
            tokio::select! {
                () = &mut shutdown => break,
                () = round => {}
            }
            if !steady && self.report.borrow().passing() {
                steady = true;
                tracing::debug!(
                    interval = ?self.steady,
                    "Every subsystem is healthy; checking at the steady interval from now on"
                );
            }
            let wait = if steady {
                self.steady
            } else {
                self.until_passing
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!("Finishing health checker");
    }

    async fn round(
        &self,
        subsystems: &mut BTreeMap<String, Option<State>>,
        failing: &mut BTreeMap<String, Failing>,
    ) {
        let mut tasks = JoinSet::new();
        let mut names = BTreeMap::new();
        for checker in &self.checkers {
            let name = checker.name().to_owned();
            let checker = checker.clone();
            let timeout = self.check_timeout;
            let handle = tasks.spawn(async move {
                match tokio::time::timeout(timeout, checker.check()).await {
                    Ok(state) => state,
                    Err(_) => State::new(
                        false,
                        json!({ "check_err": format!("check did not finish within {timeout:?}") }),
                    ),
                }
            });
            names.insert(handle.id(), name);
        }
        while let Some(joined) = tasks.join_next_with_id().await {
            let (name, state) = match joined {
                Ok((id, state)) => (names.remove(&id), state),
                Err(error) => (
                    names.remove(&error.id()),
                    State::new(false, json!({ "check_err": "check panicked" })),
                ),
            };
            let Some(name) = name else { continue };
            log_transition(&name, &state, failing);
            subsystems.insert(name, Some(state));
            self.report
                .send_replace(Arc::new(Report::new(subsystems.clone())));
        }
    }
}

/// SPIRE's log lines: a warning when a check starts failing, an info when it recovers.
fn log_transition(name: &str, state: &State, failing: &mut BTreeMap<String, Failing>) {
    match (state.problem(), failing.get_mut(name)) {
        (None, None) => {}
        (Some(problem), None) => {
            tracing::warn!(
                check = name,
                details = %json!({"live": state.live_details, "ready": state.ready_details}),
                error = problem,
                "Health check failed"
            );
            failing.insert(
                name.to_owned(),
                Failing {
                    since: Instant::now(),
                    checks: 1,
                },
            );
        }
        (Some(problem), Some(failure)) => {
            failure.checks += 1;
            tracing::debug!(
                check = name,
                error = problem,
                failures = failure.checks,
                "Health check has failed"
            );
        }
        (None, Some(_)) => {
            if let Some(failure) = failing.remove(name) {
                tracing::info!(
                    check = name,
                    failures = failure.checks,
                    duration = failure.since.elapsed().as_secs_f64(),
                    "Health check recovered"
                );
            }
        }
    }
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs `checkers` on SPIRE's schedule and, when `config.listener_enabled`, serves the live
/// and ready paths, until `shutdown` resolves. Fails only when the listener cannot be set up
/// (bad address, port taken, identical paths) or two checkers share a name.
pub async fn serve(
    config: &HealthConfig,
    checkers: Vec<Arc<dyn Checker>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let health = Health::new(checkers)?;
    let listener = if config.listener_enabled {
        Some(HealthListener::bind(config).await?)
    } else {
        None
    };
    health.serve(listener, shutdown).await;
    Ok(())
}
