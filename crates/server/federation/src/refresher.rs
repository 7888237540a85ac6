//! The refresher: one task per federation relationship that fetches the remote bundle on
//! SPIRE's schedule ([`schedule`]) and stores it when it differs from the stored one. As in
//! SPIRE, `spiffe_sequence` is advisory: a sequence that goes backwards is logged and the
//! bundle stored anyway, so a remote that was reset cannot wedge federation. Any failure
//! keeps the stored bundle. Relationships come from a `watch` the caller keeps current;
//! a removed relationship stops its task and leaves its bundle in place (trust is removed
//! with `bundle delete`). Decisions read the injected clock; waiting uses tokio time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_id::TrustDomain;
use spire_server_datastore::{BundleEndpointProfile, DataStore, FederationRelationship};
use spire_svid::Bundle;
use spire_task::Shutdown;
use spire_time::SharedClock;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::Error;
use crate::client::{BundleClient, EndpointAuth};

pub(crate) mod schedule;

/// What the refresher needs.
#[derive(Clone, Debug)]
pub struct RefresherConfig {
    /// This server's trust domain. A relationship naming it is ignored: that bundle is the
    /// CA's, never a remote's.
    pub trust_domain: TrustDomain,
    /// Where bundles are read and stored.
    pub datastore: Arc<dyn DataStore>,
    /// Wall time for status and certificate checks.
    pub clock: SharedClock,
    /// The HTTPS client.
    pub client: BundleClient,
}

/// How one managed trust domain is doing, as last published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshStatus {
    /// Where its bundle is fetched.
    pub bundle_endpoint_url: String,
    /// Polls so far (scheduled and on demand).
    pub polls: u64,
    /// Polls that failed in a row; 0 after a success.
    pub consecutive_failures: u32,
    /// Why the last poll failed, if it did.
    pub last_error: Option<String>,
    /// When a poll last succeeded (injected clock).
    pub last_success: Option<SystemTime>,
    /// Delay from the last poll to the next scheduled one.
    pub next_poll_in: Duration,
}

/// What an on-demand refresh did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// No relationship with that trust domain.
    NotManaged,
    /// Fetched; the stored bundle was already the same.
    Unchanged,
    /// Fetched and stored.
    Stored,
}

/// The refresher's worker: owns the per-relationship tasks. Run it with [`Refresher::run`].
#[derive(Debug)]
pub struct Refresher {
    shared: Arc<Shared>,
    relationships: watch::Receiver<Vec<FederationRelationship>>,
    requests: mpsc::Receiver<Request>,
    managed: HashMap<TrustDomain, Managed>,
    /// The per-relationship tasks; dropping the refresher aborts them.
    updaters: JoinSet<()>,
}

/// A handle to a running [`Refresher`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RefresherHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<BTreeMap<TrustDomain, RefreshStatus>>,
}

/// What the worker and the tasks share.
#[derive(Debug)]
struct Shared {
    config: RefresherConfig,
    status: watch::Sender<BTreeMap<TrustDomain, RefreshStatus>>,
}

/// A refresh-now request.
#[derive(Debug)]
struct Request {
    trust_domain: TrustDomain,
    reply: oneshot::Sender<Result<RefreshOutcome, Error>>,
}

/// Where and how one trust domain's bundle is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    url: String,
    profile: BundleEndpointProfile,
}

/// A running per-relationship task.
#[derive(Debug)]
struct Managed {
    endpoint: watch::Sender<Endpoint>,
    requests: mpsc::UnboundedSender<oneshot::Sender<Result<RefreshOutcome, Error>>>,
    task: AbortHandle,
}

/// One relationship's polling loop.
struct Updater {
    trust_domain: TrustDomain,
    endpoint: watch::Receiver<Endpoint>,
    requests: mpsc::UnboundedReceiver<oneshot::Sender<Result<RefreshOutcome, Error>>>,
    shared: Arc<Shared>,
    /// The remote's `spiffe_sequence` last fetched, to notice it going backwards.
    last_remote_sequence: Option<u64>,
    failures: u32,
}

// === impl Refresher ===

impl Refresher {
    /// A refresher for the relationships `relationships` holds (their
    /// `trust_domain_bundle` is ignored), and its handle.
    pub fn new(
        config: RefresherConfig,
        relationships: watch::Receiver<Vec<FederationRelationship>>,
    ) -> (Self, RefresherHandle) {
        let (status, status_rx) = watch::channel(BTreeMap::new());
        let (requests_tx, requests) = mpsc::channel(64);
        let refresher = Self {
            shared: Arc::new(Shared { config, status }),
            relationships,
            requests,
            managed: HashMap::new(),
            updaters: JoinSet::new(),
        };
        let handle = RefresherHandle {
            requests: requests_tx,
            status: status_rx,
        };
        (refresher, handle)
    }

    /// Manages the relationships until `stop`, then stops every task. A per-relationship
    /// task that panics makes this one panic too, so that its supervisor sees it.
    pub async fn run(mut self, stop: Shutdown) {
        self.reconcile();
        let mut relationships_open = true;
        let mut requests_open = true;
        loop {
            tokio::select! {
                biased;
                // Server shutdown.
                () = stop.stopped() => break,
                // Relationships added, changed or removed (first, so a refresh request sent
                // right after publishing a new relationship finds it).
                changed = self.relationships.changed(), if relationships_open => match changed {
                    Ok(()) => self.reconcile(),
                    // The source is gone: keep the relationships as they are.
                    Err(_) => relationships_open = false,
                },
                // A refresh-now request from a handle.
                request = self.requests.recv(), if requests_open => match request {
                    Some(request) => self.forward(request),
                    None => requests_open = false,
                },
                // A per-relationship task ended: removed (aborted) or panicked.
                Some(joined) = self.updaters.join_next() => {
                    if let Err(error) = joined
                        && error.is_panic()
                    {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
            }
        }
        self.stop_all();
    }

    /// Starts, updates and stops tasks to match the relationships.
    fn reconcile(&mut self) {
        let own = &self.shared.config.trust_domain;
        let mut wanted = HashMap::new();
        for relationship in self.relationships.borrow_and_update().iter() {
            if &relationship.trust_domain == own {
                tracing::warn!(trust_domain = %own, "Ignoring a federation relationship with this server's own trust domain");
                continue;
            }
            let endpoint = Endpoint {
                url: relationship.bundle_endpoint_url.clone(),
                profile: relationship.profile.clone(),
            };
            wanted.insert(relationship.trust_domain.clone(), endpoint);
        }
        self.managed.retain(|trust_domain, managed| {
            let keep = wanted.contains_key(trust_domain);
            if !keep {
                tracing::info!(%trust_domain, "Trust domain no longer managed");
                managed.task.abort();
            }
            keep
        });
        self.shared.status.send_if_modified(|status| {
            let before = status.len();
            status.retain(|trust_domain, _| wanted.contains_key(trust_domain));
            status.len() != before
        });
        for (trust_domain, endpoint) in wanted {
            match self.managed.get(&trust_domain) {
                Some(managed) => {
                    let updated = managed.endpoint.send_if_modified(|current| {
                        let changed = *current != endpoint;
                        if changed {
                            *current = endpoint.clone();
                        }
                        changed
                    });
                    if updated {
                        tracing::info!(%trust_domain, bundle_endpoint_url = %endpoint.url, "Updated configuration for managed trust domain");
                    }
                }
                None => {
                    let managed = self.start(trust_domain.clone(), endpoint);
                    self.managed.insert(trust_domain, managed);
                }
            }
        }
    }

    fn start(&mut self, trust_domain: TrustDomain, endpoint: Endpoint) -> Managed {
        tracing::info!(%trust_domain, bundle_endpoint_url = %endpoint.url, "Trust domain is now managed");
        self.shared.status.send_modify(|status| {
            status.insert(
                trust_domain.clone(),
                RefreshStatus {
                    bundle_endpoint_url: endpoint.url.clone(),
                    polls: 0,
                    consecutive_failures: 0,
                    last_error: None,
                    last_success: None,
                    next_poll_in: Duration::ZERO,
                },
            );
        });
        let (endpoint_tx, endpoint_rx) = watch::channel(endpoint);
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let updater = Updater {
            trust_domain,
            endpoint: endpoint_rx,
            requests: requests_rx,
            shared: self.shared.clone(),
            last_remote_sequence: None,
            failures: 0,
        };
        Managed {
            endpoint: endpoint_tx,
            requests: requests_tx,
            task: self.updaters.spawn(updater.run()),
        }
    }

    fn forward(&self, request: Request) {
        match self.managed.get(&request.trust_domain) {
            Some(managed) => {
                // A send fails only if the task ended; the dropped reply reports that.
                let _ = managed.requests.send(request.reply);
            }
            None => {
                let _ = request.reply.send(Ok(RefreshOutcome::NotManaged));
            }
        }
    }

    fn stop_all(&mut self) {
        for (_, managed) in self.managed.drain() {
            managed.task.abort();
        }
        self.shared.status.send_replace(BTreeMap::new());
    }
}

// === impl RefresherHandle ===

impl RefresherHandle {
    /// Fetches the bundle of `trust_domain` now (the TrustDomain API's `RefreshBundle`), and
    /// reschedules its next poll from the result.
    pub async fn refresh_now(&self, trust_domain: &TrustDomain) -> Result<RefreshOutcome, Error> {
        let (reply, response) = oneshot::channel();
        let request = Request {
            trust_domain: trust_domain.clone(),
            reply,
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| Error::Stopped)?;
        response.await.map_err(|_| Error::Stopped)?
    }

    /// The status of every managed trust domain, updated after each poll.
    pub fn status(&self) -> watch::Receiver<BTreeMap<TrustDomain, RefreshStatus>> {
        self.status.clone()
    }
}

// === impl Updater ===

impl Updater {
    async fn run(mut self) {
        let mut waiting = None;
        loop {
            let (result, freshest) = self.poll().await;
            let delay = schedule::next_poll(freshest.as_ref(), self.failures);
            self.publish(&result, delay);
            if let Err(error) = &result {
                tracing::error!(trust_domain = %self.trust_domain, %error, "Error updating bundle");
            }
            if let Some(reply) = waiting.take() {
                let _ = oneshot::Sender::send(reply, result);
            }
            tracing::debug!(trust_domain = %self.trust_domain, in_seconds = delay.as_secs(), "Scheduling next bundle refresh");
            tokio::select! {
                // Time for the next scheduled poll.
                () = tokio::time::sleep(delay) => {}
                // Refresh now; the reply goes out after the poll.
                request = self.requests.recv() => match request {
                    Some(reply) => waiting = Some(reply),
                    // The worker dropped this relationship.
                    None => return,
                },
            }
        }
    }

    /// One poll: the result, and the freshest bundle known afterwards.
    async fn poll(&mut self) -> (Result<RefreshOutcome, Error>, Option<Bundle>) {
        let datastore = self.shared.config.datastore.clone();
        let endpoint = self.endpoint.borrow().clone();
        let local = match datastore.fetch_bundle(&self.trust_domain).await {
            Ok(local) => local,
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                return (Err(error.into()), None);
            }
        };
        let fetched = match self.fetch(&endpoint, local.as_ref()).await {
            Ok(fetched) => fetched,
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                return (Err(error), local);
            }
        };
        self.check_sequence(&fetched);
        if local
            .as_ref()
            .is_some_and(|local| same_content(local, &fetched))
        {
            self.failures = 0;
            return (Ok(RefreshOutcome::Unchanged), Some(fetched));
        }
        match datastore.set_bundle(fetched).await {
            Ok(stored) => {
                tracing::info!(trust_domain = %self.trust_domain, sequence = stored.sequence_number, "Bundle refreshed");
                self.failures = 0;
                (Ok(RefreshOutcome::Stored), Some(stored))
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                (Err(error.into()), local)
            }
        }
    }

    async fn fetch(&self, endpoint: &Endpoint, local: Option<&Bundle>) -> Result<Bundle, Error> {
        let client = &self.shared.config.client;
        match &endpoint.profile {
            BundleEndpointProfile::HttpsWeb => {
                client
                    .fetch(&endpoint.url, &self.trust_domain, EndpointAuth::Web)
                    .await
            }
            BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
                let endpoint_td = endpoint_spiffe_id.trust_domain();
                let other;
                let bundle = if endpoint_td == &self.trust_domain {
                    local
                } else {
                    other = self
                        .shared
                        .config
                        .datastore
                        .fetch_bundle(endpoint_td)
                        .await?;
                    other.as_ref()
                };
                let bundle = bundle.ok_or_else(|| Error::NoEndpointBundle {
                    trust_domain: endpoint_td.clone(),
                })?;
                let auth = EndpointAuth::Spiffe {
                    endpoint_spiffe_id,
                    bundle,
                };
                client.fetch(&endpoint.url, &self.trust_domain, auth).await
            }
        }
    }

    /// Logs a remote sequence number that went backwards; it is not enforced.
    fn check_sequence(&mut self, fetched: &Bundle) {
        if let Some(previous) = self.last_remote_sequence
            && fetched.sequence_number < previous
        {
            tracing::warn!(
                trust_domain = %self.trust_domain,
                previous,
                fetched = fetched.sequence_number,
                "Remote bundle sequence number went backwards; storing the bundle anyway"
            );
        }
        self.last_remote_sequence = Some(fetched.sequence_number);
    }

    fn publish(&self, result: &Result<RefreshOutcome, Error>, delay: Duration) {
        let now = self.shared.config.clock.now();
        let url = self.endpoint.borrow().url.clone();
        self.shared.status.send_if_modified(|status| {
            let Some(entry) = status.get_mut(&self.trust_domain) else {
                return false;
            };
            entry.bundle_endpoint_url = url;
            entry.polls += 1;
            entry.consecutive_failures = self.failures;
            entry.next_poll_in = delay;
            match result {
                Ok(_) => {
                    entry.last_error = None;
                    entry.last_success = Some(now);
                }
                Err(error) => entry.last_error = Some(error.to_string()),
            }
            true
        });
    }
}

/// Whether two bundles hold the same authorities and hint (sequence numbers and taint
/// flags are the store's, not the document's).
fn same_content(stored: &Bundle, fetched: &Bundle) -> bool {
    stored.refresh_hint == fetched.refresh_hint
        && stored.x509_authorities.len() == fetched.x509_authorities.len()
        && stored
            .x509_authorities
            .iter()
            .zip(&fetched.x509_authorities)
            .all(|(a, b)| a.asn1 == b.asn1)
        && stored.jwt_authorities.len() == fetched.jwt_authorities.len()
        && stored
            .jwt_authorities
            .iter()
            .zip(&fetched.jwt_authorities)
            .all(|(a, b)| a.key_id == b.key_id && a.public_key == b.public_key)
}

#[cfg(test)]
mod tests;
