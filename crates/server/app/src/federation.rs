//! Federation in the running server. The bundle endpoint serves this trust domain's bundle
//! as the change feed reports it, presenting the server's rotating X509-SVID
//! (`https_spiffe`) or the `serving_cert_file` certificate (`https_web`). The refresher
//! manages the static relationships of `federates_with` together with the dynamic ones of
//! the TrustDomain API (a static one overrides a dynamic one for the same trust domain, as
//! in SPIRE); they are re-read when the API reports a change and whenever the change feed
//! moves, so a relationship written through another server on the same database is
//! noticed within `cache_reload_interval`.

use std::collections::BTreeMap;
use std::sync::Arc;

use spire_id::TrustDomain;
use spire_server_api::{BundleRefresher, ChangeFeed};
use spire_server_datastore::{DataStore, FederationRelationship};
use spire_server_federation::{
    BundleClient, BundleEndpoint, ClientOptions, EndpointConfig, RefreshOutcome, Refresher,
    RefresherConfig, RefresherHandle, ServingCertFile, ServingIdentity,
};
use spire_svid::{Bundle, X509Svid};
use spire_task::{Shutdown, Supervisor};
use spire_time::SharedClock;
use tokio::sync::{Mutex, Notify, watch};

use crate::Error;
use crate::config::{BundleEndpointConfig, EndpointProfile, ServerConfig};

/// What federation needs from the server.
pub(crate) struct Services {
    /// Where bundles and relationships live.
    pub(crate) datastore: Arc<dyn DataStore>,
    /// Wall time for certificate checks and status.
    pub(crate) clock: SharedClock,
    /// This server's change feed.
    pub(crate) feed: Arc<ChangeFeed>,
    /// The server's X509-SVID, republished on every rotation.
    pub(crate) server_svid: watch::Receiver<Arc<X509Svid>>,
}

/// The [`BundleRefresher`] of the TrustDomain API, over the running refresher.
#[derive(Debug)]
pub(crate) struct FederationRefresher {
    handle: RefresherHandle,
    relationships: Arc<Relationships>,
}

/// The relationships the refresher manages: static ∪ dynamic, published on a `watch`.
#[derive(Debug)]
struct Relationships {
    configured: Vec<FederationRelationship>,
    datastore: Arc<dyn DataStore>,
    current: watch::Sender<Vec<FederationRelationship>>,
    /// Serializes reloads, so an older read never replaces a newer one.
    reloading: Mutex<()>,
    /// Wakes the follower after a TrustDomain API write.
    changed: Notify,
}

/// Starts the bundle endpoint (when configured) and the refresher under `tasks`; returns
/// the refresher for [`spire_server_api::ApiContext::bundle_refresher`].
pub(crate) async fn start(
    config: &ServerConfig,
    services: Services,
    tasks: &mut Supervisor,
) -> Result<Arc<FederationRefresher>, Error> {
    if let Some(endpoint) = &config.federation.bundle_endpoint {
        start_endpoint(endpoint, &config.trust_domain, &services, tasks).await?;
    }

    let (current, relationships_rx) = watch::channel(Vec::new());
    let relationships = Arc::new(Relationships {
        configured: config.federation.federates_with.clone(),
        datastore: services.datastore.clone(),
        current,
        reloading: Mutex::new(()),
        changed: Notify::new(),
    });
    relationships
        .reload()
        .await
        .map_err(|e| Error::Config(format!("reading federation relationships: {e}")))?;
    let client = BundleClient::new(services.clock.clone(), ClientOptions::default());
    let (refresher, handle) = Refresher::new(
        RefresherConfig {
            trust_domain: config.trust_domain.clone(),
            datastore: services.datastore.clone(),
            clock: services.clock.clone(),
            client,
        },
        relationships_rx,
    );
    let stop = tasks.shutdown().clone();
    tasks.spawn("federation-refresher", refresher.run(stop.clone()));
    tasks.spawn(
        "federation-relationships",
        relationships.clone().follow(services.feed.clone(), stop),
    );
    Ok(Arc::new(FederationRefresher {
        handle,
        relationships,
    }))
}

/// Binds the bundle endpoint and starts serving it under `tasks`, with the task that keeps
/// its bundle current (and the certificate file watcher for `serving_cert_file`). The
/// endpoint drains within its own shutdown grace after the stop signal.
async fn start_endpoint(
    config: &BundleEndpointConfig,
    trust_domain: &TrustDomain,
    services: &Services,
    tasks: &mut Supervisor,
) -> Result<(), Error> {
    if config.profile_defaulted {
        tracing::warn!(
            "The bundle endpoint has no profile; assuming \"https_spiffe\". This default is \
             deprecated: configure profile \"https_spiffe\" {{}} explicitly"
        );
    }
    let (identity, files) = match &config.profile {
        EndpointProfile::HttpsSpiffe => (ServingIdentity::Svid(services.server_svid.clone()), None),
        EndpointProfile::ServingCertFile {
            cert_file_path,
            key_file_path,
            file_sync_interval,
        } => {
            let files = ServingCertFile::load(cert_file_path, key_file_path, *file_sync_interval)?;
            (files.identity(), Some(files))
        }
    };
    let bundle = own_bundle(services.datastore.as_ref(), trust_domain).await?;
    let (bundles, bundles_rx) = watch::channel(Arc::new(bundle));
    let mut endpoint_config = EndpointConfig::new(config.address);
    endpoint_config.refresh_hint = config.refresh_hint;
    let endpoint = BundleEndpoint::bind(endpoint_config, identity, bundles_rx).await?;
    tracing::info!(
        address = %endpoint.local_addr(),
        profile = match config.profile {
            EndpointProfile::HttpsSpiffe => "https_spiffe",
            EndpointProfile::ServingCertFile { .. } => "https_web",
        },
        "Bundle endpoint configured"
    );
    let stop = tasks.shutdown().clone();
    if let Some(files) = files {
        tasks.spawn("serving-cert-files", files.run(stop.clone()));
    }
    tasks.spawn(
        "bundle-follower",
        follow_bundle(
            services.datastore.clone(),
            trust_domain.clone(),
            services.feed.clone(),
            bundles,
            stop.clone(),
        ),
    );
    tasks.spawn("bundle-endpoint", endpoint.serve(stop));
    Ok(())
}

/// This trust domain's bundle (empty if the CA has not stored one, which it does before
/// the server starts serving).
async fn own_bundle(
    datastore: &dyn DataStore,
    trust_domain: &TrustDomain,
) -> Result<Bundle, Error> {
    let bundle = datastore
        .fetch_bundle(trust_domain)
        .await
        .map_err(|e| Error::Config(format!("reading the trust bundle: {e}")))?;
    Ok(bundle.unwrap_or_else(|| Bundle::new(trust_domain.clone())))
}

/// Publishes this trust domain's bundle to the endpoint whenever the change feed reports a
/// bundle change (or a reload).
async fn follow_bundle(
    datastore: Arc<dyn DataStore>,
    trust_domain: TrustDomain,
    feed: Arc<ChangeFeed>,
    bundles: watch::Sender<Arc<Bundle>>,
    stop: Shutdown,
) {
    let mut states = feed.subscribe();
    loop {
        let seen = *states.borrow_and_update();
        match datastore.fetch_bundle(&trust_domain).await {
            Ok(Some(bundle)) => {
                bundles.send_if_modified(|current| {
                    let changed = **current != bundle;
                    if changed {
                        *current = Arc::new(bundle);
                    }
                    changed
                });
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "Could not read the trust bundle for the bundle endpoint");
            }
        }
        tokio::select! {
            // A bundle changed, or the feed reloaded.
            changed = states.wait_for(|s| {
                s.bundles_revision != seen.bundles_revision || s.loads != seen.loads
            }) => if changed.is_err() {
                return;
            },
            // Server shutdown.
            () = stop.stopped() => return,
        }
    }
}

// === impl Relationships ===

impl Relationships {
    /// Reads the dynamic relationships and publishes the merged set if it changed.
    async fn reload(&self) -> Result<(), spire_server_datastore::Error> {
        let _reloading = self.reloading.lock().await;
        let dynamic = self.datastore.list_federation_relationships(None).await?;
        let merged = merge(&self.configured, dynamic.items);
        self.current.send_if_modified(|current| {
            let changed = *current != merged;
            if changed {
                *current = merged;
            }
            changed
        });
        Ok(())
    }

    /// Reloads after every TrustDomain API write and every relationship change the feed
    /// reports (this server's or another's), until `stop`.
    async fn follow(self: Arc<Self>, feed: Arc<ChangeFeed>, stop: Shutdown) {
        let mut states = feed.subscribe();
        let mut seen = *states.borrow_and_update();
        loop {
            tokio::select! {
                // Server shutdown.
                () = stop.stopped() => return,
                // This server's TrustDomain API committed a change.
                () = self.changed.notified() => {}
                // The feed caught up with writes; only relationship changes (or a reload,
                // after which anything may have changed) matter here.
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let state = *states.borrow_and_update();
                    let relevant = state.relationships_revision != seen.relationships_revision
                        || state.loads != seen.loads;
                    seen = state;
                    if !relevant {
                        continue;
                    }
                }
            }
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "Could not reload federation relationships");
            }
        }
    }
}

/// Static relationships override dynamic ones for the same trust domain; the result is
/// sorted by trust domain, without bundles (the refresher reads those itself).
fn merge(
    configured: &[FederationRelationship],
    dynamic: Vec<FederationRelationship>,
) -> Vec<FederationRelationship> {
    let mut all: BTreeMap<TrustDomain, FederationRelationship> = dynamic
        .into_iter()
        .map(|relationship| (relationship.trust_domain.clone(), relationship))
        .collect();
    for relationship in configured {
        all.insert(relationship.trust_domain.clone(), relationship.clone());
    }
    all.into_values()
        .map(|mut relationship| {
            relationship.trust_domain_bundle = None;
            relationship
        })
        .collect()
}

// === impl FederationRefresher ===

#[tonic::async_trait]
impl BundleRefresher for FederationRefresher {
    async fn refresh_bundle(&self, trust_domain: &TrustDomain) -> Result<bool, String> {
        // A relationship committed just before must be managed by now.
        if let Err(error) = self.relationships.reload().await {
            tracing::warn!(%error, "Could not reload federation relationships");
        }
        match self.handle.refresh_now(trust_domain).await {
            Ok(RefreshOutcome::NotManaged) => Ok(false),
            Ok(RefreshOutcome::Unchanged | RefreshOutcome::Stored) => Ok(true),
            Err(error) => Err(error.to_string()),
        }
    }

    fn relationships_changed(&self) {
        // A stored permit covers a write made while a reload is running.
        self.relationships.changed.notify_one();
    }
}

#[cfg(test)]
mod tests;
