//! Process plumbing both `run` commands share: the umask and the stop signals (the logger is
//! in `logging`).

/// Resolves on SIGTERM or SIGINT (never, if the handlers cannot be installed).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can still be killed; just never stop gracefully.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        // SIGTERM (Kubernetes, systemd).
        _ = term.recv() => {}
        // SIGINT (Ctrl-C).
        _ = int.recv() => {}
    }
}

/// Forces the process umask to include 027 (no write for group, nothing for others), as
/// SPIRE does, so that key files, the datastore and sockets are never world-readable.
/// Returns the umask in force before.
pub fn tighten_umask() -> u32 {
    use rustix::fs::Mode;
    let previous = rustix::process::umask(Mode::from_raw_mode(0o027));
    rustix::process::umask(previous | Mode::from_raw_mode(0o027));
    previous.as_raw_mode()
}

/// Raises the soft limit on open files to the hard limit, as the Go runtime does for SPIRE at
/// start-up: Debian's soft limit of 1024 would otherwise stall a server near a thousand agent
/// connections, or an agent near a thousand workload streams. Returns the limit now in force
/// (`None`: unlimited or unknown).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(errno) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%errno, "Could not raise the open file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// What `run` does before starting a daemon (`what` is `server` or `agent`): the umask forced
/// to include 027, with SPIRE's warning when it had to be, the open-file soft limit raised to
/// the hard limit, and the process's stop signal, triggered on SIGTERM or SIGINT. Call inside
/// a tokio runtime, after [`crate::start_logging`].
pub fn prepare_daemon(what: &'static str) -> spire_task::Shutdown {
    let previous = tighten_umask();
    if previous & 0o027 != 0o027 {
        tracing::warn!(
            previous = format!("{previous:04o}"),
            "Current umask is too permissive; setting umask 0027"
        );
    }
    let open_files = raise_open_file_limit();
    tracing::debug!(?open_files, "Open file limit");
    let shutdown = spire_task::Shutdown::new();
    let trigger = shutdown.clone();
    // Not supervised: it only triggers the signal the supervisor watches, and ends then.
    tokio::spawn(async move {
        tokio::select! {
            // SIGTERM or SIGINT.
            () = wait_for_signal() => tracing::info!("Stopping {what}"),
            // Stopping anyway (a task failed): nothing left to do.
            () = trigger.stopped() => return,
        }
        trigger.trigger();
    });
    shutdown
}

/// `validate`: SPIRE's verdict on a configuration file for `what` (`server` or `agent`):
/// `SPIRE <what> configuration file is valid.` on stdout, or the error naming why.
pub fn report_validation<T, E: std::fmt::Display>(
    what: &str,
    loaded: Result<T, E>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    match loaded {
        Ok(_) => {
            writeln!(
                std::io::stdout().lock(),
                "SPIRE {what} configuration file is valid."
            )?;
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "SPIRE {what} configuration file is invalid: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::{Resource, getrlimit};

    #[test]
    fn the_open_file_soft_limit_reaches_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(super::raise_open_file_limit(), hard);
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }
}
