//! One shutdown signal and one supervisor for every long-running task.
//!
//! A process has one [`Shutdown`]: a cheap-to-clone signal that every task watches
//! ([`Shutdown::stopped`]) and that the stop signal handler, or the supervisor after a
//! failure, triggers ([`Shutdown::trigger`]). In-flight work that must finish before the
//! process exits holds a [`DrainGuard`].
//!
//! A [`Supervisor`] owns the process's long-running tasks. Each runs under its name, inside
//! a tracing span carrying that name. [`Supervisor::run`] returns once the process stops:
//! the first task that panics, fails, or ends while the process is not stopping triggers the
//! shutdown, and its name is logged and returned in the [`Error`]; the other tasks then get
//! a grace period to drain before they are aborted.
#![forbid(unsafe_code)]

mod failpoint;
mod shutdown;
mod supervisor;

pub use failpoint::{FAILPOINT_VAR, failpoint};
pub use shutdown::{DrainGuard, Shutdown};
pub use supervisor::{Supervisor, TaskOutput};

/// The error a task may end with: anything that converts into a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a supervised task stopped the process. Each variant names the task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task returned an error.
    #[error("task {task:?} failed: {source}")]
    Failed {
        /// The task's name.
        task: &'static str,
        /// The task's error.
        #[source]
        source: BoxError,
    },
    /// The task panicked.
    #[error("task {task:?} panicked: {message}")]
    Panicked {
        /// The task's name.
        task: &'static str,
        /// The panic message (when the payload was a string).
        message: String,
    },
    /// The task returned while the process was not stopping: whatever it did is no longer
    /// done.
    #[error("task {task:?} ended while the process was not stopping")]
    Ended {
        /// The task's name.
        task: &'static str,
    },
}

// === impl Error ===

impl Error {
    /// The name of the task at fault.
    pub fn task(&self) -> &'static str {
        match self {
            Self::Failed { task, .. } | Self::Panicked { task, .. } | Self::Ended { task } => task,
        }
    }

    /// The task's own error, for [`Error::Failed`].
    pub fn source_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Self::Failed { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }

    /// The task's own error as `E`, when it failed with one; otherwise `self` unchanged. Lets
    /// a caller keep returning its own error type for the failures it knows.
    pub fn downcast<E: std::error::Error + 'static>(self) -> Result<E, Self> {
        match self {
            Self::Failed { task, source } => match source.downcast::<E>() {
                Ok(error) => Ok(*error),
                Err(source) => Err(Self::Failed { task, source }),
            },
            other => Err(other),
        }
    }
}
