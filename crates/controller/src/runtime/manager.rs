//! spire-controller-manager mode at run time.
//!
//! Watches feed in-memory stores; every change wakes one reconciler, which recomputes the whole
//! declared state from memory (cheap) and writes only the difference to spire-server. The
//! current entries are kept as a mirror updated from our own writes and re-listed every
//! `gcInterval` (and after any failed write), so a pod's entry is written within one pass of
//! its event rather than after a full `ListEntries`. Deletions happen only while every store
//! the declared state comes from is complete and current.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use spire_id::TrustDomain;
use spire_proto::spire::api::types::{self, Entry};
use spire_task::{Shutdown, Supervisor};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::manager::ManagerConfig;
use crate::crd::{
    ClusterFederatedTrustDomain, ClusterSpiffeId, ClusterSpiffeIdStats, ClusterStaticEntry,
    ClusterStaticEntryStatus,
};
use crate::informer::{Informer, SyncState, Watched};
use crate::manager::declare::{DeclareConfig, DeclareInputs, Declared, ReconcileKinds, declare};
use crate::manager::federation::{declare_federation, plan_federation};
use crate::manager::plan::{PlanOptions, SupportedFields, plan, unsupported_fields_probe_entry};
use crate::manager::render::RenderContext;
use crate::manager::{ObjectKind, Owner};
use crate::runtime::metrics::Metrics;
use crate::runtime::probes::{self, Probes};
use crate::runtime::{Deps, StartError, bind};
use crate::spire::{CreateOutcome, SpireClient};
use crate::webhook::{self, CertResolver, WebhookIdentity};

/// How often the supported-fields probe entry is created and deleted (upstream: 10 min).
const PROBE_INTERVAL: Duration = Duration::from_secs(600);
/// First pause after a failed pass; doubled per failure up to `gcInterval`.
const RETRY_MIN: Duration = Duration::from_millis(250);

/// Starts every task of the manager under `supervisor`.
pub async fn start(
    supervisor: &mut Supervisor,
    config: ManagerConfig,
    deps: Deps,
) -> Result<(), StartError> {
    let changed = Arc::new(Notify::new());
    let ready = Arc::new(AtomicBool::new(false));
    let client = deps.kube.clone();
    let any = watcher::Config::default();
    let reconcile = &config.reconcile;
    let stores = Stores {
        pods: reconcile.cluster_spiffe_ids.then(|| {
            Informer::spawn(
                supervisor,
                "watch-pods",
                Api::<Pod>::all(client.clone()),
                any.clone(),
                false,
                changed.clone(),
            )
        }),
        nodes: reconcile.cluster_spiffe_ids.then(|| {
            Informer::spawn(
                supervisor,
                "watch-nodes",
                Api::<Node>::all(client.clone()),
                any.clone(),
                false,
                changed.clone(),
            )
        }),
        namespaces: reconcile.cluster_spiffe_ids.then(|| {
            Informer::spawn(
                supervisor,
                "watch-namespaces",
                Api::<Namespace>::all(client.clone()),
                any.clone(),
                false,
                changed.clone(),
            )
        }),
        // Istio's quickstart grants no RBAC on endpoints: without it, autoPopulateDNSNames adds
        // nothing rather than stopping reconciliation.
        endpoints: reconcile.cluster_spiffe_ids.then(|| {
            Informer::spawn(
                supervisor,
                "watch-endpoints",
                Api::<Endpoints>::all(client.clone()),
                any.clone(),
                true,
                changed.clone(),
            )
        }),
        cluster_spiffe_ids: reconcile.cluster_spiffe_ids.then(|| {
            Informer::spawn(
                supervisor,
                "watch-clusterspiffeids",
                Api::<ClusterSpiffeId>::all(client.clone()),
                any.clone(),
                false,
                changed.clone(),
            )
        }),
        // Istio's quickstart installs no ClusterStaticEntry CRD.
        cluster_static_entries: reconcile.cluster_static_entries.then(|| {
            Informer::spawn(
                supervisor,
                "watch-clusterstaticentries",
                Api::<ClusterStaticEntry>::all(client.clone()),
                any.clone(),
                true,
                changed.clone(),
            )
        }),
        federated_trust_domains: reconcile.cluster_federated_trust_domains.then(|| {
            Informer::spawn(
                supervisor,
                "watch-clusterfederatedtrustdomains",
                Api::<ClusterFederatedTrustDomain>::all(client.clone()),
                any.clone(),
                false,
                changed.clone(),
            )
        }),
    };

    let cluster_domain = config
        .cluster_domain
        .clone()
        .or_else(|| super::detect_cluster_domain(std::path::Path::new("/etc/resolv.conf")))
        .unwrap_or_default();
    let render = RenderContext::new(
        config.trust_domain.clone(),
        config.cluster_name.clone(),
        cluster_domain,
        config.parent_id_template.as_deref(),
    )
    .map_err(|e| StartError::Config(e.to_string()))?;
    let mut declare_config = DeclareConfig::new(render);
    declare_config.ignore_namespaces = config.ignore_namespaces.clone();
    declare_config.class_name = config.class_name.clone();
    declare_config.watch_classless = config.watch_classless;
    declare_config.reconcile = ReconcileKinds {
        cluster_spiffe_ids: reconcile.cluster_spiffe_ids,
        cluster_static_entries: reconcile.cluster_static_entries,
        cluster_federated_trust_domains: reconcile.cluster_federated_trust_domains,
    };
    let plan_options = PlanOptions::new(
        config.entry_id_prefix.as_deref().unwrap_or_default(),
        config.entry_id_prefix_cleanup.as_deref(),
    )
    .map_err(|e| StartError::Config(e.to_string()))?;

    if let Some(address) = config
        .health
        .probe_bind_address
        .as_deref()
        .filter(|a| *a != "0")
    {
        let listener = bind(address).await?;
        let probes = Probes {
            liveness: format!(
                "/{}",
                config.health.liveness_endpoint.trim_start_matches('/')
            ),
            readiness: format!(
                "/{}",
                config.health.readiness_endpoint.trim_start_matches('/')
            ),
            ready: ready.clone(),
        };
        let shutdown = supervisor.shutdown().clone();
        supervisor.spawn("health-probes", probes::serve(listener, probes, shutdown));
    }

    let metrics = super::start_metrics(supervisor, config.metrics_bind_address.as_deref()).await?;

    if config.webhook.enabled {
        let address = format!("{}:{}", config.webhook.host, config.webhook.port);
        let listener = bind(&address).await?;
        let resolver = Arc::new(CertResolver::default());
        let identity = WebhookIdentity {
            spire: deps.spire.clone(),
            spiffe_id: format!(
                "spiffe://{}/spire-controller-manager-webhook",
                config.trust_domain.name()
            ),
            configuration: config.validating_webhook_configuration_name.clone(),
            kube: deps.kube.clone(),
            resolver: resolver.clone(),
            clock: deps.clock.clone(),
        };
        let shutdown = supervisor.shutdown().clone();
        supervisor.spawn("webhook-identity", identity.run(shutdown));
        let shutdown = supervisor.shutdown().clone();
        supervisor.spawn(
            "webhook",
            webhook::serve(listener, resolver, validator(), shutdown),
        );
    }

    let elector = super::elector(&deps, &config.leader_election);
    let reconciler = Reconciler {
        trust_domain: config.trust_domain.clone(),
        gc_interval: config.gc_interval,
        declare_config,
        plan_options,
        stores,
        spire: deps.spire.clone(),
        kube: deps.kube.clone(),
        changed,
        ready,
        metrics,
        mirror: None,
        listed_at: None,
        probed_at: None,
        statuses: HashMap::new(),
        static_statuses: HashMap::new(),
    };
    let shutdown = supervisor.shutdown().clone();
    let mut reconciler = reconciler;
    supervisor.spawn("reconciler", async move {
        let metrics = reconciler.metrics.clone();
        super::lead(elector, &metrics, &shutdown, reconciler.run(&shutdown)).await
    });
    Ok(())
}

struct Stores {
    pods: Option<Informer<Pod>>,
    nodes: Option<Informer<Node>>,
    namespaces: Option<Informer<Namespace>>,
    endpoints: Option<Informer<Endpoints>>,
    cluster_spiffe_ids: Option<Informer<ClusterSpiffeId>>,
    cluster_static_entries: Option<Informer<ClusterStaticEntry>>,
    federated_trust_domains: Option<Informer<ClusterFederatedTrustDomain>>,
}

impl Stores {
    fn states(&self) -> Vec<SyncState> {
        let mut states = Vec::new();
        macro_rules! push {
            ($($field:ident),*) => {$(
                if let Some(informer) = &self.$field {
                    states.push(informer.state());
                }
            )*};
        }
        push!(
            pods,
            nodes,
            namespaces,
            endpoints,
            cluster_spiffe_ids,
            cluster_static_entries,
            federated_trust_domains
        );
        states
    }

    fn known(&self) -> bool {
        self.states().into_iter().all(SyncState::is_known)
    }

    fn trusted(&self) -> bool {
        self.states().into_iter().all(SyncState::is_trusted)
    }
}

fn objects<K: Watched>(informer: &Option<Informer<K>>) -> Vec<Arc<K>> {
    informer.as_ref().map(Informer::objects).unwrap_or_default()
}

struct Reconciler {
    trust_domain: TrustDomain,
    gc_interval: Duration,
    declare_config: DeclareConfig,
    plan_options: PlanOptions,
    stores: Stores,
    spire: SpireClient,
    kube: kube::Client,
    changed: Arc<Notify>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// The server's entries as of the last list plus our writes since, by ID.
    mirror: Option<BTreeMap<String, Entry>>,
    listed_at: Option<Instant>,
    probed_at: Option<Instant>,
    /// The stats last written to each ClusterSPIFFEID's status.
    statuses: HashMap<String, ClusterSpiffeIdStats>,
    static_statuses: HashMap<String, ClusterStaticEntryStatus>,
}

/// What one pass did, for the log.
#[derive(Debug, Default)]
struct PassSummary {
    created: usize,
    updated: usize,
    deleted: usize,
    failed: usize,
    deletes_withheld: usize,
}

impl Reconciler {
    async fn run(&mut self, shutdown: &Shutdown) {
        let stopped = shutdown.stopped();
        tokio::pin!(stopped);
        let mut retry = RETRY_MIN;
        loop {
            let wait = if self.stores.known() {
                let started = Instant::now();
                let result = self.pass().await;
                self.metrics.pass(result.is_ok(), started.elapsed());
                match result {
                    Ok(summary) => {
                        self.metrics
                            .writes(summary.created, summary.updated, summary.deleted);
                        self.metrics.write_failures(summary.failed);
                        retry = RETRY_MIN;
                        self.ready.store(true, Ordering::Release);
                        if summary.created + summary.updated + summary.deleted + summary.failed > 0
                        {
                            tracing::info!(
                                created = summary.created,
                                updated = summary.updated,
                                deleted = summary.deleted,
                                failed = summary.failed,
                                "reconciled entries"
                            );
                        }
                        if summary.deletes_withheld > 0 {
                            tracing::warn!(
                                withheld = summary.deletes_withheld,
                                "not deleting entries while the view of the cluster is incomplete"
                            );
                        }
                        self.gc_interval
                    }
                    Err(error) => {
                        tracing::warn!(%error, ?retry, "reconciliation failed; retrying");
                        self.mirror = None;
                        let wait = retry;
                        retry = (retry * 2).min(self.gc_interval.max(RETRY_MIN));
                        wait
                    }
                }
            } else {
                self.gc_interval
            };
            tokio::select! {
                () = &mut stopped => return,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn pass(&mut self) -> anyhow::Result<PassSummary> {
        let mut summary = PassSummary::default();
        let trusted = self.stores.trusted();
        self.probe_fields().await;

        // Declared state, from memory.
        let pods = objects(&self.stores.pods);
        let nodes = objects(&self.stores.nodes);
        let namespaces = objects(&self.stores.namespaces);
        let endpoints = objects(&self.stores.endpoints);
        let spiffe_ids = objects(&self.stores.cluster_spiffe_ids);
        let static_entries = objects(&self.stores.cluster_static_entries);
        let inputs = DeclareInputs {
            cluster_spiffe_ids: spiffe_ids.iter().map(Arc::as_ref).collect(),
            cluster_static_entries: static_entries.iter().map(Arc::as_ref).collect(),
            namespaces: namespaces.iter().map(Arc::as_ref).collect(),
            pods: pods.iter().map(Arc::as_ref).collect(),
            nodes: nodes.iter().map(Arc::as_ref).collect(),
            endpoints: endpoints.iter().map(Arc::as_ref).collect(),
        };
        let mut declared = declare(&self.declare_config, &inputs);
        self.metrics.declared(declared.len());
        self.metrics.render_failures(declared.failures.len());
        for failure in &declared.failures {
            tracing::warn!(
                kind = failure.owner.kind.as_str(),
                name = %failure.owner.name,
                pod = failure.pod.as_deref().unwrap_or(""),
                reason = %failure.reason,
                "failed to render an entry"
            );
        }

        // Current state: the mirror, re-listed every gcInterval.
        let due = self
            .listed_at
            .is_none_or(|at| at.elapsed() >= self.gc_interval);
        if self.mirror.is_none() || due {
            let listed = self.spire.list_entries().await?;
            self.mirror = Some(listed.into_iter().map(|e| (e.id.clone(), e)).collect());
            self.listed_at = Some(Instant::now());
        }
        let current = self.mirror.iter().flat_map(|m| m.values());
        let mut plan = plan(&declared, current, &self.plan_options);
        if !trusted && !plan.delete.is_empty() {
            summary.deletes_withheld = plan.delete.len();
            plan.delete.clear();
        }

        let mut entry_failures: HashMap<Owner, i64> = HashMap::new();
        let mut count_failure = |declared: &Declared, entry: &Entry, status: &tonic::Status| {
            let owner = declared.owner_of(entry).cloned();
            tracing::warn!(
                spiffe_id = %entry.spiffe_id.as_ref().map(id_string).unwrap_or_default(),
                owner = owner.as_ref().map(|o| o.name.as_str()).unwrap_or(""),
                code = ?status.code(),
                message = status.message(),
                "spire-server refused an entry"
            );
            if let Some(owner) = owner {
                *entry_failures.entry(owner).or_default() += 1;
            }
        };
        if !plan.create.is_empty() {
            let outcomes = self.spire.create_entries(plan.create.clone()).await?;
            for (sent, outcome) in plan.create.iter().zip(outcomes) {
                match outcome {
                    CreateOutcome::Created(entry) | CreateOutcome::Exists(entry) => {
                        summary.created += 1;
                        self.mirror_insert(entry);
                    }
                    CreateOutcome::Failed(status) => {
                        summary.failed += 1;
                        count_failure(&declared, sent, &status);
                    }
                }
            }
        }
        if !plan.update.is_empty() {
            let outcomes = self.spire.update_entries(plan.update.clone()).await?;
            for (sent, outcome) in plan.update.iter().zip(outcomes) {
                match outcome {
                    Ok(entry) => {
                        summary.updated += 1;
                        self.mirror_insert(entry);
                    }
                    Err(status) => {
                        summary.failed += 1;
                        count_failure(&declared, sent, &status);
                    }
                }
            }
        }
        if !plan.delete.is_empty() {
            let outcomes = self.spire.delete_entries(plan.delete.clone()).await?;
            for (id, outcome) in plan.delete.iter().zip(outcomes) {
                match outcome {
                    Ok(_) => {
                        summary.deleted += 1;
                        self.mirror_remove(id);
                    }
                    Err(status) if status.code() == tonic::Code::NotFound => self.mirror_remove(id),
                    Err(status) => {
                        summary.failed += 1;
                        tracing::warn!(entry_id = %id, code = ?status.code(), message = status.message(), "failed to delete an entry");
                    }
                }
            }
        }

        self.reconcile_federation(trusted).await?;
        self.write_statuses(&mut declared, &entry_failures, &spiffe_ids, &static_entries)
            .await;
        Ok(summary)
    }

    fn mirror_insert(&mut self, entry: Entry) {
        if let Some(mirror) = &mut self.mirror {
            mirror.insert(entry.id.clone(), entry);
        }
    }

    fn mirror_remove(&mut self, id: &str) {
        if let Some(mirror) = &mut self.mirror {
            mirror.remove(id);
        }
    }

    /// Creates and deletes the probe entry every 10 minutes and reads which fields the server
    /// echoes (all of them, on our server).
    async fn probe_fields(&mut self) {
        if self
            .probed_at
            .is_some_and(|at| at.elapsed() < PROBE_INTERVAL)
        {
            return;
        }
        self.probed_at = Some(Instant::now());
        let probe = unsupported_fields_probe_entry(&self.trust_domain);
        let result = async {
            let outcomes = self.spire.create_entries(vec![probe]).await?;
            let entry = match outcomes.into_iter().next() {
                Some(CreateOutcome::Created(entry) | CreateOutcome::Exists(entry)) => entry,
                Some(CreateOutcome::Failed(status)) => return Err(status),
                None => return Err(tonic::Status::internal("no result for the probe entry")),
            };
            let supported = SupportedFields::from_probe_echo(&entry);
            self.spire.delete_entries(vec![entry.id.clone()]).await?;
            Ok(supported)
        }
        .await;
        match result {
            Ok(supported) => {
                self.plan_options = self.plan_options.clone().with_supported_fields(supported);
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "unsupported-fields probe failed");
                self.probed_at = None;
            }
        }
    }

    async fn reconcile_federation(&mut self, trusted: bool) -> anyhow::Result<()> {
        let Some(informer) = &self.stores.federated_trust_domains else {
            return Ok(());
        };
        let objects = informer.objects();
        let refs: Vec<&ClusterFederatedTrustDomain> = objects.iter().map(Arc::as_ref).collect();
        let declared = declare_federation(&self.declare_config, &refs, &parse_bundle);
        for failure in &declared.failures {
            tracing::warn!(name = %failure.owner.name, reason = %failure.reason, "ignoring a ClusterFederatedTrustDomain");
        }
        let current = self.spire.list_federation_relationships().await?;
        let mut plan = plan_federation(&declared, &current);
        if !trusted {
            plan.delete.clear();
        }
        report(
            "create",
            self.spire
                .create_federation_relationships(plan.create)
                .await?,
        );
        report(
            "update",
            self.spire
                .update_federation_relationships(plan.update)
                .await?,
        );
        if !plan.delete.is_empty() {
            report(
                "delete",
                self.spire
                    .delete_federation_relationships(plan.delete)
                    .await?,
            );
        }
        Ok(())
    }

    async fn write_statuses(
        &mut self,
        declared: &mut Declared,
        entry_failures: &HashMap<Owner, i64>,
        spiffe_ids: &[Arc<ClusterSpiffeId>],
        static_entries: &[Arc<ClusterStaticEntry>],
    ) {
        let api: Api<ClusterSpiffeId> = Api::all(self.kube.clone());
        for object in spiffe_ids {
            let Some(name) = object.metadata.name.clone() else {
                continue;
            };
            let Some(stats) = declared.cluster_spiffe_id_stats.get_mut(&name) else {
                continue;
            };
            stats.entry_failures = entry_failures
                .get(&Owner {
                    kind: ObjectKind::ClusterSpiffeId,
                    name: name.clone(),
                })
                .copied()
                .unwrap_or(0);
            let written = object.status.as_ref().map(|s| &s.stats);
            if written == Some(stats) || self.statuses.get(&name) == Some(stats) {
                continue;
            }
            let patch = serde_json::json!({ "status": { "stats": stats } });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.statuses.insert(name, stats.clone());
                }
                Err(error) => {
                    tracing::warn!(%name, %error, "failed to update the ClusterSPIFFEID status")
                }
            }
        }
        let api: Api<ClusterStaticEntry> = Api::all(self.kube.clone());
        let present: std::collections::HashSet<crate::manager::declare::EntryKey> = self
            .mirror
            .as_ref()
            .map(|m| {
                m.values()
                    .map(crate::manager::declare::EntryKey::of)
                    .collect()
            })
            .unwrap_or_default();
        for object in static_entries {
            let Some(name) = object.metadata.name.clone() else {
                continue;
            };
            let set = declared.entries().any(|(key, d)| {
                d.owner.kind == ObjectKind::ClusterStaticEntry
                    && d.owner.name == name
                    && present.contains(key)
            });
            let Some(status) = declared.cluster_static_entry_statuses.get_mut(&name) else {
                continue;
            };
            status.set = set;
            if object.status.as_ref() == Some(status)
                || self.static_statuses.get(&name) == Some(status)
            {
                continue;
            }
            let patch = serde_json::json!({ "status": status });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.static_statuses.insert(name, status.clone());
                }
                Err(error) => {
                    tracing::warn!(%name, %error, "failed to update the ClusterStaticEntry status")
                }
            }
        }
    }
}

fn report<T>(what: &str, outcomes: Vec<Result<T, tonic::Status>>) {
    for outcome in outcomes {
        if let Err(status) = outcome {
            tracing::warn!(operation = what, code = ?status.code(), message = status.message(), "federation relationship write refused");
        }
    }
}

fn id_string(id: &types::Spiffeid) -> String {
    format!("spiffe://{}{}", id.trust_domain, id.path)
}

/// `trustDomainBundle` (a SPIFFE bundle document) → the API's bundle.
fn parse_bundle(trust_domain: &TrustDomain, json: &str) -> Result<types::Bundle, String> {
    let bundle = spire_svid::Bundle::from_spiffe_json(trust_domain.clone(), json.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(types::Bundle {
        trust_domain: trust_domain.name().to_owned(),
        x509_authorities: bundle
            .x509_authorities
            .iter()
            .map(|a| types::X509Certificate {
                asn1: a.asn1.clone(),
                tainted: a.tainted,
            })
            .collect(),
        jwt_authorities: bundle
            .jwt_authorities
            .iter()
            .map(|k| types::JwtKey {
                public_key: k.public_key.clone(),
                key_id: k.key_id.clone(),
                expires_at: k.expires_at,
                tainted: k.tainted,
            })
            .collect(),
        refresh_hint: bundle.refresh_hint,
        sequence_number: bundle.sequence_number,
    })
}

/// The webhook's checks: the ClusterSPIFFEID and ClusterFederatedTrustDomain specs parsed as
/// the reconciler parses them, with spire-controller-manager's messages.
pub fn validator() -> webhook::Validator {
    Arc::new(
        |path: &str,
         request: &kube::core::admission::AdmissionRequest<kube::core::DynamicObject>| {
            let Some(object) = &request.object else {
                return Ok(());
            };
            let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
            if path == CLUSTER_SPIFFE_ID_PATH {
                let object: ClusterSpiffeId =
                    serde_json::from_value(value).map_err(|e| e.to_string())?;
                crate::manager::render::ParsedClusterSpiffeId::parse(&object.spec)
                    .map(drop)
                    .map_err(|e| e.to_string())
            } else if path == CLUSTER_FEDERATED_TRUST_DOMAIN_PATH {
                let object: ClusterFederatedTrustDomain =
                    serde_json::from_value(value).map_err(|e| e.to_string())?;
                crate::manager::federation::parse_federated_trust_domain(
                    &object.spec,
                    &parse_bundle,
                )
                .map(drop)
                .map_err(|e| e.to_string())
            } else {
                Err(format!("no validation is served at {path}"))
            }
        },
    )
}

/// The ClusterSPIFFEID webhook path (`vclusterspiffeid.kb.io`).
pub const CLUSTER_SPIFFE_ID_PATH: &str = "/validate-spire-spiffe-io-v1alpha1-clusterspiffeid";
/// The ClusterFederatedTrustDomain webhook path (`vclusterfederatedtrustdomain.kb.io`).
pub const CLUSTER_FEDERATED_TRUST_DOMAIN_PATH: &str =
    "/validate-spire-spiffe-io-v1alpha1-clusterfederatedtrustdomain";
