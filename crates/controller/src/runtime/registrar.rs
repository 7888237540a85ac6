//! k8s-workload-registrar CRD mode at run time (the 2022 Istio quickstart).
//!
//! Watches of nodes, pods, endpoints and `SpiffeID` objects wake one reconciler. Each pass
//! (1) creates the node-alias `SpiffeID` of every node, (2) creates or re-points the `SpiffeID`
//! of every scheduled pod (the apiserver's garbage collector removes it with the pod, through
//! its owner reference), (3) adds `<svc>.<ns>.svc` to the objects of pods behind each Service
//! and takes it away when the Service no longer selects them, and (4) drives every `SpiffeID`
//! through `registrar::sync`'s state machine: finalizer, entry, status. Entry reads come from a
//! mirror of the server's entries (re-listed every resync period), and entry writes of one
//! pass go out in batches; a deleted object keeps its finalizer until its entry is gone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use spire_proto::spire::api::types::Entry;
use spire_task::{Shutdown, Supervisor};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::RegistrarConfig;
use crate::config::registrar::{CrdMode, RegistrarMode};
use crate::crd::SpiffeId;
use crate::informer::Informer;
use crate::registrar::{
    self, Observation, PodObjectAction, Registrar, RegistrarSettings, SyncAction,
};
use crate::runtime::metrics::Metrics;
use crate::runtime::{Deps, StartError};
use crate::spire::{CreateOutcome, SpireClient};

/// How often the entry mirror is re-listed from the server (entries changed by others).
const RESYNC: Duration = Duration::from_secs(10);
/// First pause after a failed pass; doubled per failure up to [`RESYNC`].
const RETRY_MIN: Duration = Duration::from_millis(250);

/// Starts the registrar's tasks under `supervisor`.
pub async fn start(
    supervisor: &mut Supervisor,
    config: RegistrarConfig,
    deps: Deps,
) -> Result<(), StartError> {
    let crd = match &config.mode {
        RegistrarMode::Crd(crd) => crd.clone(),
        RegistrarMode::Reconcile(_) => {
            return Err(StartError::Config(
                "mode \"reconcile\" is not supported; use mode \"crd\" (one SpiffeID object per \
                 pod, as the Istio quickstart configures)"
                    .to_owned(),
            ));
        }
    };
    if crd.webhook.enabled {
        return Err(StartError::Config(
            "webhook_enabled = true is not supported by this registrar; leave it unset (SpiffeID \
             objects are validated when they are synced, and invalid ones are skipped with a log \
             line)"
                .to_owned(),
        ));
    }
    let registrar = Registrar::new(RegistrarSettings::from_config(&config, &crd))
        .map_err(|e| StartError::Config(e.to_string()))?;
    let metrics = super::start_metrics(supervisor, crd.metrics_bind_address.as_deref()).await?;
    let changed = Arc::new(Notify::new());
    let client = deps.kube.clone();
    let any = watcher::Config::default();
    let pods = Informer::spawn(
        supervisor,
        "watch-pods",
        Api::<Pod>::all(client.clone()),
        any.clone(),
        false,
        changed.clone(),
    );
    let nodes = crd.pod_controller.then(|| {
        Informer::spawn(
            supervisor,
            "watch-nodes",
            Api::<Node>::all(client.clone()),
            any.clone(),
            false,
            changed.clone(),
        )
    });
    let endpoints = crd.add_svc_dns_name.then(|| {
        Informer::spawn(
            supervisor,
            "watch-endpoints",
            Api::<Endpoints>::all(client.clone()),
            any.clone(),
            true,
            changed.clone(),
        )
    });
    let spiffe_ids = Informer::spawn(
        supervisor,
        "watch-spiffeids",
        Api::<SpiffeId>::all(client.clone()),
        any,
        false,
        changed.clone(),
    );

    let elector = super::elector(&deps, &crd.leader_election);
    let reconciler = Reconciler {
        registrar,
        crd,
        namespace: deps.namespace.clone(),
        pods,
        nodes,
        endpoints,
        spiffe_ids,
        spire: deps.spire.clone(),
        kube: deps.kube.clone(),
        changed,
        metrics,
        mirror: None,
        listed_at: None,
    };
    let shutdown = supervisor.shutdown().clone();
    let mut reconciler = reconciler;
    supervisor.spawn("reconciler", async move {
        let metrics = reconciler.metrics.clone();
        super::lead(elector, &metrics, &shutdown, reconciler.run(&shutdown)).await
    });
    Ok(())
}

struct Reconciler {
    registrar: Registrar,
    crd: CrdMode,
    namespace: String,
    pods: Informer<Pod>,
    nodes: Option<Informer<Node>>,
    endpoints: Option<Informer<Endpoints>>,
    spiffe_ids: Informer<SpiffeId>,
    spire: SpireClient,
    kube: kube::Client,
    changed: Arc<Notify>,
    metrics: Arc<Metrics>,
    mirror: Option<BTreeMap<String, Entry>>,
    listed_at: Option<Instant>,
}

/// How a pass ended.
#[derive(Debug, Default)]
struct Pass {
    /// Something asked to be tried again later (an object name still held by an old pod, a
    /// refused write).
    retry: bool,
    created: usize,
    updated: usize,
    deleted: usize,
    failed: usize,
    invalid: usize,
}

impl Reconciler {
    async fn run(&mut self, shutdown: &Shutdown) {
        let stopped = shutdown.stopped();
        tokio::pin!(stopped);
        let mut retry = RETRY_MIN;
        loop {
            let known = self.pods.state().is_known()
                && self.spiffe_ids.state().is_known()
                && self.nodes.as_ref().is_none_or(|n| n.state().is_known())
                && self.endpoints.as_ref().is_none_or(|e| e.state().is_known());
            let wait = if known {
                let started = Instant::now();
                let result = self.pass().await;
                self.metrics.pass(result.is_ok(), started.elapsed());
                if let Ok(pass) = &result {
                    self.metrics
                        .writes(pass.created, pass.updated, pass.deleted);
                    self.metrics.write_failures(pass.failed);
                    self.metrics.render_failures(pass.invalid);
                    self.metrics.declared(self.spiffe_ids.objects().len());
                }
                match result {
                    Ok(pass) if !pass.retry => {
                        retry = RETRY_MIN;
                        RESYNC
                    }
                    Ok(_) => {
                        let wait = retry;
                        retry = (retry * 2).min(RESYNC);
                        wait
                    }
                    Err(error) => {
                        tracing::warn!(%error, ?retry, "reconciliation failed; retrying");
                        self.mirror = None;
                        let wait = retry;
                        retry = (retry * 2).min(RESYNC);
                        wait
                    }
                }
            } else {
                RESYNC
            };
            tokio::select! {
                () = &mut stopped => return,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn pass(&mut self) -> anyhow::Result<Pass> {
        let mut pass = Pass::default();
        let objects = self.spiffe_ids.objects();
        let by_name: HashMap<(String, String), Arc<SpiffeId>> = objects
            .iter()
            .map(|o| {
                let key = (
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                (key, o.clone())
            })
            .collect();
        if self.crd.pod_controller {
            self.nodes_pass(&by_name, &mut pass).await;
            self.pods_pass(&by_name, &mut pass).await;
        }
        if self.endpoints.is_some() {
            self.endpoints_pass(&objects, &mut pass).await;
        }
        self.entries_pass(&objects, &mut pass).await?;
        Ok(pass)
    }

    async fn nodes_pass(
        &self,
        existing: &HashMap<(String, String), Arc<SpiffeId>>,
        pass: &mut Pass,
    ) {
        let Some(nodes) = &self.nodes else { return };
        let api: Api<SpiffeId> = Api::namespaced(self.kube.clone(), &self.namespace);
        for node in nodes.objects() {
            let desired = registrar::node_spiffe_id(
                &node,
                self.registrar.cluster(),
                self.registrar.trust_domain(),
                &self.namespace,
            );
            let name = desired.metadata.name.clone().unwrap_or_default();
            let current = existing.get(&(self.namespace.clone(), name.clone()));
            let Some(create) = registrar::node_object_action(desired, current.map(Arc::as_ref))
            else {
                continue;
            };
            if let Err(error) = api.create(&PostParams::default(), &create).await {
                tracing::warn!(node = %name, %error, "failed to create the node's SpiffeID");
                pass.retry = true;
            }
        }
    }

    async fn pods_pass(
        &self,
        existing: &HashMap<(String, String), Arc<SpiffeId>>,
        pass: &mut Pass,
    ) {
        for pod in self.pods.objects() {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let desired = match registrar::pod_spiffe_id(&pod, &self.registrar) {
                Ok(Some(desired)) => desired,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%namespace, pod = %name, %error, "failed to render the pod's SpiffeID");
                    continue;
                }
            };
            let current = existing.get(&(namespace.clone(), name.clone()));
            let api: Api<SpiffeId> = Api::namespaced(self.kube.clone(), &namespace);
            let result = match registrar::pod_object_action(desired, current.map(Arc::as_ref)) {
                PodObjectAction::Create(object) => {
                    api.create(&PostParams::default(), &object).await.map(drop)
                }
                PodObjectAction::Update(object) => api
                    .replace(&name, &PostParams::default(), &object)
                    .await
                    .map(drop),
                PodObjectAction::Requeue => {
                    pass.retry = true;
                    Ok(())
                }
                PodObjectAction::Nothing => Ok(()),
            };
            if let Err(error) = result {
                tracing::warn!(%namespace, pod = %name, %error, "failed to write the pod's SpiffeID");
                pass.retry = true;
            }
        }
    }

    /// `<svc>.<ns>.svc` on the objects of the pods each Endpoints object targets, and off the
    /// objects of pods no Endpoints object of that name targets any more (any `<a>.<ns>.svc`
    /// name not currently targeting the pod counts as a former service name).
    async fn endpoints_pass(&self, objects: &[Arc<SpiffeId>], pass: &mut Pass) {
        let Some(endpoints) = &self.endpoints else {
            return;
        };
        // pod UID → the service names that target it now.
        let mut wanted: HashMap<String, BTreeSet<String>> = HashMap::new();
        for object in endpoints.objects() {
            let name = registrar::svc_dns_name(&object);
            for uid in registrar::target_pod_uids(&object) {
                wanted.entry(uid).or_default().insert(name.clone());
            }
        }
        for object in objects {
            if registrar::is_deleting(object) {
                continue;
            }
            let Some(uid) = object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(registrar::POD_UID_LABEL))
            else {
                continue;
            };
            let namespace = object.metadata.namespace.clone().unwrap_or_default();
            let suffix = format!(".{namespace}.svc");
            let mut updated = (**object).clone();
            let mut changed = false;
            for name in wanted.get(uid).into_iter().flatten() {
                changed |= registrar::add_dns_name(&mut updated, name);
            }
            let stale: Vec<String> = updated
                .spec
                .dns_names
                .iter()
                .filter(|n| n.ends_with(&suffix) && n.matches('.').count() == 2)
                .filter(|n| !wanted.get(uid).is_some_and(|w| w.contains(*n)))
                .cloned()
                .collect();
            for name in stale {
                changed |= registrar::remove_dns_name(&mut updated, &name);
            }
            if changed {
                let api: Api<SpiffeId> = Api::namespaced(self.kube.clone(), &namespace);
                let name = updated.metadata.name.clone().unwrap_or_default();
                if let Err(error) = api.replace(&name, &PostParams::default(), &updated).await {
                    tracing::debug!(%namespace, %name, %error, "failed to update service DNS names; retrying");
                    pass.retry = true;
                }
            }
        }
    }

    /// Every SpiffeID through the sync state machine; entry writes batched per round.
    async fn entries_pass(
        &mut self,
        objects: &[Arc<SpiffeId>],
        pass: &mut Pass,
    ) -> anyhow::Result<()> {
        let due = self.listed_at.is_none_or(|at| at.elapsed() >= RESYNC);
        if self.mirror.is_none() || due {
            let listed = self.spire.list_entries().await?;
            self.mirror = Some(listed.into_iter().map(|e| (e.id.clone(), e)).collect());
            self.listed_at = Some(Instant::now());
        }
        let mut round: Vec<(SpiffeId, Observation)> = objects
            .iter()
            .map(|o| ((**o).clone(), Observation::Start))
            .collect();
        while !round.is_empty() {
            let mut creates: Vec<(SpiffeId, Entry)> = Vec::new();
            let mut updates: Vec<(SpiffeId, Entry)> = Vec::new();
            let mut deletes: Vec<(SpiffeId, String)> = Vec::new();
            let mut next: Vec<(SpiffeId, Observation)> = Vec::new();
            for (mut object, mut seen) in round {
                loop {
                    let action = match registrar::next_action(&object, &seen) {
                        Ok(action) => action,
                        Err(error) => {
                            tracing::warn!(
                                namespace = object.metadata.namespace.as_deref().unwrap_or(""),
                                name = object.metadata.name.as_deref().unwrap_or(""),
                                %error,
                                "skipping an invalid SpiffeID"
                            );
                            pass.invalid += 1;
                            break;
                        }
                    };
                    match action {
                        SyncAction::GetEntry(id) => {
                            seen = match self.mirror.as_ref().and_then(|m| m.get(&id)) {
                                Some(entry) => Observation::Fetched(entry.clone()),
                                None => Observation::NotFound,
                            };
                        }
                        SyncAction::CreateEntry(entry) => {
                            creates.push((object, entry));
                            break;
                        }
                        SyncAction::UpdateEntry(entry) => {
                            updates.push((object, entry));
                            break;
                        }
                        SyncAction::DeleteEntry(id) => {
                            deletes.push((object, id));
                            break;
                        }
                        SyncAction::AddFinalizer => {
                            registrar::add_finalizer(&mut object);
                            match self.replace(&object).await {
                                Some(updated) => {
                                    next.push((updated, Observation::Start));
                                }
                                None => pass.retry = true,
                            }
                            break;
                        }
                        SyncAction::RemoveFinalizer => {
                            registrar::remove_finalizer(&mut object);
                            if self.replace(&object).await.is_none() {
                                pass.retry = true;
                            }
                            break;
                        }
                        SyncAction::SetStatus(id) => {
                            if !self.set_status(&object, id).await {
                                pass.retry = true;
                            }
                            break;
                        }
                        SyncAction::Done => break,
                    }
                }
            }
            if !creates.is_empty() {
                let entries = creates.iter().map(|(_, e)| e.clone()).collect();
                let outcomes = self.spire.create_entries(entries).await?;
                for ((object, _), outcome) in creates.into_iter().zip(outcomes) {
                    match outcome {
                        CreateOutcome::Created(entry) => {
                            pass.created += 1;
                            self.mirror_insert(entry.clone());
                            next.push((object, Observation::Created(entry)));
                        }
                        CreateOutcome::Exists(entry) => {
                            self.mirror_insert(entry.clone());
                            next.push((object, Observation::AlreadyExists(entry)));
                        }
                        CreateOutcome::Failed(status) => {
                            log_refusal(&object, &status);
                            pass.failed += 1;
                            pass.retry = true;
                        }
                    }
                }
            }
            if !updates.is_empty() {
                let entries = updates.iter().map(|(_, e)| e.clone()).collect();
                let outcomes = self.spire.update_entries(entries).await?;
                for ((object, _), outcome) in updates.into_iter().zip(outcomes) {
                    match outcome {
                        Ok(entry) => {
                            pass.updated += 1;
                            let id = entry.id.clone();
                            self.mirror_insert(entry);
                            next.push((object, Observation::Updated(id)));
                        }
                        Err(status) => {
                            log_refusal(&object, &status);
                            pass.failed += 1;
                            pass.retry = true;
                        }
                    }
                }
            }
            if !deletes.is_empty() {
                let ids = deletes.iter().map(|(_, id)| id.clone()).collect();
                let outcomes = self.spire.delete_entries(ids).await?;
                for ((object, id), outcome) in deletes.into_iter().zip(outcomes) {
                    match outcome {
                        Ok(_) => pass.deleted += 1,
                        Err(status) if status.code() == tonic::Code::NotFound => {}
                        Err(status) => {
                            log_refusal(&object, &status);
                            pass.failed += 1;
                            pass.retry = true;
                            continue;
                        }
                    }
                    if let Some(mirror) = &mut self.mirror {
                        mirror.remove(&id);
                    }
                    next.push((object, Observation::Deleted));
                }
            }
            round = next;
        }
        Ok(())
    }

    fn mirror_insert(&mut self, entry: Entry) {
        if let Some(mirror) = &mut self.mirror {
            mirror.insert(entry.id.clone(), entry);
        }
    }

    /// Writes `object` back (finalizer changes); `None` on failure (a conflict means a newer
    /// version is on its way through the watch).
    async fn replace(&self, object: &SpiffeId) -> Option<SpiffeId> {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let api: Api<SpiffeId> = Api::namespaced(self.kube.clone(), &namespace);
        match api.replace(&name, &PostParams::default(), object).await {
            Ok(updated) => Some(updated),
            Err(error) => {
                tracing::debug!(%namespace, %name, %error, "failed to update a SpiffeID; retrying");
                None
            }
        }
    }

    async fn set_status(&self, object: &SpiffeId, entry_id: Option<String>) -> bool {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let api: Api<SpiffeId> = Api::namespaced(self.kube.clone(), &namespace);
        let patch = serde_json::json!({ "status": { "entryId": entry_id } });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => true,
            Err(error) => {
                tracing::debug!(%namespace, %name, %error, "failed to write the SpiffeID status; retrying");
                false
            }
        }
    }
}

fn log_refusal(object: &SpiffeId, status: &tonic::Status) {
    tracing::warn!(
        namespace = object.metadata.namespace.as_deref().unwrap_or(""),
        name = object.metadata.name.as_deref().unwrap_or(""),
        spiffe_id = %object.spec.spiffe_id,
        code = ?status.code(),
        message = status.message(),
        "spire-server refused the SpiffeID's entry; retrying"
    );
}
