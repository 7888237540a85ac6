//! Test-only failpoints for the fault-injection suite (`docs/faults.md`).
//!
//! A failpoint is a named step in a write path. When the environment variable
//! `SPIRE_RS_FAILPOINT` holds that name, the process prints `failpoint <name> reached` to
//! stderr and parks the calling thread for good, so that a test can `kill -9` the process at
//! exactly that step. When the variable is unset (always, outside the suite) a failpoint is
//! one environment lookup and does nothing.

/// The environment variable naming the failpoint to stop at.
pub const FAILPOINT_VAR: &str = "SPIRE_RS_FAILPOINT";

/// Stops the calling thread forever when `SPIRE_RS_FAILPOINT` is `name`; returns otherwise.
pub fn failpoint(name: &str) {
    if std::env::var_os(FAILPOINT_VAR).is_some_and(|v| v == name) {
        eprintln!("failpoint {name} reached");
        loop {
            std::thread::park();
        }
    }
}
