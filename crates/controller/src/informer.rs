//! Watches of Kubernetes objects kept in memory: one kube-rs reflector per kind, a shared
//! "something changed" signal for the reconcilers, and whether each store can be trusted.
//!
//! A store is swapped atomically when a (re-)list completes, so readers never see a partial
//! list. A store is *synced* once a list has completed and *degraded* from a watch error
//! until the next list (made afresh after every failure) completes. Reconcilers create and
//! update from any store that has been listed once, but delete only when every store they
//! read is synced (or known absent), so an unreachable apiserver or an interrupted list never
//! deletes an entry.
//!
//! Only a change a reconciler can see wakes it: an update that leaves an object's metadata
//! (resourceVersion and managedFields aside) and spec as they were — a status written by the
//! kubelet, by another controller or by this one — is stored but signals nothing. On a busy
//! cluster most updates are of that kind (node heartbeats, pod readiness), and each pass
//! reads every pod.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::de::DeserializeOwned;
use spire_task::{Shutdown, Supervisor};
use tokio::sync::{Notify, watch};
use tokio_stream::StreamExt;

/// How far a store can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// The first list has not completed.
    Pending,
    /// The store holds a complete list and the watch is live.
    Synced,
    /// The watch failed; the store holds the last known state.
    Degraded,
    /// An optional kind the apiserver does not serve to us (404: CRD not installed; 403: no
    /// RBAC for it): known to be empty.
    Absent,
}

impl SyncState {
    /// Whether a reconciler may act on the store's contents (create and update).
    pub fn is_known(self) -> bool {
        self != Self::Pending
    }

    /// Whether the store's contents are complete and current, so absence means deletion.
    pub fn is_trusted(self) -> bool {
        matches!(self, Self::Synced | Self::Absent)
    }
}

/// A kind an [`Informer`] watches: what of it the reconcilers read.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static
{
    /// Whether `self` and `other` look the same to a reconciler (metadata and spec equal).
    fn same_for_reconcilers(&self, other: &Self) -> bool;

    /// Drops what no reconciler reads before the object is stored: `managedFields` (a few
    /// KiB on a typical pod), and for pods and nodes the status the kubelet writes (a node's
    /// lists every image it holds). Templates that name `.PodMeta.ManagedFields` see none.
    fn trim(&mut self);
}

/// Metadata equal but for `resourceVersion`, `managedFields` and `selfLink`, which every
/// write changes.
pub fn same_meta(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    let ObjectMeta {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation,
        labels,
        managed_fields: _,
        name,
        namespace,
        owner_references,
        resource_version: _,
        self_link: _,
        uid,
    } = a;
    name == &b.name
        && namespace == &b.namespace
        && uid == &b.uid
        && generation == &b.generation
        && labels == &b.labels
        && annotations == &b.annotations
        && deletion_timestamp == &b.deletion_timestamp
        && deletion_grace_period_seconds == &b.deletion_grace_period_seconds
        && finalizers == &b.finalizers
        && owner_references == &b.owner_references
        && creation_timestamp == &b.creation_timestamp
        && generate_name == &b.generate_name
}

/// Implements [`Watched`] for kinds whose reconcilers read metadata and one more field, with
/// the kind's own status dropped where listed.
macro_rules! watched {
    ($($kind:ty => $field:ident $(, drop $status:ident)?);* $(;)?) => {$(
        impl Watched for $kind {
            fn same_for_reconcilers(&self, other: &Self) -> bool {
                self.$field == other.$field && same_meta(&self.metadata, &other.metadata)
            }

            fn trim(&mut self) {
                self.metadata.managed_fields = None;
                $(self.$status = None;)?
            }
        }
    )*};
}

watched!(
    Pod => spec, drop status;
    Node => spec, drop status;
    Namespace => spec;
    Endpoints => subsets;
    crate::crd::ClusterSpiffeId => spec;
    crate::crd::ClusterStaticEntry => spec;
    crate::crd::ClusterFederatedTrustDomain => spec;
    crate::crd::SpiffeId => spec;
);

/// One kind's in-memory store.
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    state: watch::Receiver<SyncState>,
}

impl<K: Resource<DynamicType = ()> + 'static> fmt::Debug for Informer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Informer")
            .field("kind", &K::kind(&()))
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            state: self.state.clone(),
        }
    }
}

impl<K: Watched> Informer<K> {
    /// Starts watching `api` under the supervisor as task `name`; every change notifies
    /// `changed`. An `optional` kind that the apiserver refuses with 404 or 403 is
    /// [`SyncState::Absent`] (and still retried, in case it is installed later).
    pub fn spawn(
        supervisor: &mut Supervisor,
        name: &'static str,
        api: Api<K>,
        config: watcher::Config,
        optional: bool,
        changed: Arc<Notify>,
    ) -> Self {
        let (store, writer) = reflector::store();
        let (state_tx, state) = watch::channel(SyncState::Pending);
        let shutdown = supervisor.shutdown().clone();
        let watch = Watch {
            api,
            config,
            optional,
            state: state_tx,
            changed,
        };
        supervisor.spawn(name, watch.run(writer, shutdown));
        Self { store, state }
    }

    /// Every object in the store.
    pub fn objects(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// The store itself (lookups by name).
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// The current state.
    pub fn state(&self) -> SyncState {
        *self.state.borrow()
    }

    /// Waits until the first list has completed.
    pub async fn synced(&self) {
        let mut state = self.state.clone();
        // The sender lives as long as the watch task; if it is gone the process is stopping.
        let _ = state.wait_for(|s| *s != SyncState::Pending).await;
    }
}

struct Watch<K: Resource<DynamicType = ()> + 'static> {
    api: Api<K>,
    config: watcher::Config,
    optional: bool,
    state: watch::Sender<SyncState>,
    changed: Arc<Notify>,
}

impl<K: Watched> Watch<K> {
    async fn run(self, mut writer: reflector::store::Writer<K>, shutdown: Shutdown) {
        let kind = K::kind(&()).into_owned();
        let stopped = shutdown.stopped();
        tokio::pin!(stopped);
        let mut backoff = RETRY_MIN;
        loop {
            // A fresh watcher lists before it watches, so after any failure the store is
            // rebuilt from a complete list (swapped in whole at `InitDone`).
            let stream = watcher(self.api.clone(), self.config.clone()).modify(K::trim);
            tokio::pin!(stream);
            loop {
                let event = tokio::select! {
                    () = &mut stopped => return,
                    event = stream.next() => event,
                };
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => {
                        self.failed(&kind, &error, backoff);
                        break;
                    }
                    None => break,
                };
                // Whether a reconciler can tell, judged against the stored object before it
                // is replaced.
                let visible = match &event {
                    watcher::Event::Apply(object) => writer
                        .as_reader()
                        .get(&ObjectRef::from_obj(object))
                        .is_none_or(|old| !old.same_for_reconcilers(object)),
                    _ => true,
                };
                writer.apply_watcher_event(&event);
                match event {
                    watcher::Event::Init | watcher::Event::InitApply(_) => {}
                    watcher::Event::InitDone => {
                        backoff = RETRY_MIN;
                        self.state.send_replace(SyncState::Synced);
                        self.changed.notify_one();
                    }
                    watcher::Event::Apply(_) if !visible => {}
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                        self.changed.notify_one();
                    }
                }
            }
            tokio::select! {
                () = &mut stopped => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    fn failed(&self, kind: &str, error: &watcher::Error, backoff: Duration) {
        let refused = match error {
            watcher::Error::InitialListFailed(kube::Error::Api(status)) => {
                status.code == 404 || status.code == 403
            }
            _ => false,
        };
        if self.optional && refused {
            if self.state.send_replace(SyncState::Absent) != SyncState::Absent {
                tracing::warn!(kind, %error, "not served to this controller; treated as empty");
                self.changed.notify_one();
            }
            return;
        }
        tracing::warn!(kind, %error, ?backoff, "watch failed; listing again after a pause");
        self.state.send_if_modified(|s| {
            let trusted = *s == SyncState::Synced;
            if trusted {
                *s = SyncState::Degraded;
            }
            trusted
        });
    }
}

/// First pause before listing again after a watch failure; doubled per failure.
const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest pause between attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn status_and_write_bookkeeping_wake_no_reconciler() {
        let old = pod(serde_json::json!({
            "metadata": {"name": "sleep", "namespace": "default", "uid": "u1",
                         "resourceVersion": "10", "labels": {"app": "sleep"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "sleep"}]},
            "status": {"phase": "Pending"}
        }));
        let mut new = old.clone();
        new.metadata.resource_version = Some("11".into());
        new.metadata.managed_fields = Some(vec![Default::default()]);
        new.status.as_mut().unwrap().phase = Some("Running".into());
        assert!(old.same_for_reconcilers(&new));

        let mut relabelled = new.clone();
        relabelled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("version".into(), "v2".into());
        assert!(!old.same_for_reconcilers(&relabelled));

        let mut rescheduled = new.clone();
        rescheduled.spec.as_mut().unwrap().node_name = Some("n2".into());
        assert!(!old.same_for_reconcilers(&rescheduled));

        let mut finalized = new;
        finalized.metadata.finalizers = Some(vec!["spire.spiffe.io/test".into()]);
        assert!(!old.same_for_reconcilers(&finalized));
    }

    #[test]
    fn stored_pods_and_nodes_keep_no_status_or_managed_fields() {
        let mut stored = pod(serde_json::json!({
            "metadata": {"name": "sleep", "namespace": "default",
                         "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "sleep"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "sleep",
                       "containerID": "containerd://abc", "image": "sleep", "imageID": "",
                       "ready": true, "restartCount": 0}]}
        }));
        stored.trim();
        assert_eq!(stored.metadata.managed_fields, None);
        assert_eq!(stored.status, None);
        assert_eq!(stored.spec.unwrap().node_name.as_deref(), Some("n1"));

        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "status": {"images": [{"names": ["registry.example/app:1"], "sizeBytes": 1}]}
        }))
        .unwrap();
        node.trim();
        assert_eq!(node.status, None);
        assert!(node.metadata.labels.is_some());
    }
}
