//! The whole declared state of one reconcile pass: every entry the ClusterStaticEntry and
//! ClusterSPIFFEID objects this controller handles declare, one per entry key, with the
//! statistics and statuses upstream writes back.
//!
//! Order of work, as spire-controller-manager does it:
//! 1. objects of another class are skipped (`className` equal, or empty with `watchClassless`);
//! 2. ClusterStaticEntries render to their entry (`status.rendered`);
//! 3. each ClusterSPIFFEID selects namespaces (`namespaceSelector`), minus the ignored ones
//!    (`ignoreNamespaces`, unanchored regexes), then pods (`podSelector`) in them, and renders
//!    one entry per pod. Fallback objects apply only to pods for which no non-fallback object
//!    declared an entry;
//! 4. entries are keyed by SPIFFE ID, parent ID and sorted selectors; when several objects
//!    declare the same key the oldest object wins (creation time, then not being deleted, then
//!    UID) and the others count it as masked.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;
use spire_id::go_fmt::quote;
use spire_proto::spire::api::types::{Entry, Spiffeid};

use super::data::{DataShape, FieldFilter};
use super::render::{
    ParsedClusterSpiffeId, PodData, RenderContext, endpoints_target_pods, render_static_entry,
    render_with, service_dns_names,
};
use super::{Error, ObjectKind, Owner, id_string};
use crate::crd::{
    ClusterSpiffeId, ClusterSpiffeIdStats, ClusterStaticEntry, ClusterStaticEntryStatus,
};

/// The `ignoreNamespaces` default.
pub const DEFAULT_IGNORE_NAMESPACES: &[&str] = &["kube-system", "kube-public", "spire-system"];

/// Which object kinds are reconciled (`reconcile{…}` in the configuration; all by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcileKinds {
    /// ClusterSPIFFEIDs declare pod entries.
    pub cluster_spiffe_ids: bool,
    /// ClusterStaticEntries declare static entries.
    pub cluster_static_entries: bool,
    /// ClusterFederatedTrustDomains declare federation relationships.
    pub cluster_federated_trust_domains: bool,
}

/// The controller configuration the declared state depends on.
#[derive(Clone, Debug)]
pub struct DeclareConfig {
    /// Trust domain, cluster name and domain, parent ID template.
    pub render: RenderContext,
    /// Namespaces whose pods never get entries (a match anywhere in the name ignores it).
    pub ignore_namespaces: Vec<Regex>,
    /// This controller's class (`className`).
    pub class_name: String,
    /// Also handle objects without a class (`watchClassless`).
    pub watch_classless: bool,
    /// Which kinds are reconciled.
    pub reconcile: ReconcileKinds,
}

/// The Kubernetes objects one pass reads (from watch caches).
#[derive(Clone, Debug, Default)]
pub struct DeclareInputs<'a> {
    /// Every ClusterSPIFFEID (class filtering happens here).
    pub cluster_spiffe_ids: Vec<&'a ClusterSpiffeId>,
    /// Every ClusterStaticEntry.
    pub cluster_static_entries: Vec<&'a ClusterStaticEntry>,
    /// Every namespace.
    pub namespaces: Vec<&'a Namespace>,
    /// Every pod.
    pub pods: Vec<&'a Pod>,
    /// Every node.
    pub nodes: Vec<&'a Node>,
    /// Every Endpoints object (only read for `autoPopulateDNSNames`).
    pub endpoints: Vec<&'a Endpoints>,
}

/// What an entry is identified by when comparing declared and current state: SPIFFE ID,
/// parent ID and the selectors as a sorted list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    spiffe_id: String,
    parent_id: String,
    selectors: Vec<(String, String)>,
}

/// The declared entries, statistics and statuses of one pass.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    entries: BTreeMap<EntryKey, DeclaredEntry>,
    /// Next `status.stats` of every handled ClusterSPIFFEID, by name (all zero for an object
    /// whose spec does not parse).
    pub cluster_spiffe_id_stats: BTreeMap<String, ClusterSpiffeIdStats>,
    /// Next `status` of every handled ClusterStaticEntry, by name. `set` is left false: it
    /// depends on the writes.
    pub cluster_static_entry_statuses: BTreeMap<String, ClusterStaticEntryStatus>,
    /// Objects or pods that declared nothing, with the reason (to log), sorted.
    pub failures: Vec<RenderFailure>,
}

/// One declared entry (its `id` is empty) and the object that won its key.
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredEntry {
    /// The entry as the entry API takes it.
    pub entry: Entry,
    /// The object that declared it.
    pub owner: Owner,
}

/// An object (and pod) that failed to declare, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RenderFailure {
    /// The object.
    pub owner: Owner,
    /// `namespace/name` of the pod, for pod entries.
    pub pod: Option<String>,
    /// The error, in spire-controller-manager's words.
    pub reason: String,
}

// === impl ReconcileKinds ===

impl Default for ReconcileKinds {
    fn default() -> Self {
        Self {
            cluster_spiffe_ids: true,
            cluster_static_entries: true,
            cluster_federated_trust_domains: true,
        }
    }
}

// === impl DeclareConfig ===

impl DeclareConfig {
    /// A configuration with the upstream defaults: the default ignored namespaces, no class,
    /// classless objects not handled, every kind reconciled.
    pub fn new(render: RenderContext) -> Self {
        let defaults: Vec<String> = DEFAULT_IGNORE_NAMESPACES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        Self {
            render,
            ignore_namespaces: Self::compile_ignore_namespaces(&defaults)
                .expect("the default ignore patterns are plain names"),
            class_name: String::new(),
            watch_classless: false,
            reconcile: ReconcileKinds::default(),
        }
    }

    /// Compiles `ignoreNamespaces` patterns (Go RE2 syntax, unanchored).
    pub fn compile_ignore_namespaces(patterns: &[String]) -> Result<Vec<Regex>, Error> {
        patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| {
                    Error::InvalidConfig(format!("unable to compile ignore namespaces regex: {e}"))
                })
            })
            .collect()
    }

    /// Whether an object with `class_name` is this controller's.
    pub fn handles_class(&self, class_name: &str) -> bool {
        (class_name.is_empty() && self.watch_classless) || class_name == self.class_name
    }

    /// Whether `namespace` matches one of the `ignoreNamespaces` patterns anywhere in its name.
    pub fn is_namespace_ignored(&self, namespace: &str) -> bool {
        self.ignore_namespaces.iter().any(|r| r.is_match(namespace))
    }
}

// === impl EntryKey ===

impl EntryKey {
    /// The key of `entry`.
    pub fn of(entry: &Entry) -> Self {
        let mut selectors: Vec<(String, String)> = entry
            .selectors
            .iter()
            .map(|s| (s.r#type.clone(), s.value.clone()))
            .collect();
        selectors.sort();
        Self {
            spiffe_id: id_string(entry.spiffe_id.as_ref()),
            parent_id: id_string(entry.parent_id.as_ref()),
            selectors,
        }
    }

    /// `spiffe://…` of the entry.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// `spiffe://…` of the entry's parent.
    pub fn parent_id(&self) -> &str {
        &self.parent_id
    }

    /// The selectors as sorted `(type, value)` pairs.
    pub fn selectors(&self) -> &[(String, String)] {
        &self.selectors
    }
}

// === impl Declared ===

impl Declared {
    /// Every declared entry, by key.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&EntryKey, &DeclaredEntry)> {
        self.entries.iter()
    }

    /// How many entries are declared.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry declared for `key`.
    pub fn get(&self, key: &EntryKey) -> Option<&DeclaredEntry> {
        self.entries.get(key)
    }

    /// The object that declared `entry` (matched by key), to attribute write failures
    /// (`entryFailures`) and successes (`set`).
    pub fn owner_of(&self, entry: &Entry) -> Option<&Owner> {
        self.entries.get(&EntryKey::of(entry)).map(|d| &d.owner)
    }
}

/// Builds the declared state of one pass.
pub fn declare(config: &DeclareConfig, inputs: &DeclareInputs<'_>) -> Declared {
    let mut state = State::default();
    if config.reconcile.cluster_static_entries {
        declare_static_entries(config, inputs, &mut state);
    }
    if config.reconcile.cluster_spiffe_ids {
        declare_pod_entries(config, inputs, &mut state);
    }
    state.finish()
}

/// Orders objects by preference: oldest first, then not being deleted before being deleted
/// (later deletion first), then by UID.
fn preference(a: &ObjectMeta, b: &ObjectMeta) -> Ordering {
    a.creation_timestamp
        .cmp(&b.creation_timestamp)
        .then_with(|| match (&a.deletion_timestamp, &b.deletion_timestamp) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => b.cmp(a),
        })
        .then_with(|| a.uid.cmp(&b.uid))
}

/// Work in progress: the objects seen and every candidate entry per key.
#[derive(Default)]
struct State<'a> {
    owners: Vec<OwnerSlot<'a>>,
    /// Every declared entry with its key and object; grouped by key in [`State::finish`].
    candidates: Vec<(EntryKey, usize, Entry)>,
    failures: Vec<RenderFailure>,
}

struct OwnerSlot<'a> {
    owner: Owner,
    meta: &'a ObjectMeta,
    status: OwnerStatus,
}

enum OwnerStatus {
    SpiffeId(ClusterSpiffeIdStats),
    StaticEntry(ClusterStaticEntryStatus),
}

impl<'a> State<'a> {
    fn add_owner(&mut self, kind: ObjectKind, meta: &'a ObjectMeta) -> usize {
        let status = match kind {
            ObjectKind::ClusterStaticEntry => {
                OwnerStatus::StaticEntry(ClusterStaticEntryStatus::default())
            }
            _ => OwnerStatus::SpiffeId(ClusterSpiffeIdStats::default()),
        };
        self.owners.push(OwnerSlot {
            owner: Owner {
                kind,
                name: meta.name.clone().unwrap_or_default(),
            },
            meta,
            status,
        });
        self.owners.len() - 1
    }

    /// Updates the statistics of a ClusterSPIFFEID (static entries have none).
    fn bump(&mut self, owner: usize, update: impl FnOnce(&mut ClusterSpiffeIdStats)) {
        if let OwnerStatus::SpiffeId(stats) = &mut self.owners[owner].status {
            update(stats);
        }
    }

    fn fail(&mut self, owner: usize, pod: Option<&Pod>, error: Error) {
        self.failures.push(RenderFailure {
            owner: self.owners[owner].owner.clone(),
            pod: pod.map(pod_name),
            reason: error.to_string(),
        });
    }

    fn add_entry(&mut self, owner: usize, entry: Entry) {
        self.candidates.push((EntryKey::of(&entry), owner, entry));
    }

    /// Resolves masking and collects the statuses.
    fn finish(mut self) -> Declared {
        // Sorting groups equal keys, the preferred object first; a sorted vector also builds
        // the map without a lookup per entry. Indices are sorted, not the (large) entries.
        let candidates = std::mem::take(&mut self.candidates);
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&a, &b| {
            let ((ka, oa, _), (kb, ob, _)) = (&candidates[a], &candidates[b]);
            ka.cmp(kb)
                .then_with(|| preference(self.owners[*oa].meta, self.owners[*ob].meta))
        });
        let mut slots: Vec<Option<(EntryKey, usize, Entry)>> =
            candidates.into_iter().map(Some).collect();
        let mut winners: Vec<(EntryKey, DeclaredEntry)> = Vec::with_capacity(slots.len());
        for i in order {
            let Some((key, owner, entry)) = slots[i].take() else {
                continue;
            };
            if winners.last().is_some_and(|(last, _)| *last == key) {
                match &mut self.owners[owner].status {
                    OwnerStatus::SpiffeId(stats) => stats.entries_masked += 1,
                    OwnerStatus::StaticEntry(status) => status.masked = true,
                }
                continue;
            }
            if let OwnerStatus::SpiffeId(stats) = &mut self.owners[owner].status {
                stats.entries_to_set += 1;
            }
            let owner = self.owners[owner].owner.clone();
            winners.push((key, DeclaredEntry { entry, owner }));
        }
        let entries: BTreeMap<EntryKey, DeclaredEntry> = winners.into_iter().collect();
        let mut declared = Declared {
            entries,
            failures: self.failures,
            ..Declared::default()
        };
        for slot in self.owners {
            match slot.status {
                OwnerStatus::SpiffeId(stats) => {
                    declared
                        .cluster_spiffe_id_stats
                        .insert(slot.owner.name, stats);
                }
                OwnerStatus::StaticEntry(status) => {
                    declared
                        .cluster_static_entry_statuses
                        .insert(slot.owner.name, status);
                }
            }
        }
        declared.failures.sort();
        declared
    }
}

fn declare_static_entries<'a>(
    config: &DeclareConfig,
    inputs: &DeclareInputs<'a>,
    state: &mut State<'a>,
) {
    for object in &inputs.cluster_static_entries {
        if !config.handles_class(&object.spec.class_name) {
            continue;
        }
        let owner = state.add_owner(ObjectKind::ClusterStaticEntry, &object.metadata);
        match render_static_entry(&object.spec) {
            Ok(entry) => {
                if let OwnerStatus::StaticEntry(status) = &mut state.owners[owner].status {
                    status.rendered = true;
                }
                state.add_entry(owner, entry);
            }
            Err(e) => state.fail(owner, None, e),
        }
    }
}

/// One handled, valid ClusterSPIFFEID.
struct Selecting {
    owner: usize,
    parsed: ParsedClusterSpiffeId,
}

fn declare_pod_entries<'a>(
    config: &DeclareConfig,
    inputs: &DeclareInputs<'a>,
    state: &mut State<'a>,
) {
    let ctx = &config.render;
    let mut objects = Vec::new();
    for object in &inputs.cluster_spiffe_ids {
        if !config.handles_class(&object.spec.class_name) {
            continue;
        }
        let owner = state.add_owner(ObjectKind::ClusterSpiffeId, &object.metadata);
        match ParsedClusterSpiffeId::parse(&object.spec) {
            Ok(parsed) => objects.push(Selecting { owner, parsed }),
            Err(e) => state.fail(
                owner,
                None,
                Error::InvalidSpec(format!("failed to parse ClusterSPIFFEID spec: {e}")),
            ),
        }
    }
    if objects.is_empty() {
        return;
    }

    // Indexes, so the pass is linear in pods × objects.
    let mut fields = FieldFilter::from_templates(std::iter::empty());
    for object in objects.iter().filter(|o| o.parsed.needs_data()) {
        fields.union(object.parsed.fields());
    }
    let shape = DataShape::new(fields);
    let nodes: HashMap<&str, &Node> = inputs
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, *n)))
        .collect();
    let mut pods_by_namespace: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in &inputs.pods {
        if let Some(ns) = pod.metadata.namespace.as_deref() {
            pods_by_namespace.entry(ns).or_default().push(pod);
        }
    }
    let mut endpoints_by_pod: HashMap<&str, Vec<&Endpoints>> = HashMap::new();
    if objects.iter().any(|o| o.parsed.auto_populate_dns_names()) {
        for endpoints in &inputs.endpoints {
            for uid in endpoints_target_pods(endpoints) {
                let list = endpoints_by_pod.entry(uid).or_default();
                // One Endpoints object lists a pod once per port set; count it once.
                if !list.iter().any(|e| std::ptr::eq(*e, *endpoints)) {
                    list.push(endpoints);
                }
            }
        }
    }
    let mut namespaces: Vec<&Namespace> = inputs.namespaces.clone();
    namespaces.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    namespaces.dedup_by(|a, b| a.metadata.name == b.metadata.name);

    let mut parents: HashMap<&str, Result<Spiffeid, Error>> = HashMap::new();
    let mut primary = Vec::new();
    let mut fallback = Vec::new();
    for namespace in namespaces {
        let Some(name) = namespace.metadata.name.as_deref() else {
            continue;
        };
        let ignored = config.is_namespace_ignored(name);
        let labels = namespace.metadata.labels.as_ref();
        primary.clear();
        fallback.clear();
        for (i, object) in objects.iter().enumerate() {
            if !object.parsed.namespace_selector().matches(labels) {
                continue;
            }
            state.bump(object.owner, |s| {
                s.namespaces_selected += 1;
                s.namespaces_ignored += i64::from(ignored);
            });
            if ignored {
                continue;
            }
            if object.parsed.fallback() {
                fallback.push(i);
            } else {
                primary.push(i);
            }
        }
        if primary.is_empty() && fallback.is_empty() {
            continue;
        }
        for &pod in pods_by_namespace.get(name).into_iter().flatten() {
            let mut target = PodTarget::new(ctx, pod, &nodes, &endpoints_by_pod, &shape);
            let mut applied = false;
            for &i in primary.iter().chain(&fallback) {
                let object = &objects[i];
                if !object
                    .parsed
                    .pod_selector()
                    .matches(pod.metadata.labels.as_ref())
                {
                    continue;
                }
                state.bump(object.owner, |s| s.pods_selected += 1);
                if object.parsed.fallback() && applied {
                    continue;
                }
                match target.render(&object.parsed, &mut parents) {
                    Ok(entry) => {
                        applied |= !object.parsed.fallback();
                        state.add_entry(object.owner, entry);
                    }
                    Err(e) => {
                        state.bump(object.owner, |s| s.pod_entry_render_failures += 1);
                        state.fail(object.owner, Some(pod), e);
                    }
                }
            }
        }
    }
}

/// One pod being rendered by one or more objects: its node, service names and template data
/// are looked up once.
struct PodTarget<'a> {
    ctx: &'a RenderContext,
    pod: &'a Pod,
    node: Result<&'a Node, Error>,
    endpoints: &'a [&'a Endpoints],
    services: Option<Vec<String>>,
    data: Option<PodData<'a>>,
    shape: &'a DataShape,
}

impl<'a> PodTarget<'a> {
    fn new(
        ctx: &'a RenderContext,
        pod: &'a Pod,
        nodes: &HashMap<&str, &'a Node>,
        endpoints_by_pod: &'a HashMap<&str, Vec<&'a Endpoints>>,
        shape: &'a DataShape,
    ) -> Self {
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let node = if node_name.is_empty() {
            Err(Error::Render("pod is not scheduled to a node".into()))
        } else {
            nodes
                .get(node_name)
                .copied()
                .ok_or_else(|| Error::Render(format!("node {} not found", quote(node_name))))
        };
        let endpoints = pod
            .metadata
            .uid
            .as_deref()
            .and_then(|uid| endpoints_by_pod.get(uid))
            .map_or(&[][..], Vec::as_slice);
        Self {
            ctx,
            pod,
            node,
            endpoints,
            services: None,
            data: None,
            shape,
        }
    }

    fn render(
        &mut self,
        parsed: &ParsedClusterSpiffeId,
        parents: &mut HashMap<&'a str, Result<Spiffeid, Error>>,
    ) -> Result<Entry, Error> {
        let node = self.node.clone()?;
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let parent_id = parents
            .entry(node_name)
            .or_insert_with(|| self.ctx.parent_id(node))
            .clone()?;
        let services: &[String] = if parsed.auto_populate_dns_names() {
            let namespace = self.pod.metadata.namespace.as_deref();
            let endpoints = self.endpoints;
            let domain = self.ctx.cluster_domain();
            self.services.get_or_insert_with(|| {
                let same_namespace: Vec<&Endpoints> = endpoints
                    .iter()
                    .copied()
                    .filter(|e| e.metadata.namespace.as_deref() == namespace)
                    .collect();
                service_dns_names(&same_namespace, domain)
            })
        } else {
            &[]
        };
        let (ctx, pod, shape) = (self.ctx, self.pod, self.shape);
        let data = self
            .data
            .get_or_insert_with(|| PodData::new(ctx, pod, node, shape));
        render_with(parsed, ctx, pod, parent_id, services, data)
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests;
