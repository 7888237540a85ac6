//! Peer tracking: attest the process behind a Workload API connection without being fooled by
//! PID reuse.
//!
//! The PID comes from `SO_PEERCRED` of the accepted connection. Before anything under
//! `/proc/<pid>` is read, a pidfd pins that process: a pidfd keeps referring to the same
//! process even after it exits and its PID is handed to another one, and it becomes readable
//! once the process has exited. Attestation succeeds only if the pinned process is still alive
//! after every attestor has finished, so whatever was read from `/proc/<pid>` described it.
//! The pidfd is an `OwnedFd` and is closed on every path (SPI-01-006: no fd leak).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags};
use spire_id::SelectorSet;

use crate::attestor::{WorkloadAttestor, attest_all};
use crate::{Error, Result};

/// Attests the caller `pid`: pins it with a pidfd, runs every attestor ([`attest_all`]) and
/// checks the pinned process is still alive. A caller that exited (or was never there) fails
/// with [`Error::CallerGone`]; every attestor failing gives [`Error::AttestationFailed`].
pub async fn attest_caller(
    pid: i32,
    attestors: &[Arc<dyn WorkloadAttestor>],
) -> Result<SelectorSet> {
    let pidfd = pin(pid)?;
    let selectors = attest_all(pid, attestors).await?;
    if exited(&pidfd) {
        tracing::warn!(pid, "caller exited during workload attestation");
        return Err(Error::CallerGone);
    }
    Ok(selectors)
}

/// The caller's PID from `SO_PEERCRED` of the Unix connection `request` came on (`None` for
/// other transports). Used by every service on the public socket (Workload API, SDS).
pub fn caller_pid<T>(request: &tonic::Request<T>) -> Option<i32> {
    request
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()?
        .peer_cred?
        .pid()
}

/// A pidfd for `pid`, refused when the process is already gone or has exited (a zombie).
fn pin(pid: i32) -> Result<OwnedFd> {
    let raw = (pid > 0)
        .then(|| Pid::from_raw(pid))
        .flatten()
        .ok_or(Error::NoPeerPid)?;
    let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty()).map_err(|errno| {
        tracing::debug!(pid, %errno, "pidfd_open failed");
        Error::CallerGone
    })?;
    if exited(&pidfd) {
        return Err(Error::CallerGone);
    }
    Ok(pidfd)
}

/// Whether the process behind `pidfd` has exited (the pidfd polls readable); a failing poll
/// counts as exited.
fn exited(pidfd: &OwnedFd) -> bool {
    let fd = pidfd.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&now)) {
        Ok(0) => false,
        Ok(_) => !fds[0].revents().is_empty(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests;
