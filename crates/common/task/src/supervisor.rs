//! The supervisor of a process's long-running tasks.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tracing::Instrument as _;

use crate::{BoxError, Error, Shutdown};

/// Owns a process's long-running tasks (see the crate documentation). Dropping it aborts
/// every task still running.
#[derive(Debug)]
pub struct Supervisor {
    shutdown: Shutdown,
    tasks: JoinSet<Result<(), BoxError>>,
    /// The name of every task not yet joined.
    names: HashMap<Id, &'static str>,
}

/// What a supervised task may return: `()`, or a `Result` whose error is fatal.
pub trait TaskOutput: Send + 'static {
    /// The outcome, with the error boxed.
    fn into_result(self) -> Result<(), BoxError>;
}

impl TaskOutput for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send + 'static> TaskOutput for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

// === impl Supervisor ===

impl Supervisor {
    /// A supervisor that stops with `shutdown` and triggers it when a task fails.
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            tasks: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// The signal the tasks should stop on.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Starts `task` under `name`, inside a span `task{subsystem_name=…}` (so every line it
    /// logs carries SPIRE's `subsystem_name` field). The task is expected to run
    /// until the shutdown signal; returning before it (even `Ok`) stops the process. Call
    /// inside a tokio runtime.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput,
    {
        let span = tracing::info_span!("task", subsystem_name = name);
        let handle = self
            .tasks
            .spawn(async move { task.await.into_result() }.instrument(span));
        self.names.insert(handle.id(), name);
    }

    /// Supervises the tasks until the shutdown signal or the first task that panics, fails or
    /// ends early; then triggers the shutdown and gives every task up to `grace` to finish
    /// (and every [`crate::DrainGuard`] to be dropped), aborting what is left after that.
    ///
    /// Returns the first failure, naming its task (also logged at error level), or `Ok`
    /// after a clean stop. A stop that does not finish within `grace` is logged, not an error.
    pub async fn run(mut self, grace: Duration) -> Result<(), Error> {
        let failure = self.supervise().await;
        if let Some(error) = &failure {
            tracing::error!(task = error.task(), %error, "A supervised task failed; stopping");
        }
        self.shutdown.trigger();
        let late = self.drain(grace).await;
        match failure.or(late) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Waits for the shutdown signal (`None`) or the first failure.
    async fn supervise(&mut self) -> Option<Error> {
        loop {
            let stopped = self.shutdown.stopped();
            tokio::select! {
                biased;
                // The process is stopping.
                () = stopped => return None,
                // A task ended.
                Some(joined) = self.tasks.join_next_with_id() => {
                    if let Some(error) = self.outcome(joined) {
                        return Some(error);
                    }
                }
            }
        }
    }

    /// Joins the tasks (and waits for the drain guards) for up to `grace`, then aborts the
    /// rest; returns the first failure seen meanwhile.
    async fn drain(&mut self, grace: Duration) -> Option<Error> {
        let mut first = None;
        let drained = self.shutdown.drained();
        let finished = tokio::time::timeout(grace, async {
            while let Some(joined) = self.tasks.join_next_with_id().await {
                if let Some(error) = self.outcome(joined) {
                    tracing::error!(task = error.task(), %error, "A supervised task failed while stopping");
                    first.get_or_insert(error);
                }
            }
            drained.await;
        })
        .await;
        if finished.is_err() {
            let mut running: Vec<_> = self.names.values().copied().collect();
            running.sort_unstable();
            tracing::warn!(
                ?running,
                grace_secs = grace.as_secs_f64(),
                "Graceful stop timed out; aborting what is left"
            );
            self.tasks.abort_all();
            // Aborted tasks end at their next await point; wait for that so their sockets
            // and files are closed when `run` returns.
            while self.tasks.join_next().await.is_some() {}
        }
        first
    }

    /// What a joined task means: `None` if it ended as expected.
    fn outcome(&mut self, joined: Result<(Id, Result<(), BoxError>), JoinError>) -> Option<Error> {
        let (id, result) = match joined {
            Ok((id, result)) => (id, Ok(result)),
            Err(error) => (error.id(), Err(error)),
        };
        let task = self.names.remove(&id).unwrap_or("unnamed");
        match result {
            Ok(Ok(())) if self.shutdown.is_stopped() => {
                tracing::debug!(task, "Task stopped");
                None
            }
            Ok(Ok(())) => Some(Error::Ended { task }),
            Ok(Err(source)) => Some(Error::Failed { task, source }),
            Err(error) if error.is_panic() => Some(Error::Panicked {
                task,
                message: panic_message(error.into_panic()),
            }),
            // Cancelled: only `drain` aborts, after the stop.
            Err(_) if self.shutdown.is_stopped() => None,
            Err(_) => Some(Error::Ended { task }),
        }
    }
}

/// The message of a `panic!` (a `&str` or a `String`).
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast_ref::<&'static str>() {
            Some(message) => (*message).to_owned(),
            None => "(not a string)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests;
