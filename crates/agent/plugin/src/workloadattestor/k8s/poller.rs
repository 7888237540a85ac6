//! The shared pod-list fetcher: one kubelet request at a time for every attestation.
//!
//! Callers ask for a pod list newer than the one they already examined
//! ([`Poller::next`]). A fetched list is handed out while it is fresh — until
//! `poll_retry_interval` after its request started — so a burst of attestations costs one
//! request and a label change is seen within one interval. Otherwise the caller joins the
//! request in flight, or schedules one: request starts are at least `poll_retry_interval`
//! apart, whoever asks. Each body is parsed once, by the task that fetched it, and shared.
//!
//! Nothing runs while nobody attests: a request is only started for a waiting caller, and a
//! scheduled request whose callers all went away is dropped before it is sent.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::pods::PodList;

/// A boxed error whose message attestation reports once it gives up.
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

/// Bodies above this size are parsed on the blocking pool.
const PARSE_INLINE_LIMIT: usize = 1024 * 1024;

/// Where pod lists come from: the kubelet's `GET /pods`, or a fake in tests.
#[async_trait::async_trait]
pub trait PodListSource: Send + Sync + fmt::Debug + 'static {
    /// One request for the pod list: the raw body of a 200 response.
    async fn fetch_pods(&self) -> Result<Bytes, FetchError>;
}

/// One parsed pod list and when its request started.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every request (1 for the first).
    pub version: u64,
    /// The pods.
    pub pods: PodList,
    started: Instant,
}

/// The outcome of one request, shared by everyone who waited for it: the snapshot, or the
/// error message.
pub type Outcome = Result<Arc<Snapshot>, Arc<str>>;

/// The fetcher; cheap to clone, clones share everything.
#[derive(Clone, Debug)]
pub struct Poller {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    source: Arc<dyn PodListSource>,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The newest successfully parsed list.
    cached: Option<Arc<Snapshot>>,
    /// When the last request started.
    last_start: Option<Instant>,
    /// The request in flight or scheduled; callers clone this receiver.
    pending: Option<watch::Receiver<Option<Outcome>>>,
    /// Versions handed out so far.
    versions: u64,
}

// === impl Poller ===

impl Poller {
    /// A fetcher over `source` with requests at least `interval` apart.
    pub fn new(source: Arc<dyn PodListSource>, interval: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                interval,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A pod list newer than version `after` (0: any): the fresh cached one, or the result of
    /// the request in flight or of the next one.
    pub async fn next(&self, after: u64) -> Outcome {
        let mut pending = {
            let mut state = self.shared.lock();
            let now = Instant::now();
            if let Some(cached) = &state.cached
                && cached.version > after
                && now < cached.started + self.shared.interval
            {
                return Ok(Arc::clone(cached));
            }
            match &state.pending {
                // `has_changed` fails once the request task is gone (it panicked).
                Some(pending) if pending.has_changed().is_ok() => pending.clone(),
                _ => self.schedule(&mut state, now),
            }
        };
        match pending.wait_for(Option::is_some).await {
            Ok(outcome) => outcome
                .clone()
                .unwrap_or_else(|| Err("pod list request produced no result".into())),
            Err(_) => Err("pod list request ended without a result".into()),
        }
    }

    /// How many requests have been started.
    pub fn requests(&self) -> u64 {
        self.shared.lock().versions
    }

    fn schedule(&self, state: &mut State, now: Instant) -> watch::Receiver<Option<Outcome>> {
        let (sender, receiver) = watch::channel(None);
        state.pending = Some(receiver.clone());
        let start_at = state
            .last_start
            .map_or(now, |last| (last + self.shared.interval).max(now));
        let shared = Arc::clone(&self.shared);
        tokio::spawn(shared.request(sender, start_at));
        receiver
    }
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic in a holder (plain field writes).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until `start_at`, sends the request if anyone still waits, parses the body and
    /// publishes the outcome.
    async fn request(self: Arc<Self>, sender: watch::Sender<Option<Outcome>>, start_at: Instant) {
        tokio::time::sleep_until(start_at).await;
        let (version, started) = {
            let mut state = self.lock();
            // The state's own receiver is one; nobody else means every caller gave up.
            if sender.receiver_count() <= 1 {
                state.pending = None;
                return;
            }
            let now = Instant::now();
            state.last_start = Some(now);
            state.versions += 1;
            (state.versions, now)
        };
        tracing::debug!(version, "fetching the kubelet pod list");
        let outcome = match self.source.fetch_pods().await {
            Ok(body) => parse(body).await.map(|pods| {
                Arc::new(Snapshot {
                    version,
                    pods,
                    started,
                })
            }),
            Err(error) => Err(Arc::from(error.to_string())),
        };
        if let Err(message) = &outcome {
            tracing::warn!(version, error = %message, "kubelet pod list unavailable");
        }
        let mut state = self.lock();
        if let Ok(snapshot) = &outcome {
            state.cached = Some(Arc::clone(snapshot));
        }
        state.pending = None;
        sender.send_replace(Some(outcome));
    }
}

async fn parse(body: Bytes) -> Result<PodList, Arc<str>> {
    let parsed = if body.len() <= PARSE_INLINE_LIMIT {
        PodList::parse(&body)
    } else {
        tokio::task::spawn_blocking(move || PodList::parse(&body))
            .await
            .map_err(|e| Arc::<str>::from(format!("pod list parser failed: {e}")))?
    };
    parsed.map_err(|e| Arc::from(e.to_string()))
}
