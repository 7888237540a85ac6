use std::path::{Path, PathBuf};

use super::*;

/// `k8s-workload-registrar.conf` of Istio 1.14's SPIRE quickstart (§7.2).
const ISTIO_2022_CONFIG: &str = r#"trust_domain = "example.org"
server_socket_path = "/run/spire/sockets/server.sock"
cluster = "demo-cluster"
mode = "crd"
metrics_bind_addr = "0"
"#;

fn error(hcl: &str) -> String {
    RegistrarConfig::parse(hcl).unwrap_err().to_string()
}

/// A valid CRD-mode file plus `extra` lines.
fn crd(extra: &str) -> String {
    format!(
        "trust_domain = \"example.org\"\nserver_socket_path = \"/run/spire/sockets/server.sock\"\n\
         cluster = \"demo-cluster\"\nmode = \"crd\"\n{extra}"
    )
}

fn crd_mode(config: &RegistrarConfig) -> &CrdMode {
    match &config.mode {
        RegistrarMode::Crd(mode) => mode,
        other => panic!("not CRD mode: {other:?}"),
    }
}

fn assert_istio_2022(config: &RegistrarConfig) {
    assert_eq!(config.trust_domain.name(), "example.org");
    assert_eq!(config.cluster, "demo-cluster");
    assert_eq!(
        config.server_socket_path,
        Path::new("/run/spire/sockets/server.sock")
    );
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.log_path, None);
    assert_eq!(config.disabled_namespaces, ["kube-system", "kube-public"]);
    assert!(config.ignored_keys.is_empty(), "{:?}", config.ignored_keys);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let mode = crd_mode(config);
    assert_eq!(
        mode.identity,
        PodIdentity::Template {
            template: "ns/{{.Pod.Namespace}}/sa/{{.Pod.ServiceAccount}}".into(),
            label: None,
        }
    );
    assert_eq!(mode.dns_name_templates, ["{{.Pod.Name}}"]);
    assert_eq!(mode.context, None);
    assert!(mode.add_svc_dns_name);
    assert!(mode.pod_controller);
    assert_eq!(mode.metrics_bind_address, None);
    assert_eq!(
        mode.webhook,
        RegistrarWebhook {
            enabled: false,
            port: 9443,
            cert_dir: PathBuf::from("/run/spire/serving-certs"),
            service_name: "k8s-workload-registrar".into(),
        }
    );
    assert_eq!(
        mode.leader_election,
        LeaderElection::with_defaults(false, "spire-k8s-registrar-leader-election")
    );
}

#[test]
fn istio_2022_config_inline() {
    assert_istio_2022(&RegistrarConfig::parse(ISTIO_2022_CONFIG).unwrap());
}

#[test]
fn istio_2022_config_from_the_users_manifest() {
    let Some(dir) = spire_test::shared_testdata("istio-1.14-samples") else {
        return;
    };
    let objects = spire_test::manifest_objects(&dir.join("spire-quickstart.yaml"));
    let hcl = spire_test::config_map_data(
        &objects,
        "spire",
        "k8s-workload-registrar",
        "k8s-workload-registrar.conf",
    );
    assert_istio_2022(&RegistrarConfig::parse(&hcl).unwrap());
}

#[test]
fn load_reads_the_config_flag_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k8s-workload-registrar.conf");
    std::fs::write(&path, ISTIO_2022_CONFIG).unwrap();
    let args = RegistrarArgs {
        config: path,
        kubeconfig: None,
    };
    assert_istio_2022(&RegistrarConfig::load(&args).unwrap());
    let args = RegistrarArgs {
        config: dir.path().join("absent.conf"),
        kubeconfig: None,
    };
    let err = RegistrarConfig::load(&args).unwrap_err().to_string();
    assert!(err.starts_with("unable to load configuration: "), "{err}");
}

#[test]
fn the_upstream_examples_typo_is_accepted_and_reported() {
    // The upstream README's CRD-mode example spells the key with a trailing `s`; upstream
    // silently ignores it, leaving the default (true) in force.
    let config = RegistrarConfig::parse(
        r#"log_level = "debug"
trust_domain = "example.org"
server_socket_path = "/run/spire/sockets/registration.sock"
cluster = "k8stest"
mode = "crd"
pod_label = "spiffe.io/spiffe-id"
add_svc_dns_names = false
"#,
    )
    .unwrap();
    assert_eq!(config.ignored_keys, ["add_svc_dns_names"]);
    let mode = crd_mode(&config);
    assert!(mode.add_svc_dns_name);
    assert_eq!(
        mode.identity,
        PodIdentity::Label("spiffe.io/spiffe-id".into())
    );
    assert_eq!(config.log_level, LogLevel::Debug);
}

#[test]
fn a_tcp_server_address_is_refused_pointing_at_the_socket() {
    for extra in [
        "server_address = \"spire-server:8081\"\n",
        "server_address = \"dns:///spire-server:8081\"\nagent_socket_path = \"/run/spire/sockets/agent.sock\"\n",
    ] {
        let text =
            format!("trust_domain = \"example.org\"\ncluster = \"c\"\nmode = \"crd\"\n{extra}");
        let err = RegistrarConfig::parse(&text).unwrap_err();
        assert!(
            matches!(err, ConfigError::TcpServerAddress { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("spire-server:8081"), "{text}");
        assert!(text.contains("admin Unix socket"), "{text}");
        assert!(text.contains("set server_socket_path"), "{text}");
    }
}

#[test]
fn a_unix_server_address_wins_over_server_socket_path() {
    let config =
        RegistrarConfig::parse(&crd("server_address = \"unix:///tmp/api.sock\"\n")).unwrap();
    assert_eq!(config.server_socket_path, Path::new("/tmp/api.sock"));
}

#[test]
fn every_upstream_error_message() {
    let cases = [
        (
            "trust_domain = \"example.org\"\ncluster = \"c\"\nmode = \"crd\"\n",
            "error parsing common config: server_address or server_socket_path must be specified",
        ),
        (
            "server_socket_path = \"/s\"\ncluster = \"c\"\nmode = \"crd\"\n",
            "error parsing common config: trust_domain must be specified",
        ),
        (
            "server_socket_path = \"/s\"\ntrust_domain = \"example.org\"\nmode = \"crd\"\n",
            "error parsing common config: cluster must be specified",
        ),
        (
            "server_socket_path = \"/s\"\ntrust_domain = \"example.org\"\ncluster = \"c\"\n",
            "error parsing common config: mode must be specified, valid values are \"crd\" and \"reconcile\"",
        ),
        (
            "server_socket_path = \"/s\"\ntrust_domain = \"example.org\"\ncluster = \"c\"\nmode = \"webhook\"\n",
            "error parsing common config: invalid mode \"webhook\", valid values are \"crd\" and \"reconcile\"",
        ),
        (
            &crd("pod_label = \"a\"\npod_annotation = \"b\"\n"),
            "error parsing common config: workload registration mode specification is incorrect, can't specify both pod_label and pod_annotation",
        ),
        (
            &crd(
                "pod_annotation = \"spiffe.io/spiffe-id\"\nidentity_template = \"x/{{.Pod.Name}}\"\n",
            ),
            "workload registration configuration is incorrect, can only use one of identity_template, pod_annotation, or pod_label",
        ),
        (
            &crd("identity_template = \"{{ .Context.region }}/{{.Pod.Name}}\"\n"),
            "identity_template references non-existing context",
        ),
        (
            &crd("dns_name_templates = [\"{{.Pod.Name}}\", \"{{ .Context.domain }}\"]\n"),
            "dns_name_template references non-existing context",
        ),
        (
            &crd("leader_election = true\nleader_election_resource_lock = \"configmaps\"\n"),
            "the \"configmaps\" leader election resource lock type is no longer supported",
        ),
        (
            &crd("log_level = \"loud\"\n"),
            "error setting up logging: not a valid logrus Level: \"loud\"",
        ),
        (
            &crd("log_format = \"xml\"\n"),
            "error setting up logging: unknown logger format: \"xml\"",
        ),
    ];
    for (hcl, message) in cases {
        assert_eq!(error(hcl), message, "{hcl}");
    }
    let err = error(
        "server_socket_path = \"/s\"\ntrust_domain = \"Example.org\"\ncluster = \"c\"\nmode = \"crd\"\n",
    );
    assert!(
        err.starts_with("error parsing common config: malformed trust domain: "),
        "{err}"
    );
    let err = error("trust_domain = \"example.org\nmode = {");
    assert!(
        err.starts_with("error parsing common config: unable to decode configuration: "),
        "{err}"
    );
    let err = error(&crd("webhook_port = \"many\"\n"));
    assert!(
        err.starts_with("error parsing common config: unable to decode configuration: "),
        "{err}"
    );
}

#[test]
fn the_configmaps_lock_only_matters_with_leader_election() {
    let config =
        RegistrarConfig::parse(&crd("leader_election_resource_lock = \"configmaps\"\n")).unwrap();
    assert!(!crd_mode(&config).leader_election.enabled);
    let config = RegistrarConfig::parse(&crd("leader_election = true\n")).unwrap();
    assert!(crd_mode(&config).leader_election.enabled);
}

#[test]
fn dns_name_templates_lose_their_spaces_and_may_be_empty() {
    let config = RegistrarConfig::parse(&crd(
        "dns_name_templates = [\"{{ .Pod.Name }}.{{ .Context.domain }}\", \"{{.Pod.Hostname}}\"]\ncontext {\n  domain = \"example.com\"\n}\n",
    ))
    .unwrap();
    let mode = crd_mode(&config);
    assert_eq!(
        mode.dns_name_templates,
        ["{{.Pod.Name}}.{{.Context.domain}}", "{{.Pod.Hostname}}"]
    );
    assert_eq!(mode.context.as_ref().unwrap()["domain"], "example.com");
    let config = RegistrarConfig::parse(&crd("dns_name_templates = []\n")).unwrap();
    assert!(crd_mode(&config).dns_name_templates.is_empty());
}

#[test]
fn identity_templates_with_context_and_label() {
    let config = RegistrarConfig::parse(&crd(
        "identity_template = \"region/{{.Context.region}}/ns/{{.Pod.Namespace}}\"\nidentity_template_label = \"spiffe.io/spire-managed-identity\"\ncontext = { region = \"eu\" }\n",
    ))
    .unwrap();
    let mode = crd_mode(&config);
    assert_eq!(
        mode.identity,
        PodIdentity::Template {
            template: "region/{{.Context.region}}/ns/{{.Pod.Namespace}}".into(),
            label: Some("spiffe.io/spire-managed-identity".into()),
        }
    );
    assert_eq!(mode.context.as_ref().unwrap()["region"], "eu");
}

#[test]
fn pod_annotation_identity_and_a_stray_template_label() {
    let config = RegistrarConfig::parse(&crd(
        "pod_annotation = \"spiffe.io/spiffe-id\"\nidentity_template_label = \"x\"\n",
    ))
    .unwrap();
    assert_eq!(
        crd_mode(&config).identity,
        PodIdentity::Annotation("spiffe.io/spiffe-id".into())
    );
    assert_eq!(config.warnings.len(), 1);
}

#[test]
fn hcl_v1_value_leniency() {
    let config = RegistrarConfig::parse(&crd(
        "metrics_bind_addr = 0\nwebhook_port = \"9444\"\nwebhook_enabled = true\nadd_svc_dns_name = false\npod_controller = \"false\"\nwebhook_service_name = \"registrar\"\nwebhook_cert_dir = \"/certs\"\nlog_level = \"WARN\"\nlog_format = \"JSON\"\nlog_path = \"/var/log/registrar.log\"\n",
    ))
    .unwrap();
    let mode = crd_mode(&config);
    assert_eq!(mode.metrics_bind_address, None);
    assert_eq!(
        mode.webhook,
        RegistrarWebhook {
            enabled: true,
            port: 9444,
            cert_dir: PathBuf::from("/certs"),
            service_name: "registrar".into(),
        }
    );
    assert!(!mode.add_svc_dns_name && !mode.pod_controller);
    assert_eq!(config.log_level, LogLevel::Warn);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(
        config.log_path.as_deref(),
        Some(Path::new("/var/log/registrar.log"))
    );
    let config = RegistrarConfig::parse(&crd(
        "webhook_port = 0\nmetrics_bind_addr = \"127.0.0.1:9090\"\n",
    ))
    .unwrap();
    assert_eq!(crd_mode(&config).webhook.port, 9443);
    assert_eq!(
        crd_mode(&config).metrics_bind_address.as_deref(),
        Some("127.0.0.1:9090")
    );
}

#[test]
fn disabled_namespaces_default_only_when_absent() {
    let config = RegistrarConfig::parse(&crd("disabled_namespaces = []\n")).unwrap();
    assert!(config.disabled_namespaces.is_empty());
    let config = RegistrarConfig::parse(&crd(
        "disabled_namespaces = [\"spire\", \"istio-system\"]\n",
    ))
    .unwrap();
    assert_eq!(config.disabled_namespaces, ["spire", "istio-system"]);
}

#[test]
fn reconcile_mode_keys_and_defaults() {
    let config = RegistrarConfig::parse(
        "trust_domain = \"example.org\"\nserver_socket_path = \"/s\"\ncluster = \"c\"\nmode = \"reconcile\"\n\
         pod_label = \"spiffe\"\ndns_name_templates = [\"x\"]\nmetrics_bind_addr = \"0\"\n",
    )
    .unwrap();
    let RegistrarMode::Reconcile(mode) = &config.mode else {
        panic!("not reconcile mode: {:?}", config.mode);
    };
    assert_eq!(
        *mode,
        ReconcileMode {
            controller_name: "spire-k8s-registrar".into(),
            add_pod_dns_names: false,
            cluster_dns_zone: "cluster.local".into(),
            metrics_bind_address: Some(":8080".into()),
            leader_election: LeaderElection::with_defaults(
                false,
                "spire-k8s-registrar-leader-election"
            ),
            pod_label: Some("spiffe".into()),
            pod_annotation: None,
        }
    );
    // CRD-mode keys mean nothing here.
    let mut ignored = config.ignored_keys.clone();
    ignored.sort();
    assert_eq!(ignored, ["dns_name_templates", "metrics_bind_addr"]);

    let config = RegistrarConfig::parse(
        "trust_domain = \"example.org\"\nserver_socket_path = \"/s\"\ncluster = \"c\"\nmode = \"reconcile\"\n\
         controller_name = \"reg\"\nadd_pod_dns_names = true\ncluster_dns_zone = \"k8s.local\"\nmetrics_addr = \"0\"\nleader_election = true\n",
    )
    .unwrap();
    let RegistrarMode::Reconcile(mode) = &config.mode else {
        panic!("not reconcile mode");
    };
    assert_eq!(mode.controller_name, "reg");
    assert!(mode.add_pod_dns_names);
    assert_eq!(mode.cluster_dns_zone, "k8s.local");
    assert_eq!(mode.metrics_bind_address, None);
    assert_eq!(
        mode.leader_election,
        LeaderElection::with_defaults(true, "reg-leader-election")
    );
}

#[test]
fn reconcile_only_keys_are_ignored_in_crd_mode() {
    let config =
        RegistrarConfig::parse(&crd("metrics_addr = \":9000\"\ncontroller_name = \"x\"\n"))
            .unwrap();
    let mut ignored = config.ignored_keys.clone();
    ignored.sort();
    assert_eq!(ignored, ["controller_name", "metrics_addr"]);
}

#[test]
fn the_json_form_is_accepted() {
    let config = RegistrarConfig::parse(
        r#"{"trust_domain": "example.org", "server_socket_path": "/s", "cluster": "c", "mode": "crd", "context": {"a": "b"}}"#,
    )
    .unwrap();
    assert_eq!(crd_mode(&config).context.as_ref().unwrap()["a"], "b");
}
