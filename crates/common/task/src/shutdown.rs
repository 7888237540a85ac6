//! The process's stop signal and the guards of in-flight work.

use std::future::Future;

use tokio::sync::watch;

/// The process's stop signal. Cheap to clone; every clone watches and can trigger the same
/// signal, which never resets. A future from [`Shutdown::stopped`] also resolves once every
/// clone is gone, since nothing could stop it any more.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// `true` once stopping.
    stop: watch::Sender<bool>,
    /// One receiver per [`DrainGuard`]; `closed()` once none is left.
    in_flight: watch::Sender<()>,
}

/// Marks in-flight work that the process waits for, up to its grace period, before it exits
/// (see [`Shutdown::guard`]). Dropping it ends the work.
#[derive(Debug)]
#[must_use = "the work counts as in flight only while the guard is held"]
pub struct DrainGuard {
    _in_flight: watch::Receiver<()>,
}

// === impl Shutdown ===

impl Shutdown {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        let (stop, _) = watch::channel(false);
        let (in_flight, _) = watch::channel(());
        Self { stop, in_flight }
    }

    /// Starts stopping. Idempotent.
    pub fn trigger(&self) {
        self.stop.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the signal is triggered (at once if it already was). The future owns
    /// what it needs, so it can be handed to a server as its shutdown signal or spawned.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut stop = self.stop.subscribe();
        async move {
            // An error means every `Shutdown` is gone: nothing can trigger it, so stop too.
            // The guard `wait_for` returns is dropped here, never held across an await.
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    /// The signal as a `watch` receiver (`true` once stopping), for code that takes one.
    /// If the signal was already triggered, the receiver reports it as a change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        let mut receiver = self.stop.subscribe();
        if *receiver.borrow() {
            receiver.mark_changed();
        }
        receiver
    }

    /// Marks work in flight until the guard is dropped; [`Shutdown::drained`] waits for it.
    pub fn guard(&self) -> DrainGuard {
        DrainGuard {
            _in_flight: self.in_flight.subscribe(),
        }
    }

    /// Resolves once no [`DrainGuard`] is held.
    pub fn drained(&self) -> impl Future<Output = ()> + Send + use<> {
        let in_flight = self.in_flight.clone();
        async move { in_flight.closed().await }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn stopped_resolves_once_triggered_by_any_clone() {
        let shutdown = Shutdown::new();
        let waiting = tokio::spawn(shutdown.stopped());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(!shutdown.is_stopped());

        shutdown.clone().trigger();
        waiting.await.unwrap();
        assert!(shutdown.is_stopped());
        // Already stopped: at once, and again.
        shutdown.stopped().await;
        shutdown.trigger();
        assert!(shutdown.is_stopped());
    }

    #[tokio::test]
    async fn stopped_resolves_once_every_clone_is_gone() {
        let shutdown = Shutdown::new();
        let waiting = shutdown.stopped();
        drop(shutdown);
        waiting.await;
    }

    #[tokio::test]
    async fn watch_reports_a_trigger_before_and_after_it_was_taken() {
        let shutdown = Shutdown::new();
        let mut before = shutdown.watch();
        assert!(!*before.borrow());
        shutdown.trigger();
        before.changed().await.unwrap();
        assert!(*before.borrow());

        let mut after = shutdown.watch();
        after.changed().await.unwrap();
        assert!(*after.borrow_and_update());
    }

    #[tokio::test(start_paused = true)]
    async fn drained_waits_for_every_guard() {
        let shutdown = Shutdown::new();
        shutdown.drained().await; // none held

        let first = shutdown.guard();
        let second = shutdown.guard();
        let drained = tokio::spawn(shutdown.drained());
        tokio::task::yield_now().await;
        drop(first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!drained.is_finished(), "a guard is still held");
        drop(second);
        drained.await.unwrap();
    }
}
