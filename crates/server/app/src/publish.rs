//! Copies of the trust bundle kept outside the server: Notifiers (`k8sbundle`) and
//! BundlePublishers (`k8s_configmap`).
//!
//! At startup every notifier hears `bundle_loaded`, and a failure stops the server (SPIRE's
//! `NotifyAndAdvise(BundleLoaded)`: an agent DaemonSet bootstrapping from a ConfigMap that
//! was never written would fail in a less obvious way). Afterwards the bundle follows the
//! change feed: a new root or JWT key reaches the ConfigMap as soon as the feed publishes it
//! (SPIRE notifies from its CA rotation only), and publishers are also retried every
//! [`REPUBLISH_INTERVAL`], as SPIRE's publish manager does; they skip unchanged bundles.

use std::sync::Arc;
use std::time::Duration;

use spire_id::TrustDomain;
use spire_server_api::ChangeFeed;
use spire_server_datastore::DataStore;
use spire_server_plugin::bundlepublisher::{BundlePublisher, K8sConfigMapPublisher};
use spire_server_plugin::notifier::{K8sBundleNotifier, Notifier};
use spire_svid::Bundle;
use spire_task::Shutdown;

use crate::Error;
use crate::config::{BundlePublisherChoice, NotifierChoice, ServerPlugins};

/// How often publishers are given the bundle even when it has not changed (a failed publish
/// is retried on this schedule).
pub(crate) const REPUBLISH_INTERVAL: Duration = Duration::from_secs(30);

/// The configured notifiers and publishers.
#[derive(Debug, Default)]
pub(crate) struct BundleOutlets {
    notifiers: Vec<Arc<dyn Notifier>>,
    publishers: Vec<Arc<dyn BundlePublisher>>,
}

// === impl BundleOutlets ===

impl BundleOutlets {
    /// The notifiers and publishers of the configuration, with their clients.
    pub(crate) fn build(plugins: &ServerPlugins) -> Result<Self, Error> {
        let notifiers = plugins
            .notifiers
            .iter()
            .map(|choice| match choice {
                NotifierChoice::K8sBundle(config) => K8sBundleNotifier::new(config)
                    .map(|n| Arc::new(n) as Arc<dyn Notifier>)
                    .map_err(|e| Error::Config(format!("Notifier \"k8sbundle\": {e}"))),
            })
            .collect::<Result<_, _>>()?;
        let publishers = plugins
            .bundle_publishers
            .iter()
            .map(|choice| match choice {
                BundlePublisherChoice::K8sConfigMap(config) => K8sConfigMapPublisher::new(config)
                    .map(|p| Arc::new(p) as Arc<dyn BundlePublisher>)
                    .map_err(|e| Error::Config(format!("BundlePublisher \"k8s_configmap\": {e}"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            notifiers,
            publishers,
        })
    }

    /// Whether there is nothing to keep current.
    pub(crate) fn is_empty(&self) -> bool {
        self.notifiers.is_empty() && self.publishers.is_empty()
    }

    /// Tells every notifier the bundle is loaded; the first failure is the server's.
    pub(crate) async fn loaded(&self, bundle: &Bundle) -> Result<(), Error> {
        for notifier in &self.notifiers {
            notifier.bundle_loaded(bundle).await.map_err(|e| {
                Error::Config(format!(
                    "notifier {:?} failed to handle the loaded bundle: {e}",
                    notifier.name()
                ))
            })?;
        }
        for publisher in &self.publishers {
            if let Err(error) = publisher.publish(bundle).await {
                tracing::warn!(publisher = publisher.name(), %error, "failed to publish the bundle");
            }
        }
        Ok(())
    }

    /// Follows the change feed until `shutdown`: each change of this trust domain's bundle
    /// goes to every notifier and publisher; publishers are also called every
    /// [`REPUBLISH_INTERVAL`]. Failures are logged and the next change (or tick) tries again.
    pub(crate) async fn follow(
        self,
        datastore: Arc<dyn DataStore>,
        trust_domain: TrustDomain,
        feed: Arc<ChangeFeed>,
        shutdown: Shutdown,
        mut last: Bundle,
    ) {
        let mut states = feed.subscribe();
        let mut republish = tokio::time::interval(REPUBLISH_INTERVAL);
        republish.tick().await;
        // The bundle may have changed between `loaded` and this subscription: look once at
        // once rather than wait for the next change.
        let mut first = true;
        loop {
            let seen = *states.borrow_and_update();
            let tick = if std::mem::take(&mut first) {
                false
            } else {
                tokio::select! {
                changed = states.wait_for(|s| {
                    s.bundles_revision != seen.bundles_revision || s.loads != seen.loads
                }) => {
                    if changed.is_err() {
                        return;
                    }
                    false
                }
                _ = republish.tick() => true,
                () = shutdown.stopped() => return,
                }
            };
            let bundle = match datastore.fetch_bundle(&trust_domain).await {
                Ok(Some(bundle)) => bundle,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "could not read the trust bundle to publish it");
                    continue;
                }
            };
            // A notifier that failed hears of the bundle again on the next tick.
            let changed = bundle != last;
            if !changed && !tick {
                continue;
            }
            if changed {
                let mut delivered = true;
                for notifier in &self.notifiers {
                    if let Err(error) = notifier.bundle_updated(&bundle).await {
                        delivered = false;
                        tracing::error!(notifier = notifier.name(), %error, "failed to notify of the bundle update");
                    }
                }
                if delivered {
                    last = bundle.clone();
                }
            }
            for publisher in &self.publishers {
                if let Err(error) = publisher.publish(&bundle).await {
                    tracing::warn!(publisher = publisher.name(), %error, "failed to publish the bundle");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
