use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::*;
use crate::crd::ClusterSpiffeIdSpec;
use crate::manager::testutil::{
    self, api_id, cluster_spiffe_id, ctx, namespace, node, pod, static_entry, time,
};

fn config() -> DeclareConfig {
    let mut config = DeclareConfig::new(ctx());
    config.watch_classless = true;
    config
}

fn match_labels(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: testutil::labels(pairs),
        match_expressions: None,
    })
}

/// The SPIFFE IDs declared for each pod UID, as `uid -> [(spiffe id, owner name)]`.
fn by_pod(declared: &Declared) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (key, d) in declared.entries() {
        let uid = key
            .selectors()
            .iter()
            .find_map(|(t, v)| (t == "k8s").then(|| v.strip_prefix("pod-uid:")).flatten())
            .unwrap_or("-")
            .to_owned();
        out.entry(uid)
            .or_default()
            .push((key.spiffe_id().to_owned(), d.owner.name.clone()));
    }
    out
}

struct World {
    spiffe_ids: Vec<ClusterSpiffeId>,
    static_entries: Vec<ClusterStaticEntry>,
    namespaces: Vec<Namespace>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    endpoints: Vec<Endpoints>,
}

impl World {
    fn new() -> Self {
        Self {
            spiffe_ids: Vec::new(),
            static_entries: Vec::new(),
            namespaces: vec![
                namespace("default", &[]),
                namespace("prod", &[("env", "prod")]),
            ],
            pods: vec![
                pod("default", "a", "node-1", &[("app", "a")]),
                pod("default", "b", "node-1", &[("app", "b")]),
                pod("prod", "c", "node-2", &[("app", "a")]),
            ],
            nodes: vec![node("node-1"), node("node-2")],
            endpoints: Vec::new(),
        }
    }

    fn declare(&self, config: &DeclareConfig) -> Declared {
        let inputs = DeclareInputs {
            cluster_spiffe_ids: self.spiffe_ids.iter().collect(),
            cluster_static_entries: self.static_entries.iter().collect(),
            namespaces: self.namespaces.iter().collect(),
            pods: self.pods.iter().collect(),
            nodes: self.nodes.iter().collect(),
            endpoints: self.endpoints.iter().collect(),
        };
        declare(config, &inputs)
    }
}

#[test]
fn every_selected_pod_gets_an_entry_and_stats_count_them() {
    let mut world = World::new();
    world
        .spiffe_ids
        .push(cluster_spiffe_id("all", "spiffe://example.org/all", 1));
    let declared = world.declare(&config());
    assert_eq!(declared.len(), 3);
    let (key, first) = declared.entries().next().expect("an entry");
    assert_eq!(first.owner.kind, ObjectKind::ClusterSpiffeId);
    assert_eq!(first.owner.name, "all");
    assert_eq!(
        first.entry.parent_id,
        Some(api_id(
            "spiffe://example.org/spire/agent/k8s_psat/demo-cluster/node-1-uid"
        ))
    );
    assert_eq!(
        declared.get(key).map(|d| &d.owner),
        declared.owner_of(&first.entry)
    );
    assert_eq!(
        declared.cluster_spiffe_id_stats["all"],
        ClusterSpiffeIdStats {
            namespaces_selected: 2,
            namespaces_ignored: 0,
            pods_selected: 3,
            pod_entry_render_failures: 0,
            entries_masked: 0,
            entries_to_set: 3,
            entry_failures: 0,
        }
    );
    assert!(declared.failures.is_empty());
}

#[test]
fn namespace_and_pod_selectors_narrow_the_pods() {
    let mut world = World::new();
    let mut only_prod = cluster_spiffe_id("prod", "spiffe://example.org/prod", 1);
    only_prod.spec.namespace_selector = match_labels(&[("env", "prod")]);
    let mut only_app_a = cluster_spiffe_id("app-a", "spiffe://example.org/a", 1);
    only_app_a.spec.pod_selector = Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app".into(),
            operator: "In".into(),
            values: Some(vec!["a".into()]),
        }]),
    });
    world.spiffe_ids = vec![only_prod, only_app_a];
    let declared = world.declare(&config());
    let got = by_pod(&declared);
    assert_eq!(
        got["a-uid"],
        [("spiffe://example.org/a".to_owned(), "app-a".to_owned())]
    );
    assert!(!got.contains_key("b-uid"));
    assert_eq!(got["c-uid"].len(), 2);
    let prod = &declared.cluster_spiffe_id_stats["prod"];
    assert_eq!((prod.namespaces_selected, prod.pods_selected), (1, 1));
    let app_a = &declared.cluster_spiffe_id_stats["app-a"];
    assert_eq!((app_a.namespaces_selected, app_a.pods_selected), (2, 2));
}

#[test]
fn ignore_namespaces_are_unanchored() {
    let mut world = World::new();
    world.namespaces = vec![
        namespace("spire", &[]),
        namespace("spire-system", &[]),
        namespace("my-spire-tests", &[]),
        namespace("default", &[]),
    ];
    world.pods = vec![
        pod("spire", "s1", "node-1", &[]),
        pod("spire-system", "s2", "node-1", &[]),
        pod("my-spire-tests", "s3", "node-1", &[]),
        pod("default", "d1", "node-1", &[]),
    ];
    world
        .spiffe_ids
        .push(cluster_spiffe_id("all", "spiffe://example.org/all", 1));
    let mut config = config();
    config.ignore_namespaces =
        DeclareConfig::compile_ignore_namespaces(&["spire".to_owned()]).expect("compiles");
    assert!(config.is_namespace_ignored("spire-system"));
    assert!(!config.is_namespace_ignored("default"));
    let declared = world.declare(&config);
    assert_eq!(by_pod(&declared).keys().collect::<Vec<_>>(), ["d1-uid"]);
    let stats = &declared.cluster_spiffe_id_stats["all"];
    assert_eq!(
        (
            stats.namespaces_selected,
            stats.namespaces_ignored,
            stats.pods_selected
        ),
        (4, 3, 1)
    );

    let err = DeclareConfig::compile_ignore_namespaces(&["(".to_owned()]).expect_err("bad regex");
    assert!(
        err.to_string()
            .starts_with("unable to compile ignore namespaces regex: ")
    );
}

#[test]
fn default_ignore_list_skips_system_namespaces() {
    let config = DeclareConfig::new(ctx());
    assert!(config.is_namespace_ignored("kube-system"));
    assert!(config.is_namespace_ignored("kube-public"));
    assert!(config.is_namespace_ignored("spire-system"));
    assert!(!config.is_namespace_ignored("default"));
}

#[test]
fn the_oldest_object_masks_the_others() {
    let mut world = World::new();
    world.spiffe_ids = vec![
        cluster_spiffe_id("newer", "spiffe://example.org/same", 20),
        cluster_spiffe_id("older", "spiffe://example.org/same", 10),
    ];
    let declared = world.declare(&config());
    assert_eq!(declared.len(), 3);
    assert!(declared.entries().all(|(_, d)| d.owner.name == "older"));
    let older = &declared.cluster_spiffe_id_stats["older"];
    let newer = &declared.cluster_spiffe_id_stats["newer"];
    assert_eq!((older.entries_to_set, older.entries_masked), (3, 0));
    assert_eq!((newer.entries_to_set, newer.entries_masked), (0, 3));
    assert_eq!(newer.pods_selected, 3);
}

#[test]
fn masking_prefers_live_objects_then_the_lower_uid() {
    let mut world = World::new();
    world.pods.truncate(1);
    let mut deleting = cluster_spiffe_id("deleting", "spiffe://example.org/same", 10);
    deleting.metadata.deletion_timestamp = Some(time(50));
    let live = cluster_spiffe_id("live", "spiffe://example.org/same", 10);
    world.spiffe_ids = vec![deleting, live];
    let declared = world.declare(&config());
    assert_eq!(by_pod(&declared)["a-uid"][0].1, "live");

    // Same age, neither deleted: the lower UID wins.
    world.spiffe_ids = vec![
        cluster_spiffe_id("zz", "spiffe://example.org/same", 10),
        cluster_spiffe_id("aa", "spiffe://example.org/same", 10),
    ];
    let declared = world.declare(&config());
    assert_eq!(by_pod(&declared)["a-uid"][0].1, "aa");
}

#[test]
fn fallback_applies_only_where_no_other_object_declared() {
    let mut world = World::new();
    let mut specific = cluster_spiffe_id("specific", "spiffe://example.org/specific", 20);
    specific.spec.pod_selector = match_labels(&[("app", "a")]);
    let mut catch_all = cluster_spiffe_id("catch-all", "spiffe://example.org/default", 10);
    catch_all.spec.fallback = true;
    world.spiffe_ids = vec![catch_all, specific];
    let declared = world.declare(&config());
    let got = by_pod(&declared);
    assert_eq!(
        got["a-uid"],
        [("spiffe://example.org/specific".into(), "specific".into())]
    );
    assert_eq!(
        got["b-uid"],
        [("spiffe://example.org/default".into(), "catch-all".into())]
    );
    assert_eq!(
        got["c-uid"],
        [("spiffe://example.org/specific".into(), "specific".into())]
    );
    let fallback = &declared.cluster_spiffe_id_stats["catch-all"];
    assert_eq!((fallback.pods_selected, fallback.entries_to_set), (3, 1));
}

#[test]
fn fallback_applies_when_the_other_object_fails_to_render() {
    let mut world = World::new();
    world.pods.truncate(1);
    let broken = cluster_spiffe_id("broken", "spiffe://elsewhere.org/x", 1);
    let mut fallback = cluster_spiffe_id("fallback", "spiffe://example.org/default", 1);
    fallback.spec.fallback = true;
    world.spiffe_ids = vec![broken, fallback];
    let declared = world.declare(&config());
    assert_eq!(by_pod(&declared)["a-uid"][0].1, "fallback");
    assert_eq!(
        declared.cluster_spiffe_id_stats["broken"].pod_entry_render_failures,
        1
    );
    assert_eq!(declared.failures.len(), 1);
    assert_eq!(declared.failures[0].pod.as_deref(), Some("default/a"));
}

#[test]
fn several_fallbacks_all_apply() {
    let mut world = World::new();
    world.pods.truncate(1);
    let mut one = cluster_spiffe_id("one", "spiffe://example.org/one", 1);
    one.spec.fallback = true;
    let mut two = cluster_spiffe_id("two", "spiffe://example.org/two", 1);
    two.spec.fallback = true;
    world.spiffe_ids = vec![one, two];
    assert_eq!(by_pod(&world.declare(&config()))["a-uid"].len(), 2);
}

#[test]
fn unscheduled_pods_and_missing_nodes_are_render_failures() {
    let mut world = World::new();
    world.pods = vec![
        pod("default", "pending", "", &[]),
        pod("default", "orphan", "gone", &[]),
    ];
    world
        .spiffe_ids
        .push(cluster_spiffe_id("all", "spiffe://example.org/all", 1));
    let declared = world.declare(&config());
    assert!(declared.is_empty());
    let stats = &declared.cluster_spiffe_id_stats["all"];
    assert_eq!(
        (stats.pods_selected, stats.pod_entry_render_failures),
        (2, 2)
    );
    let reasons: Vec<(&str, &str)> = declared
        .failures
        .iter()
        .map(|f| (f.pod.as_deref().unwrap_or_default(), f.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("default/orphan", "node \"gone\" not found"),
            ("default/pending", "pod is not scheduled to a node"),
        ]
    );
}

#[test]
fn invalid_specs_declare_nothing_and_keep_zero_stats() {
    let mut world = World::new();
    world.spiffe_ids.push(cluster_spiffe_id("empty", "", 1));
    let declared = world.declare(&config());
    assert!(declared.is_empty());
    assert_eq!(
        declared.cluster_spiffe_id_stats["empty"],
        ClusterSpiffeIdStats::default()
    );
    assert_eq!(
        declared.failures,
        [RenderFailure {
            owner: Owner {
                kind: ObjectKind::ClusterSpiffeId,
                name: "empty".into(),
            },
            pod: None,
            reason: "failed to parse ClusterSPIFFEID spec: empty SPIFFEID template".into(),
        }]
    );
}

#[test]
fn class_names_select_the_objects_handled() {
    let mut world = World::new();
    let mut mine = cluster_spiffe_id("mine", "spiffe://example.org/mine", 1);
    mine.spec.class_name = "scm".into();
    let mut theirs = cluster_spiffe_id("theirs", "spiffe://example.org/theirs", 1);
    theirs.spec.class_name = "other".into();
    let classless = cluster_spiffe_id("classless", "spiffe://example.org/classless", 1);
    world.spiffe_ids = vec![mine, theirs, classless];
    let mut classless_static = static_entry(
        "static",
        "spiffe://example.org/static",
        "spiffe://example.org/spire/server",
        &["unix:uid:0"],
        1,
    );
    classless_static.spec.class_name = String::new();
    world.static_entries = vec![classless_static];

    let mut config = config();
    config.class_name = "scm".into();
    config.watch_classless = false;
    let declared = world.declare(&config);
    assert_eq!(
        declared.cluster_spiffe_id_stats.keys().collect::<Vec<_>>(),
        ["mine"]
    );
    assert!(declared.cluster_static_entry_statuses.is_empty());

    config.watch_classless = true;
    let declared = world.declare(&config);
    assert_eq!(
        declared.cluster_spiffe_id_stats.keys().collect::<Vec<_>>(),
        ["classless", "mine"]
    );
    assert_eq!(
        declared
            .cluster_static_entry_statuses
            .keys()
            .collect::<Vec<_>>(),
        ["static"]
    );
}

#[test]
fn static_entries_report_rendered_and_masked() {
    let mut world = World::new();
    world.static_entries = vec![
        static_entry(
            "first",
            "spiffe://example.org/db",
            "spiffe://example.org/spire/server",
            &["unix:uid:1000"],
            1,
        ),
        static_entry(
            "copy",
            "spiffe://example.org/db",
            "spiffe://example.org/spire/server",
            &["unix:uid:1000"],
            2,
        ),
        static_entry(
            "broken",
            "db",
            "spiffe://example.org/spire/server",
            &["a:b"],
            3,
        ),
    ];
    let declared = world.declare(&config());
    assert_eq!(declared.len(), 1);
    let statuses = &declared.cluster_static_entry_statuses;
    assert_eq!(
        statuses["first"],
        ClusterStaticEntryStatus {
            rendered: true,
            masked: false,
            set: false
        }
    );
    assert_eq!(
        statuses["copy"],
        ClusterStaticEntryStatus {
            rendered: true,
            masked: true,
            set: false
        }
    );
    assert_eq!(statuses["broken"], ClusterStaticEntryStatus::default());
    assert_eq!(declared.failures[0].owner.name, "broken");
    assert_eq!(
        declared.failures[0].reason,
        "failed to parse SPIFFEID: scheme is missing or invalid"
    );
}

#[test]
fn static_and_pod_entries_mask_each_other_by_age() {
    let mut world = World::new();
    world.pods.truncate(1);
    world
        .spiffe_ids
        .push(cluster_spiffe_id("pods", "spiffe://example.org/x", 20));
    world.static_entries.push(static_entry(
        "static",
        "spiffe://example.org/x",
        "spiffe://example.org/spire/agent/k8s_psat/demo-cluster/node-1-uid",
        &["k8s:pod-uid:a-uid"],
        10,
    ));
    let declared = world.declare(&config());
    assert_eq!(declared.len(), 1);
    assert_eq!(
        declared.entries().next().map(|(_, d)| d.owner.kind),
        Some(ObjectKind::ClusterStaticEntry)
    );
    assert_eq!(declared.cluster_spiffe_id_stats["pods"].entries_masked, 1);
    assert!(!declared.cluster_static_entry_statuses["static"].masked);
}

#[test]
fn reconcile_flags_turn_kinds_off() {
    let mut world = World::new();
    world
        .spiffe_ids
        .push(cluster_spiffe_id("all", "spiffe://example.org/all", 1));
    world.static_entries.push(static_entry(
        "static",
        "spiffe://example.org/db",
        "spiffe://example.org/spire/server",
        &["unix:uid:0"],
        1,
    ));
    let mut config = config();
    config.reconcile.cluster_spiffe_ids = false;
    let declared = world.declare(&config);
    assert_eq!(declared.len(), 1);
    assert!(declared.cluster_spiffe_id_stats.is_empty());

    config.reconcile.cluster_spiffe_ids = true;
    config.reconcile.cluster_static_entries = false;
    let declared = world.declare(&config);
    assert_eq!(declared.len(), 3);
    assert!(declared.cluster_static_entry_statuses.is_empty());
}

#[test]
fn auto_populated_names_come_from_endpoints_in_the_pod_namespace() {
    let mut world = World::new();
    let mut object = cluster_spiffe_id("all", "spiffe://example.org/all", 1);
    object.spec.auto_populate_dns_names = true;
    world.spiffe_ids.push(object);
    let mut not_ready = testutil::endpoints("default", "web", &["a-uid"]);
    for subset in not_ready.subsets.iter_mut().flatten() {
        subset.not_ready_addresses = subset.addresses.take();
    }
    world.endpoints = vec![
        not_ready,
        testutil::endpoints("default", "api", &["a-uid", "b-uid"]),
        // Another namespace's Endpoints naming the same UID do not count.
        testutil::endpoints("prod", "foreign", &["a-uid"]),
    ];
    let declared = world.declare(&config());
    let names = |uid: &str| -> Vec<String> {
        declared
            .entries()
            .find(|(k, _)| {
                k.selectors()
                    .iter()
                    .any(|(_, v)| v == &format!("pod-uid:{uid}"))
            })
            .map(|(_, d)| d.entry.dns_names.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        names("a-uid"),
        [
            "api",
            "api.default",
            "api.default.svc",
            "api.default.svc.cluster.local",
            "web",
            "web.default",
            "web.default.svc",
            "web.default.svc.cluster.local",
        ]
    );
    assert_eq!(names("b-uid").len(), 4);
    assert!(names("c-uid").is_empty());
}

#[test]
fn keys_ignore_selector_order() {
    let mut a = testutil::entry(
        "spiffe://example.org/x",
        "spiffe://example.org/p",
        &["a:1", "b:2"],
    );
    let b = testutil::entry(
        "spiffe://example.org/x",
        "spiffe://example.org/p",
        &["b:2", "a:1"],
    );
    assert_eq!(EntryKey::of(&a), EntryKey::of(&b));
    a.selectors.pop();
    assert_ne!(EntryKey::of(&a), EntryKey::of(&b));
}

/// 30k pods × 3 objects (templated): checks every pod is declared; the time is printed, not
/// asserted.
#[test]
fn large_cluster_declares_every_pod() {
    const PODS: usize = 30_000;
    let namespaces: Vec<Namespace> = (0..100)
        .map(|i| namespace(&format!("ns-{i}"), &[]))
        .collect();
    let nodes: Vec<Node> = (0..300).map(|i| node(&format!("node-{i}"))).collect();
    let pods: Vec<Pod> = (0..PODS)
        .map(|i| {
            pod(
                &format!("ns-{}", i % 100),
                &format!("pod-{i}"),
                &format!("node-{}", i % 300),
                &[("app", if i % 2 == 0 { "even" } else { "odd" })],
            )
        })
        .collect();
    let istio = "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}";
    let mut even = cluster_spiffe_id("even", "spiffe://example.org/even", 1);
    even.spec.pod_selector = match_labels(&[("app", "even")]);
    even.spec.dns_name_templates = vec!["{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}".into()];
    let all = cluster_spiffe_id("all", istio, 2);
    let mut fallback = cluster_spiffe_id("fallback", "spiffe://example.org/fallback", 3);
    fallback.spec = ClusterSpiffeIdSpec {
        fallback: true,
        ..fallback.spec
    };
    let objects = [even, all, fallback];
    let inputs = DeclareInputs {
        cluster_spiffe_ids: objects.iter().collect(),
        namespaces: namespaces.iter().collect(),
        pods: pods.iter().collect(),
        nodes: nodes.iter().collect(),
        ..DeclareInputs::default()
    };
    let started = tokio::time::Instant::now();
    let declared = declare(&config(), &inputs);
    eprintln!(
        "declared {} entries in {:?}",
        declared.len(),
        started.elapsed()
    );
    assert_eq!(declared.len(), PODS + PODS / 2);
    assert_eq!(
        declared.cluster_spiffe_id_stats["fallback"].entries_to_set,
        0
    );
}
