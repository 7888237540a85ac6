//! `enable_namespace_labels`: `ns-label:<key>:<value>` selectors from the labels of the
//! workload pod's namespace, read from the apiserver (`GET /api/v1/namespaces/<name>`).
//!
//! Caching: the labels of a namespace are reused for [`NAMESPACE_LABELS_TTL`] (5 s) after
//! their request started, so attestations under load cost at most one GET per namespace per
//! 5 s and a label change (or removal) is seen within 5 s. Concurrent attestations in one
//! namespace share the request in flight. SPIRE reads the namespace on every attestation
//! (or keeps an informer cache when `experimental.api_server.cache` is on); 5 s bounds the
//! staleness like that cache does while keeping the apiserver's load independent of the
//! attestation rate.
//!
//! Failures are SPIRE's: the attestation fails with `Internal` `unable to get namespace
//! labels for "<ns>": <cause>` (a missing namespace included); stale labels are never used
//! instead. A failure is shared by the callers of that request and by attestations in the
//! following `poll_retry_interval` (at most [`NAMESPACE_LABELS_TTL`]), so an apiserver outage
//! is not met with a GET per attestation.
//!
//! The client uses the agent's in-cluster credentials, as SPIRE does, built when the
//! attestor is configured; if that fails (not in a cluster) the attestor still configures,
//! as SPIRE's does, and every attestation that needs labels tries again and fails with
//! `unable to set up kube client: …` until it works.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use spire_id::Selector;
use spire_k8s::{ApiClient, ClientConfig};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::FetchError;
use super::pods::selector;
use crate::{Code, Error, Result};

/// How long a namespace's labels are reused after their request started.
pub const NAMESPACE_LABELS_TTL: Duration = Duration::from_secs(5);

/// Past this many cached namespaces, expired entries are dropped on insertion.
const PRUNE_AT: usize = 64;

/// Where namespace labels come from: the apiserver, or a fake in tests.
#[async_trait::async_trait]
pub trait NamespaceSource: Send + Sync + fmt::Debug + 'static {
    /// One request for the labels of namespace `name`.
    async fn namespace_labels(&self, name: &str) -> Result<BTreeMap<String, String>, FetchError>;
}

/// The apiserver as a [`NamespaceSource`].
pub struct ApiNamespaces {
    /// `None`: the in-cluster configuration.
    config: Option<ClientConfig>,
    client: OnceLock<ApiClient>,
}

/// The `ns-label` selectors of each namespace, cached; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct NamespaceLabels {
    source: Arc<dyn NamespaceSource>,
    ttl: Duration,
    error_ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The selectors of one namespace, or the message of the failure.
type Outcome = std::result::Result<Arc<[Selector]>, Arc<str>>;

#[derive(Debug)]
struct Entry {
    started: Instant,
    /// Empty while the request is in flight.
    outcome: Arc<OnceCell<Outcome>>,
}

// === impl ApiNamespaces ===

impl ApiNamespaces {
    /// A source calling the apiserver of `config` (`None`: in-cluster credentials). The
    /// client is built now; a failure is logged and retried on use.
    pub fn new(config: Option<ClientConfig>) -> Self {
        let this = Self {
            config,
            client: OnceLock::new(),
        };
        match this.build() {
            Ok(client) => {
                tracing::info!(apiserver = ?client, "k8s workload attestor reads namespace labels");
                this.client.get_or_init(|| client);
            }
            Err(error) => tracing::warn!(
                %error,
                "enable_namespace_labels: no apiserver client yet; attestations needing \
                 namespace labels fail until one can be built"
            ),
        }
        this
    }

    fn build(&self) -> std::result::Result<ApiClient, spire_k8s::Error> {
        let config = match &self.config {
            Some(config) => config.clone(),
            None => ClientConfig::load(None)?,
        };
        ApiClient::new(config)
    }

    fn client(&self) -> std::result::Result<ApiClient, String> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let client = self
            .build()
            .map_err(|e| format!("unable to set up kube client: {e}"))?;
        Ok(self.client.get_or_init(|| client).clone())
    }
}

#[async_trait::async_trait]
impl NamespaceSource for ApiNamespaces {
    async fn namespace_labels(&self, name: &str) -> Result<BTreeMap<String, String>, FetchError> {
        let client = self.client()?;
        match client.get_namespace(name).await {
            Ok(namespace) => Ok(namespace.metadata.labels),
            Err(error) => Err(format!("unable to get namespace {name:?}: {error}").into()),
        }
    }
}

impl fmt::Debug for ApiNamespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiNamespaces")
            .field("client", &self.client.get())
            .finish_non_exhaustive()
    }
}

// === impl NamespaceLabels ===

impl NamespaceLabels {
    /// A cache over `source`; failures are reused for `error_ttl` (capped at the TTL).
    pub fn new(source: Arc<dyn NamespaceSource>, error_ttl: Duration) -> Self {
        Self {
            source,
            ttl: NAMESPACE_LABELS_TTL,
            error_ttl: error_ttl.min(NAMESPACE_LABELS_TTL),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The `ns-label:<key>:<value>` selectors of `namespace`, sorted by key. A failure is
    /// `Internal` with SPIRE's message.
    pub async fn selectors(&self, namespace: &str) -> Result<Arc<[Selector]>> {
        let outcome = {
            let mut entries = self.lock();
            let now = Instant::now();
            match entries.get(namespace) {
                Some(entry) if self.usable(entry, now) => Arc::clone(&entry.outcome),
                _ => {
                    if entries.len() >= PRUNE_AT {
                        entries.retain(|_, entry| self.usable(entry, now));
                    }
                    let outcome = Arc::new(OnceCell::new());
                    entries.insert(
                        namespace.to_owned(),
                        Entry {
                            started: now,
                            outcome: Arc::clone(&outcome),
                        },
                    );
                    outcome
                }
            }
        };
        // The first caller fetches; the others wait for it (and one of them takes over if
        // it goes away).
        let outcome = outcome.get_or_init(|| self.fetch(namespace)).await;
        outcome.clone().map_err(|message| {
            Error::status(
                Code::Internal,
                format!("unable to get namespace labels for {namespace:?}: {message}"),
            )
        })
    }

    fn usable(&self, entry: &Entry, now: Instant) -> bool {
        match entry.outcome.get() {
            None => true,
            Some(Ok(_)) => now < entry.started + self.ttl,
            Some(Err(_)) => now < entry.started + self.error_ttl,
        }
    }

    async fn fetch(&self, namespace: &str) -> Outcome {
        tracing::debug!(namespace, "fetching namespace labels");
        let labels = self
            .source
            .namespace_labels(namespace)
            .await
            .map_err(|error| {
                tracing::warn!(namespace, %error, "namespace labels unavailable");
                Arc::<str>::from(error.to_string())
            })?;
        labels
            .iter()
            .map(|(key, value)| selector(&format!("ns-label:{key}:{value}")))
            .collect::<Result<Arc<[Selector]>>>()
            .map_err(|e| Arc::from(e.to_string()))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Plain inserts and removals: consistent across a panic in a holder.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
