//! The `health_checks` HTTP listener: live and ready paths over cached subsystem checks, with
//! SPIRE's semantics (`pkg/common/health`).
//!
//! * Each subsystem is a [`Checker`]: a name and a check returning a [`State`] (live and
//!   ready, each with JSON details).
//! * [`Health`] runs the checks: at once, then every second until every subsystem has passed,
//!   then every minute. Results are cached in a [`Report`]; the HTTP paths and any other reader
//!   ([`Health::subscribe`]) see the latest one, and nothing they do makes a check run, so a
//!   probe storm costs no checks.
//! * [`HealthListener`] serves `GET <live_path>` / `<ready_path>`: 200 when every subsystem is
//!   live (ready), else 500; `Content-Type: application/json`; the body maps each subsystem
//!   name to its live (ready) details. Other paths get Go's 404. A subsystem not checked yet
//!   counts as live and not ready, with `null` details.
//! * The listener is bounded ([`HealthLimits`]): HTTP/1.1 only, a fixed number of
//!   connections (more are closed at once), small request heads, a header timeout, no
//!   keep-alive, a lifetime per connection.
//!
//! ```ignore
//! let config = spire_health::HealthConfig::from_document(&doc)?;
//! spire_health::serve(&config, checkers, shutdown).await?;
//! ```
#![forbid(unsafe_code)]

mod check;
mod config;
mod dial;
mod listener;
mod runner;

pub use check::{Checker, Report, State};
pub use config::{
    DEFAULT_BIND_ADDRESS, DEFAULT_BIND_PORT, DEFAULT_LIVE_PATH, DEFAULT_READY_PATH, HealthConfig,
    HealthLimits,
};
pub use dial::unix_channel;
pub use listener::{HealthListener, listen};
pub use runner::{CHECK_TIMEOUT, Health, STEADY_INTERVAL, UNTIL_PASSING_INTERVAL, serve};

/// Why the health checks could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two checkers have the same name (SPIRE's wording).
    #[error("check {0:?} has already been added")]
    DuplicateCheck(String),
    /// `live_path` and `ready_path` are the same path.
    #[error("health_checks: live_path and ready_path must differ (both are {0:?})")]
    SamePath(String),
    /// The listener could not be bound.
    #[error("binding the health checks listener on {address}: {source}")]
    Bind {
        /// `bind_address:bind_port`.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
