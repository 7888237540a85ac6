use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::*;

const GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("the CA is gone")]
struct CaGone;

/// A task that runs until the shutdown signal, then needs `cleanup` to finish, and records
/// that it did.
fn well_behaved(
    shutdown: &Shutdown,
    cleanup: Duration,
) -> (impl Future<Output = ()> + use<>, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(false));
    let stopped = shutdown.stopped();
    let flag = done.clone();
    let task = async move {
        stopped.await;
        tokio::time::sleep(cleanup).await;
        flag.store(true, Ordering::SeqCst);
    };
    (task, done)
}

#[tokio::test(start_paused = true)]
async fn a_panic_stops_the_others_and_names_the_task() {
    let shutdown = Shutdown::new();
    let mut tasks = Supervisor::new(shutdown.clone());
    let (feed, feed_stopped) = well_behaved(&shutdown, Duration::from_secs(1));
    tasks.spawn("change-feed", feed);
    tasks.spawn("ca-rotator", async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        // A bug an hour into the run: an empty chain where one was assumed.
        let chain: Vec<Vec<u8>> = Vec::new();
        let _leaf = chain.first().expect("rotation bug");
    });

    let error = tasks.run(GRACE).await.unwrap_err();
    assert!(
        matches!(&error, Error::Panicked { task: "ca-rotator", message } if message == "rotation bug"),
        "{error:?}"
    );
    assert_eq!(error.task(), "ca-rotator");
    assert_eq!(
        error.to_string(),
        "task \"ca-rotator\" panicked: rotation bug"
    );
    assert!(shutdown.is_stopped(), "the failure stops the process");
    assert!(
        feed_stopped.load(Ordering::SeqCst),
        "the other task drained"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_names_the_task_and_keeps_its_error() {
    let shutdown = Shutdown::new();
    let mut tasks = Supervisor::new(shutdown.clone());
    let (feed, feed_stopped) = well_behaved(&shutdown, Duration::ZERO);
    tasks.spawn("change-feed", feed);
    tasks.spawn("ca-rotator", async { Err::<(), _>(CaGone) });

    let error = tasks.run(GRACE).await.unwrap_err();
    assert_eq!(error.task(), "ca-rotator");
    assert_eq!(
        error.to_string(),
        "task \"ca-rotator\" failed: the CA is gone"
    );
    assert!(error.source_error().is_some_and(|e| e.is::<CaGone>()));
    assert!(matches!(error.downcast::<CaGone>(), Ok(CaGone)));
    assert!(feed_stopped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_clean_early_exit_is_reported() {
    let shutdown = Shutdown::new();
    let mut tasks = Supervisor::new(shutdown.clone());
    let (acceptor, _) = well_behaved(&shutdown, Duration::ZERO);
    tasks.spawn("tls-acceptor", acceptor);
    tasks.spawn("verifier-refresher", async {});

    let error = tasks.run(GRACE).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Ended {
                task: "verifier-refresher"
            }
        ),
        "{error:?}"
    );
    assert!(shutdown.is_stopped());
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_drains_tasks_and_guards() {
    let shutdown = Shutdown::new();
    let mut tasks = Supervisor::new(shutdown.clone());
    let (slow, slow_done) = well_behaved(&shutdown, Duration::from_secs(3));
    let (fast, fast_done) = well_behaved(&shutdown, Duration::ZERO);
    tasks.spawn("admin-api", slow);
    tasks.spawn("server-api", fast);
    let stopped = shutdown.stopped();
    tasks.spawn("tls-acceptor", async move {
        stopped.await;
        Ok::<(), CaGone>(())
    });
    // A detached in-flight stream that needs 5 s once the stop arrives.
    let guard = shutdown.guard();
    let stopped = shutdown.stopped();
    let stream_done = Arc::new(AtomicBool::new(false));
    let flag = stream_done.clone();
    tokio::spawn(async move {
        stopped.await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        flag.store(true, Ordering::SeqCst);
        drop(guard);
    });

    let stopping = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        stopping.trigger();
    });
    tasks.run(GRACE).await.unwrap();
    assert!(slow_done.load(Ordering::SeqCst));
    assert!(fast_done.load(Ordering::SeqCst));
    assert!(
        stream_done.load(Ordering::SeqCst),
        "run waits for drain guards"
    );
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_bounds_the_stop_and_aborts_the_rest() {
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let shutdown = Shutdown::new();
    let mut tasks = Supervisor::new(shutdown.clone());
    let aborted = Arc::new(AtomicBool::new(false));
    let witness = Dropped(aborted.clone());
    // Ignores the stop signal.
    tasks.spawn("stuck", async move {
        let _witness = witness;
        std::future::pending::<()>().await;
    });
    let (drains, drained) = well_behaved(&shutdown, Duration::from_secs(1));
    tasks.spawn("drains", drains);

    shutdown.trigger();
    let start = Instant::now();
    tasks.run(GRACE).await.unwrap();
    // Paused clock: time only moves when every task waits, so this is exact.
    assert_eq!(start.elapsed(), GRACE);
    assert!(aborted.load(Ordering::SeqCst), "the stuck task was aborted");
    assert!(drained.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_stopping_is_still_reported() {
    let shutdown = Shutdown::new();
    let mut tasks = Supervisor::new(shutdown.clone());
    let stopped = shutdown.stopped();
    tasks.spawn("bundle-endpoint", async move {
        stopped.await;
        Err::<(), _>(CaGone)
    });
    shutdown.trigger();
    let error = tasks.run(GRACE).await.unwrap_err();
    assert_eq!(error.task(), "bundle-endpoint");
}

#[tokio::test(start_paused = true)]
async fn without_tasks_run_waits_for_the_stop() {
    let shutdown = Shutdown::new();
    let tasks = Supervisor::new(shutdown.clone());
    let running = tokio::spawn(tasks.run(GRACE));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!running.is_finished());
    shutdown.trigger();
    running.await.unwrap().unwrap();
}

#[test]
fn each_task_logs_inside_a_span_with_its_name() {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The current-thread runtime runs every task on this thread, under this subscriber.
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let shutdown = Shutdown::new();
            let mut tasks = Supervisor::new(shutdown.clone());
            tasks.spawn("server-svid-rotator", async {
                tracing::info!("rotated");
                Err::<(), _>(CaGone)
            });
            tasks.run(GRACE).await.unwrap_err();
        });
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().any(
            |l| l.contains("task{subsystem_name=\"server-svid-rotator\"}") && l.contains("rotated")
        ),
        "{logs}"
    );
    assert!(
        logs.lines().any(|l| l.contains("ERROR")
            && l.contains("task=\"server-svid-rotator\"")
            && l.contains("the CA is gone")),
        "{logs}"
    );
}
