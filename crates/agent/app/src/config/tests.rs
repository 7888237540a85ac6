//! The agent's configuration: SPIRE's defaults, flags over the file, and the keys refused
//! by name or accepted with a warning, through the path `run` and `validate` share.

use super::*;

const AGENT: &str = r#"
agent {
    data_dir = "./.data"
    server_address = "127.0.0.1"
    server_port = "8081"
    trust_bundle_path = "./conf/agent/dummy_root_ca.crt"
    trust_domain = "example.org"
}
plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            directory = "./.data"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
"#;

fn resolve_text(text: &str, overrides: &Overrides) -> Result<AgentConfig, String> {
    AgentConfig::from_text(text, overrides).map_err(|e| e.to_string())
}

#[test]
fn stock_shape_resolves_with_spire_defaults() {
    let config = resolve_text(AGENT, &Overrides::default()).unwrap();
    assert_eq!(config.trust_domain.name(), "example.org");
    assert_eq!(config.server_port, 8081);
    assert_eq!(
        config.socket_path,
        PathBuf::from("/tmp/spire-agent/public/api.sock")
    );
    assert_eq!(config.key_manager, KeyManagerChoice::Disk("./.data".into()));
    // No token configured: enough to resume a stored SVID.
    assert_eq!(config.node_attestor, NodeAttestorChoice::JoinToken(None));
    assert_eq!(config.sync_interval, Duration::from_secs(5));
    assert_eq!(config.x509_svid_cache_max_size, 1000);
    assert_eq!(config.jwt_svid_cache_max_size, 1000);
    assert_eq!(config.jwt_svid_cache_hit_timeout, Duration::from_secs(30));
    assert!(config.allowed_foreign_jwt_claims.is_empty());
    assert_eq!(config.sds, SdsConfig::default());
    assert!(matches!(
        config.trust_bundle,
        TrustBundleSource::Path {
            format: TrustBundleFormat::Pem,
            ..
        }
    ));
}

#[test]
fn sds_block_overrides_spire_defaults() {
    // The Istio federation setup: ROOTCA carries every bundle.
    let text = AGENT.replacen(
        "agent {",
        "agent {\n    sds {\n        default_bundle_name = \"null\"\n        default_all_bundles_name = \"ROOTCA\"\n        disable_spiffe_cert_validation = true\n    }",
        1,
    );
    let config = resolve_text(&text, &Overrides::default()).unwrap();
    assert_eq!(
        config.sds,
        SdsConfig {
            default_svid_name: "default".into(),
            default_bundle_name: "null".into(),
            default_all_bundles_name: "ROOTCA".into(),
            disable_spiffe_cert_validation: true,
        }
    );
}

#[test]
fn jwt_settings_are_read_and_the_hit_timeout_bounded() {
    let with = |keys: &str| {
        AGENT.replacen(
            "trust_domain = \"example.org\"",
            &format!("trust_domain = \"example.org\"\n{keys}"),
            1,
        )
    };
    let text = with(
        "jwt_svid_cache_max_size = 5\nallowed_foreign_jwt_claims = [\"iss\", \"email\"]\n\
         experimental {\n jwt_svid_cache_hit_timeout = \"10s\"\n}",
    );
    let config = resolve_text(&text, &Overrides::default()).unwrap();
    assert_eq!(config.jwt_svid_cache_max_size, 5);
    assert_eq!(config.allowed_foreign_jwt_claims, ["iss", "email"]);
    assert_eq!(config.jwt_svid_cache_hit_timeout, Duration::from_secs(10));
    assert_eq!(
        config.warnings,
        ["The use of 'jwt_svid_cache_hit_timeout' is experimental"]
    );

    let low = with("experimental {\n jwt_svid_cache_hit_timeout = \"4s\"\n}");
    assert_eq!(
        resolve_text(&low, &Overrides::default()).unwrap_err(),
        "jwt_svid_cache_hit_timeout (4s) must be greater than 5s"
    );
    let high = with("experimental {\n jwt_svid_cache_hit_timeout = \"30s\"\n}");
    assert_eq!(
        resolve_text(&high, &Overrides::default()).unwrap_err(),
        "jwt_svid_cache_hit_timeout (30s) must be less than 30s"
    );
}

#[test]
fn flags_override_the_file() {
    let overrides = Overrides {
        join_token: Some("tok".into()),
        server_port: Some(9999),
        socket_path: Some("/run/x.sock".into()),
        insecure_bootstrap: Some(true),
        ..Overrides::default()
    };
    let config = resolve_text(AGENT, &overrides).unwrap();
    assert_eq!(
        config.node_attestor,
        NodeAttestorChoice::JoinToken(Some("tok".into()))
    );
    assert_eq!(config.server_port, 9999);
    assert_eq!(config.socket_path, PathBuf::from("/run/x.sock"));
    assert_eq!(config.trust_bundle, TrustBundleSource::Insecure);
    assert!(!config.disable_sds_api && !config.disable_workload_api);
    let disabled = AGENT.replace(
        "trust_domain = \"example.org\"",
        "trust_domain = \"example.org\"\n    disable_sds_api = true",
    );
    let overrides = Overrides {
        disable_workload_api: Some(true),
        ..Overrides::default()
    };
    let config = resolve_text(&disabled, &overrides).unwrap();
    assert!(config.disable_sds_api && config.disable_workload_api);
}

#[test]
fn missing_required_settings_and_unknown_plugins_are_named() {
    let no_td = AGENT.replace("trust_domain = \"example.org\"", "");
    assert_eq!(
        resolve_text(&no_td, &Overrides::default()).unwrap_err(),
        "trust_domain must be configured"
    );
    let no_bundle = AGENT.replace("trust_bundle_path = \"./conf/agent/dummy_root_ca.crt\"", "");
    assert!(
        resolve_text(&no_bundle, &Overrides::default())
            .unwrap_err()
            .contains("insecure_bootstrap")
    );
    let docker = AGENT.replace("WorkloadAttestor \"unix\"", "WorkloadAttestor \"docker\"");
    assert_eq!(
        resolve_text(&docker, &Overrides::default()).unwrap_err(),
        "no built-in plugin \"docker\" for type \"WorkloadAttestor\""
    );
    let two = AGENT.replace(
        "KeyManager \"disk\"",
        "KeyManager \"memory\" {\n    }\n    KeyManager \"disk\"",
    );
    assert_eq!(
        resolve_text(&two, &Overrides::default()).unwrap_err(),
        "plugin type \"KeyManager\" constraint not satisfied: expected exactly 1 but got 2"
    );
    let bogus = AGENT.replace("KeyManager \"disk\"", "Bogus \"disk\"");
    assert_eq!(
        resolve_text(&bogus, &Overrides::default()).unwrap_err(),
        "unsupported plugin type \"Bogus\""
    );
}

/// `AGENT` with `keys` added inside `agent { }`.
fn with_agent_keys(keys: &str) -> String {
    AGENT.replacen(
        "trust_domain = \"example.org\"",
        &format!("trust_domain = \"example.org\"\n{keys}"),
        1,
    )
}

#[test]
fn the_base_configuration_loads_without_warnings() {
    let config = resolve_text(AGENT, &Overrides::default()).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn every_unimplemented_agent_key_is_refused_by_name() {
    let cases: &[(&str, &str)] = &[
        ("rebootstrap_mode = \"auto\"", "agent.rebootstrap_mode"),
        ("rebootstrap_mode = \"always\"", "agent.rebootstrap_mode"),
        (
            "authorized_delegates = [\"spiffe://example.org/delegate\"]",
            "agent.authorized_delegates",
        ),
        ("availability_target = \"24h\"", "agent.availability_target"),
        ("log_selectors = [\"k8s\"]", "agent.log_selectors"),
        ("profiling_enabled = true", "agent.profiling_enabled"),
        ("profiling_port = 6060", "agent.profiling_port"),
        ("profiling_freq = 10", "agent.profiling_freq"),
        ("profiling_names = [\"heap\"]", "agent.profiling_names"),
        (
            "experimental {\n use_sync_authorized_entries = false\n}",
            "agent.experimental.use_sync_authorized_entries",
        ),
        (
            "experimental {\n require_pq_kem = true\n}",
            "agent.experimental.require_pq_kem",
        ),
        (
            "experimental {\n ratelimit {\n fetch_x509_svid = 10\n }\n}",
            "agent.experimental.ratelimit",
        ),
        (
            "experimental {\n broker {\n socket_path = \"/tmp/broker.sock\"\n }\n}",
            "agent.experimental.broker",
        ),
        (
            "experimental {\n named_pipe_name = \"spire-agent-api\"\n}",
            "agent.experimental.named_pipe_name",
        ),
        (
            "experimental {\n admin_named_pipe_name = \"spire-agent-admin\"\n}",
            "agent.experimental.admin_named_pipe_name",
        ),
        (
            "experimental {\n feature_flags = [\"some_flag\"]\n}",
            "agent.experimental.feature_flags",
        ),
    ];
    for (keys, key) in cases {
        let err = resolve_text(&with_agent_keys(keys), &Overrides::default()).unwrap_err();
        assert!(
            err.starts_with(&format!("{key} is not supported by spire-rs: ")),
            "{keys}: {err}"
        );
        assert_eq!(
            err.matches(" is not supported by spire-rs").count(),
            1,
            "only {key} is refused: {err}"
        );
    }
    let data_file = AGENT.replacen(
        "WorkloadAttestor \"unix\" {\n        plugin_data {}",
        "WorkloadAttestor \"unix\" {\n        plugin_data_file = \"/etc/spire/unix.conf\"",
        1,
    );
    let err = resolve_text(&data_file, &Overrides::default()).unwrap_err();
    assert!(
        err.starts_with(
            "plugins.WorkloadAttestor.unix.plugin_data_file is not supported by spire-rs: "
        ),
        "{err}"
    );
}

/// What the helm charts render for the agent by default (`rebootstrap_mode = "never"`,
/// its delay, `require_pq_kem = false`) asks for what spire-rs does: accepted silently.
#[test]
fn values_asking_for_what_spire_rs_does_are_accepted() {
    for keys in [
        "rebootstrap_mode = \"never\"\nrebootstrap_delay = \"10m\"",
        "rebootstrap_mode = \"\"\nrebootstrap_delay = \"\"",
        "profiling_enabled = false\nlog_source_location = false\nauthorized_delegates = []",
        "experimental {\n sync_interval = \"5s\"\n require_pq_kem = false\n \
         use_sync_authorized_entries = true\n feature_flags = []\n}",
    ] {
        let config = resolve_text(&with_agent_keys(keys), &Overrides::default())
            .unwrap_or_else(|e| panic!("{keys}: {e}"));
        assert!(config.warnings.is_empty(), "{keys}: {:?}", config.warnings);
    }
    let bad_delay = with_agent_keys("rebootstrap_delay = \"soon\"");
    let err = resolve_text(&bad_delay, &Overrides::default()).unwrap_err();
    assert!(err.starts_with("invalid rebootstrap_delay: "), "{err}");
}

#[test]
fn telemetry_prometheus_is_served_and_other_sinks_are_refused() {
    let text = format!(
        "{}\ntelemetry {{\n Prometheus {{\n host = \"0.0.0.0\"\n port = 9988\n }}\n}}\n",
        with_agent_keys("log_source_location = true")
    );
    let config = resolve_text(&text, &Overrides::default()).unwrap();
    assert!(config.log_source_location);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.telemetry.prometheus,
        Some(("0.0.0.0".to_owned(), 9988))
    );
    assert_eq!(config.telemetry.prefix, "spire_agent");
    let statsd =
        format!("{AGENT}\ntelemetry {{\n DogStatsd = [{{ address = \"localhost:8125\" }}]\n}}\n");
    let err = resolve_text(&statsd, &Overrides::default()).unwrap_err();
    assert!(
        err.starts_with("telemetry.DogStatsd is not supported by spire-rs: "),
        "{err}"
    );
    // The telemetry section is checked as the server's is: an unknown key is named.
    let typo = format!("{AGENT}\ntelemetry {{\n Promethus {{}}\n}}\n");
    let err = resolve_text(&typo, &Overrides::default()).unwrap_err();
    assert!(err.contains("telemetry.Promethus"), "{err}");
}

#[test]
fn spire_stock_agent_conf_resolves() {
    let Some(dir) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("agent.conf")).unwrap();
    let config = resolve_text(&text, &Overrides::default()).unwrap();
    assert_eq!(config.trust_domain.name(), "example.org");
}

/// The sample configurations shipped in `conf/agent/` load unchanged, without warnings.
#[test]
fn the_repository_agent_confs_load() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../conf/agent");
    for name in ["agent.conf", "agent_x509pop.conf"] {
        let config = AgentConfig::load(&dir.join(name), false, &Overrides::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(config.warnings.is_empty(), "{name}: {:?}", config.warnings);
    }
}

/// Both Istio quickstarts' `agent.conf` resolve unchanged: k8s_psat, the k8s workload
/// attestor beside unix, memory keys, and the health listener.
#[test]
fn istio_quickstart_agent_confs_resolve_unchanged() {
    for dir in ["istio-samples", "istio-1.14-samples"] {
        let Some(dir) = spire_test::shared_testdata(dir) else {
            return;
        };
        let manifest = spire_test::manifest_objects(&dir.join("spire-quickstart.yaml"));
        let text = spire_test::config_map_data(&manifest, "spire", "spire-agent", "agent.conf");
        let config = resolve_text(&text, &Overrides::default())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(
            config.node_attestor,
            NodeAttestorChoice::K8sPsat(K8sPsatConfig {
                cluster: "demo-cluster".into(),
                token_path: spire_agent_plugin::nodeattestor::DEFAULT_TOKEN_PATH.into(),
            })
        );
        assert!(config.k8s_workload_attestor.is_some());
        assert_eq!(config.key_manager, KeyManagerChoice::Memory);
        assert_eq!(
            config.socket_path,
            Path::new("/run/secrets/workload-spiffe-uds/socket")
        );
    }
}

#[test]
fn the_admin_socket_must_not_sit_with_the_workload_api_socket() {
    const REFUSED: &str = "admin socket cannot be in the same directory or a subdirectory as \
                           that containing the Workload API socket";
    let admin = |socket: &str, admin: &str| {
        resolve_text(
            &with_agent_keys(&format!(
                "socket_path = \"{socket}\"\nadmin_socket_path = \"{admin}\""
            )),
            &Overrides::default(),
        )
    };
    // SPIRE's default layout: public/ and private/ side by side.
    let config = admin(
        "/tmp/spire-agent/public/api.sock",
        "/tmp/spire-agent/private/admin.sock",
    )
    .unwrap();
    assert_eq!(
        config.admin_socket_path.as_deref(),
        Some(std::path::Path::new("/tmp/spire-agent/private/admin.sock"))
    );
    for (socket, admin_path) in [
        (
            "/tmp/spire-agent/public/api.sock",
            "/tmp/spire-agent/public/admin.sock",
        ),
        (
            "/tmp/spire-agent/public/api.sock",
            "/tmp/spire-agent/public/x/admin.sock",
        ),
        // Compared made absolute: relative paths under the working directory too.
        ("sockets/api.sock", "sockets/admin.sock"),
    ] {
        assert_eq!(
            admin(socket, admin_path).unwrap_err(),
            REFUSED,
            "{admin_path}"
        );
    }
    // A directory that only starts with the same name is another directory.
    assert!(
        admin(
            "/tmp/spire-agent/public/api.sock",
            "/tmp/spire-agent/public2/a.sock"
        )
        .is_ok()
    );
    // Unset (or empty, as charts render it): no admin socket.
    assert_eq!(
        admin("/tmp/a/api.sock", "").unwrap().admin_socket_path,
        None
    );
}
