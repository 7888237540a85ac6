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

/// What `run` does before starting a daemon (`what` is `server` or `agent`): the umask forced
/// to include 027, with SPIRE's warning when it had to be, and the process's stop signal,
/// triggered on SIGTERM or SIGINT. Call inside a tokio runtime, after [`crate::start_logging`].
pub fn prepare_daemon(what: &'static str) -> spire_task::Shutdown {
    let previous = tighten_umask();
    if previous & 0o027 != 0o027 {
        tracing::warn!(
            previous = format!("{previous:04o}"),
            "Current umask is too permissive; setting umask 0027"
        );
    }
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
