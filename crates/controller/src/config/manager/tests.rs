use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::ZapArgs;

/// `spire-controller-manager-config.yaml` of Istio's current SPIRE quickstart (§7.1).
const ISTIO_CONFIG: &str = "\
apiVersion: spire.spiffe.io/v1alpha1
kind: ControllerManagerConfig
metrics:
  bindAddress: 127.0.0.1:8082
healthProbe:
  bindAddress: 127.0.0.1:8083
leaderElection:
  leaderElect: true
  resourceName: 98c9c988.spiffe.io
  resourceNamespace: spire
clusterName: demo-cluster
trustDomain: example.org
ignoreNamespaces:
  - kube-system
  - kube-public
  - spire
  - local-path-storage
";

/// What the helm chart renders (spire-server subchart, webhook on, prefix on).
const HELM_CONFIG: &str = r#"
apiVersion: spire.spiffe.io/v1alpha1
kind: ControllerManagerConfig
metadata:
  name: spire-controller-manager
  namespace: spire-server
  labels:
    app.kubernetes.io/name: server
metrics:
  bindAddress: 0.0.0.0:8082
health:
  healthProbeBindAddress: 0.0.0.0:8083
gcInterval: 10s
logLevel: debug
logEncoding: json
leaderElection:
  leaderElect: true
  resourceName: 4b4b2a4f.spiffe.io
  resourceNamespace: spire-server
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 5s
validatingWebhookConfigurationName: spire-server-spire-controller-manager-webhook
entryIDPrefixCleanup: ""
entryIDPrefix: example-cluster
clusterName: example-cluster
trustDomain: example.org
ignoreNamespaces:
  - kube-system
  - kube-public
  - local-path-storage
spireServerSocketPath: "/tmp/spire-server/private/api.sock"
className: "spire-server-spire"
watchClassless: false
filterByClassName: false
parentIDTemplate: ""
reconcile:
  clusterSPIFFEIDs: true
  clusterStaticEntries: true
  clusterFederatedTrustDomains: true
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(yaml: &str) -> Result<ManagerConfig, ConfigError> {
    ManagerConfig::parse(yaml, &ManagerArgs::default(), no_env)
}

fn parse_with(yaml: &str, args: &ManagerArgs) -> Result<ManagerConfig, ConfigError> {
    ManagerConfig::parse(yaml, args, no_env)
}

/// A minimal valid file plus `extra` lines.
fn minimal(extra: &str) -> String {
    format!("clusterName: c1\ntrustDomain: example.org\n{extra}")
}

fn error(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

fn patterns(config: &ManagerConfig) -> Vec<&str> {
    config.ignore_namespaces.iter().map(Regex::as_str).collect()
}

fn assert_istio_quickstart(config: &ManagerConfig) {
    assert_eq!(config.cluster_name, "demo-cluster");
    assert_eq!(config.trust_domain.name(), "example.org");
    assert_eq!(config.cluster_domain, None);
    assert_eq!(
        patterns(config),
        ["kube-system", "kube-public", "spire", "local-path-storage"]
    );
    // Not a key of any spire-controller-manager release: reported, no effect.
    assert_eq!(config.ignored_keys, ["healthProbe.bindAddress"]);
    assert_eq!(config.health.probe_bind_address, None);
    assert_eq!(
        config.metrics_bind_address.as_deref(),
        Some("127.0.0.1:8082")
    );
    assert_eq!(
        config.leader_election,
        LeaderElection {
            enabled: true,
            lease_name: "98c9c988.spiffe.io".into(),
            lease_namespace: Some("spire".into()),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    );
    assert_eq!(
        config.reconcile,
        Reconcile {
            cluster_spiffe_ids: true,
            cluster_federated_trust_domains: true,
            cluster_static_entries: true,
        }
    );
    assert_eq!(
        config.spire_server_socket_path,
        Path::new("/spire-server/api.sock")
    );
    assert_eq!(
        config.validating_webhook_configuration_name,
        "spire-controller-manager-webhook"
    );
    assert_eq!(
        config.webhook,
        Webhook {
            enabled: true,
            port: 9443,
            host: String::new()
        }
    );
    assert_eq!(config.gc_interval, Duration::from_secs(10));
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.log_format, LogFormat::Text);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    // `spire` is a substring match: the agent namespace and anything containing "spire".
    assert!(config.is_namespace_ignored("spire"));
    assert!(config.is_namespace_ignored("spire-system"));
    assert!(!config.is_namespace_ignored("default"));
}

#[test]
fn istio_quickstart_config_inline() {
    assert_istio_quickstart(&parse(ISTIO_CONFIG).unwrap());
}

#[test]
fn istio_quickstart_config_from_the_users_manifest() {
    let Some(dir) = spire_test::shared_testdata("istio-samples") else {
        return;
    };
    let objects = spire_test::manifest_objects(&dir.join("spire-quickstart.yaml"));
    let yaml = spire_test::config_map_data(
        &objects,
        "spire",
        "spire-controller-manager-config",
        "spire-controller-manager-config.yaml",
    );
    assert_istio_quickstart(&parse(&yaml).unwrap());
}

#[test]
fn helm_rendered_config() {
    let config = parse(HELM_CONFIG).unwrap();
    // The object envelope (metadata) is accepted silently.
    assert!(config.ignored_keys.is_empty(), "{:?}", config.ignored_keys);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.cluster_name, "example-cluster");
    assert_eq!(config.entry_id_prefix.as_deref(), Some("example-cluster."));
    assert_eq!(config.entry_id_prefix_cleanup.as_deref(), Some(""));
    assert_eq!(config.class_name, "spire-server-spire");
    assert!(!config.watch_classless && !config.filter_by_class_name);
    assert_eq!(config.parent_id_template, None);
    assert_eq!(config.log_level, LogLevel::Debug);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(
        config.spire_server_socket_path,
        Path::new("/tmp/spire-server/private/api.sock")
    );
    assert_eq!(
        config.health.probe_bind_address.as_deref(),
        Some("0.0.0.0:8083")
    );
    assert_eq!(config.health.readiness_endpoint, "/readyz");
    assert_eq!(config.health.liveness_endpoint, "/healthz");
    assert_eq!(
        config.leader_election.lease_duration,
        Duration::from_secs(30)
    );
    assert_eq!(
        config.leader_election.renew_deadline,
        Duration::from_secs(20)
    );
    assert_eq!(config.leader_election.retry_period, Duration::from_secs(5));
    assert_eq!(
        config.validating_webhook_configuration_name,
        "spire-server-spire-controller-manager-webhook"
    );
    assert_eq!(
        patterns(&config),
        ["kube-system", "kube-public", "local-path-storage"]
    );
}

#[test]
fn defaults_of_a_minimal_file() {
    let config = parse(&minimal("")).unwrap();
    assert_eq!(
        patterns(&config),
        ["kube-system", "kube-public", "spire-system"]
    );
    assert_eq!(config.metrics_bind_address.as_deref(), Some(":8080"));
    assert_eq!(config.health.probe_bind_address, None);
    assert!(!config.leader_election.enabled);
    assert_eq!(config.leader_election.lease_namespace, None);
    assert_eq!(config.entry_id_prefix, None);
    assert_eq!(config.entry_id_prefix_cleanup, None);
    assert_eq!(config.static_manifest_path, None);
    assert_eq!(config.entry_render_cache_size, 300_000);
    assert!(!config.enable_entry_render_cache);
    assert_eq!(config.grpc_max_call_recv_msg_size, 4 * 1024 * 1024);
    assert!(config.cache_namespaces.is_empty());
    assert_eq!(config.controller, ControllerOptions::default());
    assert_eq!(config.sync_period, None);
}

#[test]
fn every_required_key_and_its_upstream_message() {
    assert_eq!(
        error("clusterName: c1\n"),
        "trust domain is required configuration"
    );
    assert_eq!(
        error("trustDomain: example.org\n"),
        "cluster name is required configuration"
    );
    assert_eq!(
        error(&minimal("validatingWebhookConfigurationName: \"\"\n")),
        "validating webhook configuration name is required configuration"
    );
    // Without --config only defaults apply; the trust domain is checked first.
    let err = ManagerConfig::load(&ManagerArgs::default(), no_env).unwrap_err();
    assert_eq!(err.to_string(), "trust domain is required configuration");
}

#[test]
fn value_errors_name_what_is_wrong() {
    let err = error(&minimal("ignoreNamespaces: [\"kube-.*\", \"[\"]\n"));
    assert!(
        err.starts_with("unable to compile ignore namespaces regex \"[\": "),
        "{err}"
    );
    assert_eq!(
        error(&minimal("entryIDPrefix: scm\nentryIDPrefixCleanup: scm.\n")),
        "if entryIDPrefixCleanup is specified, it can not be the same value as entryIDPrefix"
    );
    assert_eq!(
        error(&minimal("cacheNamespace: a\ncacheNamespaces: {b: {}}\n")),
        "unable to load the config file: cacheNamespace or cacheNamespaces can be used, but not both"
    );
    let err = error("clusterName: c1\ntrustDomain: Example.org\n");
    assert!(
        err.starts_with("invalid trust domain name \"Example.org\": "),
        "{err}"
    );
    assert_eq!(
        error(&minimal("leaderElection: {leaderElect: true}\n")),
        "LeaderElectionID must be configured"
    );
    assert_eq!(
        error(&minimal(
            "leaderElection: {leaderElect: true, resourceName: x, resourceLock: configmaps}\n"
        )),
        "invalid leaderElection.resourceLock: \"configmaps\": only \"leases\" is supported"
    );
    assert_eq!(
        error(&minimal("logLevel: loud\n")),
        "invalid logLevel: \"loud\": supported values are info, error, warn and debug"
    );
    assert_eq!(
        error(&minimal("logEncoding: xml\n")),
        "invalid logEncoding: \"xml\": supported values are console and json"
    );
    assert_eq!(
        error(&minimal("filterByClassName: true\n")),
        "invalid filterByClassName: requires className to be set"
    );
}

#[test]
fn decode_errors_carry_upstreams_prefix() {
    let prefix = "unable to load the config file: could not decode file into runtime.Object: ";
    for yaml in [
        "clusterName: [unclosed\n",
        "- a list\n",
        "gcInterval: soon\n",
        "gcInterval: -5s\n",
        "webhook: {port: 70000}\n",
        "kind: ClusterSPIFFEID\n",
        "apiVersion: controller-runtime.sigs.k8s.io/v1alpha1\n",
    ] {
        let err = error(&minimal(yaml));
        assert!(err.starts_with(prefix), "{yaml:?}: {err}");
    }
    assert!(error(&minimal("gcInterval: soon\n")).contains("\"soon\""));
    assert!(error(&minimal("kind: ClusterSPIFFEID\n")).contains("\"ClusterSPIFFEID\""));
}

#[test]
fn an_unreadable_file_is_named() {
    let args = ManagerArgs {
        config: Some(PathBuf::from("/nonexistent/scm.yaml")),
        ..ManagerArgs::default()
    };
    let err = ManagerConfig::load(&args, no_env).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "unable to load the config file: could not read file at /nonexistent/scm.yaml: "
        ),
        "{err}"
    );
}

#[test]
fn ignore_namespaces_are_unanchored_regexes() {
    let config = parse(&minimal("ignoreNamespaces: [\"kube-\", \"^team-a$\"]\n")).unwrap();
    assert!(config.is_namespace_ignored("kube-system"));
    assert!(config.is_namespace_ignored("my-kube-thing"));
    assert!(config.is_namespace_ignored("team-a"));
    assert!(!config.is_namespace_ignored("team-ab"));
    // An explicit null or empty list ignores nothing (Go's nil slice), unlike an absent key.
    for list in ["ignoreNamespaces: ~\n", "ignoreNamespaces: []\n"] {
        let config = parse(&minimal(list)).unwrap();
        assert!(config.ignore_namespaces.is_empty(), "{list:?}");
        assert!(!config.is_namespace_ignored("kube-system"));
    }
}

#[test]
fn entry_id_prefixes_get_a_trailing_dot() {
    let config = parse(&minimal("entryIDPrefix: scm\nentryIDPrefixCleanup: old\n")).unwrap();
    assert_eq!(config.entry_id_prefix.as_deref(), Some("scm."));
    assert_eq!(config.entry_id_prefix_cleanup.as_deref(), Some("old."));
    let config = parse(&minimal(
        "entryIDPrefix: scm.\nentryIDPrefixCleanup: \"\"\n",
    ))
    .unwrap();
    assert_eq!(config.entry_id_prefix.as_deref(), Some("scm."));
    assert_eq!(config.entry_id_prefix_cleanup.as_deref(), Some(""));
    let config = parse(&minimal("entryIDPrefix: \"\"\nentryIDPrefixCleanup: ~\n")).unwrap();
    assert_eq!(config.entry_id_prefix, None);
    assert_eq!(config.entry_id_prefix_cleanup, None);
}

#[test]
fn a_reconcile_block_switches_off_what_it_omits() {
    let config = parse(&minimal("reconcile: {clusterStaticEntries: false}\n")).unwrap();
    assert_eq!(
        config.reconcile,
        Reconcile {
            cluster_spiffe_ids: false,
            cluster_federated_trust_domains: false,
            cluster_static_entries: false,
        }
    );
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("clusterSPIFFEIDs, clusterFederatedTrustDomains"),
        "{:?}",
        config.warnings
    );
    // Istio's manifests lack the ClusterStaticEntry CRD: the complete way to say so.
    let config = parse(&minimal(
        "reconcile:\n  clusterSPIFFEIDs: true\n  clusterFederatedTrustDomains: true\n  clusterStaticEntries: false\n",
    ))
    .unwrap();
    assert!(
        config.reconcile.cluster_spiffe_ids && config.reconcile.cluster_federated_trust_domains
    );
    assert!(!config.reconcile.cluster_static_entries);
    assert!(config.warnings.is_empty());
}

#[test]
fn static_manifest_mode_drops_kubernetes_only_features() {
    let config = parse(&minimal(
        "staticManifestPath: /etc/spire/manifests\nexpandEnvStaticManifests: true\n\
         leaderElection: {leaderElect: true, resourceName: x}\n",
    ))
    .unwrap();
    assert_eq!(
        config.static_manifest_path.as_deref(),
        Some(Path::new("/etc/spire/manifests"))
    );
    assert!(config.expand_env_static_manifests);
    assert!(!config.reconcile.cluster_spiffe_ids);
    assert!(config.reconcile.cluster_static_entries);
    assert!(!config.webhook.enabled);
    assert!(!config.leader_election.enabled);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);

    let config = parse(&minimal(
        "staticManifestPath: /m\nreconcile: {clusterSPIFFEIDs: true, clusterStaticEntries: true, clusterFederatedTrustDomains: true}\n",
    ))
    .unwrap();
    assert!(!config.reconcile.cluster_spiffe_ids);
    assert!(config.warnings[0].starts_with("ClusterSPIFFEIDs are not supported"));
}

#[test]
fn the_deprecated_socket_flag() {
    let flag = ManagerArgs {
        spire_api_socket: Some(PathBuf::from("/flag/api.sock")),
        ..ManagerArgs::default()
    };
    let config = parse_with(&minimal(""), &flag).unwrap();
    assert_eq!(config.spire_server_socket_path, Path::new("/flag/api.sock"));
    assert_eq!(
        config.warnings,
        [
            "The spire-api-socket flag is deprecated and will be removed in a future release; use the configuration file instead"
        ]
    );
    let config = parse_with(&minimal("spireServerSocketPath: /file/api.sock\n"), &flag).unwrap();
    assert_eq!(config.spire_server_socket_path, Path::new("/file/api.sock"));
    assert_eq!(
        config.warnings,
        ["Ignoring deprecated spire-api-socket flag which will be removed in a future release"]
    );
}

#[test]
fn enable_webhooks_false_disables_the_webhook() {
    let env =
        |value: &'static str| move |k: &str| (k == "ENABLE_WEBHOOKS").then(|| value.to_owned());
    let args = ManagerArgs::default();
    let off = ManagerConfig::parse(&minimal(""), &args, env("false")).unwrap();
    assert!(!off.webhook.enabled);
    // Go compares with "false" exactly.
    let on = ManagerConfig::parse(&minimal(""), &args, env("False")).unwrap();
    assert!(on.webhook.enabled);
    let config = parse(&minimal(
        "webhook: {port: 9444, host: 127.0.0.1, certDir: /certs}\n",
    ))
    .unwrap();
    assert_eq!(config.webhook.port, 9444);
    assert_eq!(config.webhook.host, "127.0.0.1");
    assert_eq!(
        config.warnings,
        ["certDir configuration is ignored (certDir \"/certs\")"]
    );
}

#[test]
fn expand_env_applies_to_the_file_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scm.yaml");
    std::fs::write(&path, "clusterName: ${CLUSTER}\ntrustDomain: $TD\n").unwrap();
    let env = |k: &str| match k {
        "CLUSTER" => Some("demo-cluster".to_owned()),
        "TD" => Some("example.org".to_owned()),
        _ => None,
    };
    let mut args = ManagerArgs {
        config: Some(path),
        expand_env: true,
        ..ManagerArgs::default()
    };
    let config = ManagerConfig::load(&args, env).unwrap();
    assert_eq!(config.cluster_name, "demo-cluster");
    assert_eq!(config.trust_domain.name(), "example.org");
    args.expand_env = false;
    let err = ManagerConfig::load(&args, env).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid trust domain name \"$TD\""),
        "{err}"
    );
}

#[test]
fn zap_flags_take_precedence_over_the_file() {
    let with = |zap: ZapArgs, extra: &str| {
        let args = ManagerArgs {
            zap,
            ..ManagerArgs::default()
        };
        let config = parse_with(&minimal(extra), &args).unwrap();
        (config.log_level, config.log_format)
    };
    let level = |l| ZapArgs {
        log_level: Some(l),
        ..ZapArgs::default()
    };
    assert_eq!(
        with(level(LogLevel::Error), "logLevel: debug\n").0,
        LogLevel::Error
    );
    assert_eq!(
        with(ZapArgs::default(), "logLevel: WARN\n").0,
        LogLevel::Warn
    );
    let devel = |on| ZapArgs {
        devel: Some(on),
        ..ZapArgs::default()
    };
    assert_eq!(with(devel(true), ""), (LogLevel::Debug, LogFormat::Text));
    assert_eq!(with(devel(false), ""), (LogLevel::Info, LogFormat::Json));
    assert_eq!(with(devel(true), "logLevel: info\n").0, LogLevel::Info);
    let console = ZapArgs {
        encoder: Some(ZapEncoder::Console),
        ..ZapArgs::default()
    };
    assert_eq!(with(console, "logEncoding: json\n").1, LogFormat::Text);
}

#[test]
fn durations_are_go_strings_or_nanoseconds() {
    let config = parse(&minimal(
        "gcInterval: 1m30s\nsyncPeriod: 10h\ngracefulShutDown: 30s\ncontroller:\n  cacheSyncTimeout: 120000000000\n  groupKindConcurrency: {Pod: 4}\n  recoverPanic: true\n",
    ))
    .unwrap();
    assert_eq!(config.gc_interval, Duration::from_secs(90));
    assert_eq!(config.sync_period, Some(Duration::from_secs(36_000)));
    assert_eq!(
        config.graceful_shutdown_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        config.controller.cache_sync_timeout,
        Some(Duration::from_secs(120))
    );
    assert_eq!(config.controller.group_kind_concurrency["Pod"], 4);
    assert_eq!(config.controller.recover_panic, Some(true));
    let config = parse(&minimal("gcInterval: 10000000000\n")).unwrap();
    assert_eq!(config.gc_interval, Duration::from_secs(10));
}

#[test]
fn listeners_can_be_switched_off() {
    let config = parse(&minimal(
        "metrics: {bindAddress: \"0\"}\nhealth: {healthProbeBindAddress: \"0\"}\n",
    ))
    .unwrap();
    assert_eq!(config.metrics_bind_address, None);
    assert_eq!(config.health.probe_bind_address, None);
}

#[test]
fn unknown_keys_are_reported_as_leaf_paths() {
    let config = parse(&minimal(
        "clusterSpiffeIds: true\nleaderElection: {resourceName: x, bogus: 1}\nreconcile: {clusterSPIFFEIDs: true, clusterFederatedTrustDomains: true, clusterStaticEntries: true, extra: false}\nhealthProbe: {bindAddress: a, port: 1}\ncacheNamespaces: {ns1: {labelSelectors: {a: b}, typo: c}}\n",
    ))
    .unwrap();
    let mut keys = config.ignored_keys.clone();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cacheNamespaces.ns1.typo",
            "clusterSpiffeIds",
            "healthProbe.bindAddress",
            "healthProbe.port",
            "leaderElection.bogus",
            "reconcile.extra",
        ]
    );
    assert_eq!(config.cache_namespaces["ns1"].label_selectors["a"], "b");
}

#[test]
fn class_and_selector_settings() {
    let config = parse(&minimal(
        "className: blue\nwatchClassless: true\nfilterByClassName: true\nclusterSPIFFEIDLabelSelector: {matchLabels: {team: a}}\nparentIDTemplate: \"spiffe://{{ .TrustDomain }}/node/{{ .NodeMeta.Name }}\"\nclusterDomain: cluster.local\nenableEntryRenderCache: true\nentryRenderCacheSize: 10\ngrpc: {maxCallRecvMsgSize: 16777216}\n",
    ))
    .unwrap();
    assert_eq!(config.class_name, "blue");
    assert!(config.watch_classless && config.filter_by_class_name);
    let selector = config.cluster_spiffe_id_label_selector.unwrap();
    assert_eq!(selector.match_labels.unwrap()["team"], "a");
    assert_eq!(
        config.parent_id_template.as_deref(),
        Some("spiffe://{{ .TrustDomain }}/node/{{ .NodeMeta.Name }}")
    );
    assert_eq!(config.cluster_domain.as_deref(), Some("cluster.local"));
    assert!(config.enable_entry_render_cache);
    assert_eq!(config.entry_render_cache_size, 10);
    assert_eq!(config.grpc_max_call_recv_msg_size, 16 << 20);
}
