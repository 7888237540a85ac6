//! Keys SPIRE has and spire-rs does not implement: refused by name through the path `run` and
//! `validate` share ([`ServerConfig::from_text`]), or accepted with a warning naming them.

use std::path::PathBuf;

use super::*;

const SERVER: &str = r#"
server {
    trust_domain = "example.org"
    bind_port = "8081"
}
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./.data/datastore.sqlite3"
        }
    }
    KeyManager "memory" {
        plugin_data {}
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
"#;

/// `SERVER` with `keys` added inside `server { }`.
fn with_server_keys(keys: &str) -> String {
    SERVER.replacen(
        "    bind_port = \"8081\"\n",
        &format!("    bind_port = \"8081\"\n{keys}\n"),
        1,
    )
}

/// `SERVER` with `keys` added to the sql datastore's `plugin_data`.
fn with_sql_keys(keys: &str) -> String {
    SERVER.replacen(
        "            connection_string = \"./.data/datastore.sqlite3\"\n",
        &format!("            connection_string = \"./.data/datastore.sqlite3\"\n{keys}\n"),
        1,
    )
}

fn load(text: &str) -> Result<ServerConfig, String> {
    ServerConfig::from_text(text, &Overrides::default()).map_err(|e| e.to_string())
}

#[test]
fn the_base_configuration_loads_without_warnings() {
    let config = load(SERVER).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn every_unimplemented_server_key_is_refused_by_name() {
    let cases: &[(&str, &str)] = &[
        (
            "max_attested_node_info_staleness = \"30s\"",
            "server.max_attested_node_info_staleness",
        ),
        (
            "proxy_protocol_trusted_cidrs = [\"10.0.0.0/8\"]",
            "server.proxy_protocol_trusted_cidrs",
        ),
        (
            "proxy_protocol_trusted_cidrs = []",
            "server.proxy_protocol_trusted_cidrs",
        ),
        ("profiling_enabled = true", "server.profiling_enabled"),
        ("profiling_port = 6060", "server.profiling_port"),
        ("profiling_freq = 10", "server.profiling_freq"),
        ("profiling_names = [\"heap\"]", "server.profiling_names"),
        (
            "experimental {\n auth_opa_policy_engine {\n local {\n rego_path = \"policy.rego\"\n \
             policy_data_path = \"data.json\"\n }\n }\n}",
            "server.experimental.auth_opa_policy_engine",
        ),
        (
            "experimental {\n agent_spiffe_id_as_selector = true\n}",
            "server.experimental.agent_spiffe_id_as_selector",
        ),
        (
            "experimental {\n named_pipe_name = \"spire-server-api\"\n}",
            "server.experimental.named_pipe_name",
        ),
        (
            "experimental {\n require_pq_kem = true\n}",
            "server.experimental.require_pq_kem",
        ),
        (
            "experimental {\n wit_issuer = \"https://wit.example.org\"\n}",
            "server.experimental.wit_issuer",
        ),
        (
            "experimental {\n wit_key_type = \"ec-p256\"\n}",
            "server.experimental.wit_key_type",
        ),
        (
            "experimental {\n sql_transaction_timeout = \"1m\"\n}",
            "server.experimental.sql_transaction_timeout",
        ),
        (
            "experimental {\n full_cache_reload_interval = \"1h\"\n}",
            "server.experimental.full_cache_reload_interval",
        ),
        (
            "experimental {\n event_timeout = \"15m\"\n}",
            "server.experimental.event_timeout",
        ),
        (
            "experimental {\n feature_flags = [\"some_flag\"]\n}",
            "server.experimental.feature_flags",
        ),
    ];
    for (keys, key) in cases {
        let err = load(&with_server_keys(keys)).unwrap_err();
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
}

#[test]
fn unimplemented_plugin_keys_are_refused_by_name() {
    let data_file = SERVER.replacen(
        "    KeyManager \"memory\" {\n        plugin_data {}\n",
        "    KeyManager \"memory\" {\n        plugin_data_file = \"/etc/spire/km.conf\"\n",
        1,
    );
    let cases: Vec<(String, &str)> = vec![
        (data_file, "plugins.KeyManager.memory.plugin_data_file"),
        (
            with_sql_keys("ro_connection_string = \"./.data/replica.sqlite3\""),
            "plugins.DataStore.sql.plugin_data.ro_connection_string",
        ),
        (
            with_sql_keys("max_open_conns = 10"),
            "plugins.DataStore.sql.plugin_data.max_open_conns",
        ),
        (
            with_sql_keys("max_idle_conns = 2"),
            "plugins.DataStore.sql.plugin_data.max_idle_conns",
        ),
        (
            with_sql_keys("conn_max_lifetime = \"1h\""),
            "plugins.DataStore.sql.plugin_data.conn_max_lifetime",
        ),
        (
            with_sql_keys("disable_migration = true"),
            "plugins.DataStore.sql.plugin_data.disable_migration",
        ),
        (
            with_sql_keys("root_ca_path = \"/ca.pem\""),
            "plugins.DataStore.sql.plugin_data.root_ca_path",
        ),
        (
            with_sql_keys("client_cert_path = \"/cert.pem\""),
            "plugins.DataStore.sql.plugin_data.client_cert_path",
        ),
        (
            with_sql_keys("client_key_path = \"/key.pem\""),
            "plugins.DataStore.sql.plugin_data.client_key_path",
        ),
        (
            SERVER.replacen("\"sqlite3\"", "\"oracle\"", 1),
            "plugins.DataStore.sql.plugin_data.database_type",
        ),
        (
            with_sql_keys("log_sql = true"),
            "plugins.DataStore.sql.plugin_data.log_sql",
        ),
    ];
    for (text, key) in &cases {
        let err = load(text).unwrap_err();
        assert!(
            err.starts_with(&format!("{key} is not supported by spire-rs: ")),
            "{key}: {err}"
        );
    }
}

#[test]
fn several_refused_keys_are_all_named() {
    let err = load(&with_server_keys(
        "profiling_enabled = true\nmax_attested_node_info_staleness = \"1m\"",
    ))
    .unwrap_err();
    assert!(
        err.contains("server.max_attested_node_info_staleness is not supported")
            && err.contains("; server.profiling_enabled is not supported"),
        "{err}"
    );
}

#[test]
fn values_asking_for_what_spire_rs_does_are_accepted() {
    let text = with_server_keys(
        "profiling_enabled = false\nprune_tofu_nodes = false\naudit_log_enabled = false\n\
         log_source_location = false\nratelimit {\n attestation = false\n signing = false\n}\n\
         experimental {\n cache_reload_interval = \"5s\"\n events_based_cache = true\n \
         agent_spiffe_id_as_selector = false\n require_pq_kem = false\n feature_flags = []\n}",
    );
    let text = text.replacen(
        "connection_string = \"./.data/datastore.sqlite3\"\n",
        "connection_string = \"./.data/datastore.sqlite3\"\n disable_migration = false\n log_sql = false\n",
        1,
    );
    let config = load(&text).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn accepted_but_unenforced_keys_are_warned_about_by_name() {
    let text = with_server_keys(
        "audit_log_enabled = true\nlog_source_location = true\n\
         ratelimit {\n attestation = true\n signing = false\n}",
    );
    let config = load(&text).unwrap();
    assert!(config.log_source_location);
    assert!(config.audit_log_enabled);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

/// `telemetry { Prometheus { host port } }` and the label options are honoured; the other
/// sinks and the filters stop the server by name.
#[test]
fn telemetry_prometheus_is_served_and_other_sinks_are_refused() {
    let text = format!(
        "{}\ntelemetry {{\n Prometheus {{\n host = \"0.0.0.0\"\n port = 9988\n }}\n \
         MetricPrefix = \"spire\"\n EnableHostnameLabel = false\n EnableTrustDomainLabel = true\n}}\n",
        with_server_keys("")
    );
    let config = load(&text).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let t = &config.telemetry;
    assert_eq!(t.prometheus, Some(("0.0.0.0".to_owned(), 9988)));
    assert_eq!(t.prefix, "spire");
    assert!(!t.hostname_label);
    assert!(t.trust_domain_label);
    let defaults = load(&with_server_keys("")).unwrap().telemetry;
    assert_eq!(defaults.prometheus, None);
    assert_eq!(defaults.prefix, "spire_server");
    assert!(defaults.hostname_label);
    for (block, key) in [
        (
            "DogStatsd = [{ address = \"localhost:8125\" }]",
            "telemetry.DogStatsd",
        ),
        (
            "Statsd = [{ address = \"localhost:8125\" }]",
            "telemetry.Statsd",
        ),
        (
            "M3 = [{ address = \"localhost:9000\", env = \"prod\" }]",
            "telemetry.M3",
        ),
        ("InMem {}", "telemetry.InMem"),
        ("AllowedPrefixes = [\"spire\"]", "telemetry.AllowedPrefixes"),
        ("BlockedPrefixes = [\"spire\"]", "telemetry.BlockedPrefixes"),
        ("AllowedLabels = [\"host\"]", "telemetry.AllowedLabels"),
        ("BlockedLabels = [\"host\"]", "telemetry.BlockedLabels"),
    ] {
        let text = format!("{}\ntelemetry {{\n {block}\n}}\n", with_server_keys(""));
        let err = load(&text).unwrap_err();
        assert!(
            err.starts_with(&format!("{key} is not supported by spire-rs: ")),
            "{block}: {err}"
        );
    }
    let no_port = format!(
        "{}\ntelemetry {{\n Prometheus {{}}\n}}\n",
        with_server_keys("")
    );
    let err = load(&no_port).unwrap_err();
    assert!(
        err.contains("telemetry.Prometheus.port is required"),
        "{err}"
    );
}

#[test]
fn ratelimit_is_enforced_and_both_limits_default_on() {
    for (keys, attestation, signing) in [
        ("", true, true),
        ("ratelimit {}", true, true),
        ("ratelimit {\n signing = false\n}", true, false),
        ("ratelimit {\n attestation = false\n}", false, true),
        (
            "ratelimit {\n attestation = \"false\"\n signing = true\n}",
            false,
            true,
        ),
    ] {
        let config = load(&with_server_keys(keys)).unwrap();
        assert_eq!(
            (config.rate_limit_attestation, config.rate_limit_signing),
            (attestation, signing),
            "{keys}"
        );
        assert!(config.warnings.is_empty(), "{keys}: {:?}", config.warnings);
    }
}

/// The JSON the helm charts render (list-wrapped blocks, `telemetry.Prometheus`) loads
/// without warnings, with the Prometheus listener.
#[test]
fn a_helm_rendered_server_conf_loads_with_its_prometheus_listener() {
    let text = r#"{
  "server": [{
    "bind_address": "0.0.0.0", "bind_port": "8081", "trust_domain": "example.org",
    "data_dir": "/run/spire/data", "log_level": "info",
    "jwt_issuer": "https://oidc-discovery.example.org", "ca_key_type": "rsa-2048",
    "ca_ttl": "24h", "default_x509_svid_ttl": "4h", "default_jwt_svid_ttl": "5m",
    "ca_subject": [{"country": ["ARPA"], "organization": ["Example"], "common_name": "example.org"}],
    "experimental": [{"cache_reload_interval": "5s"}]
  }],
  "plugins": {
    "DataStore": [{"sql": [{"plugin_data": [{"database_type": "sqlite3",
      "connection_string": "/run/spire/data/datastore.sqlite3"}]}]}],
    "NodeAttestor": [{"k8s_psat": [{"plugin_data": [{"clusters": [{"example-cluster": [
      {"service_account_allow_list": ["spire-system:spire-agent"]}]}]}]}]}],
    "KeyManager": [{"disk": [{"plugin_data": [{"keys_path": "/run/spire/data/keys.json"}]}]}],
    "Notifier": [{"k8sbundle": [{"plugin_data": [{"namespace": "spire-system",
      "config_map": "spire-bundle"}]}]}]
  },
  "health_checks": [{"listener_enabled": true, "bind_address": "0.0.0.0", "bind_port": "8080",
    "live_path": "/live", "ready_path": "/ready"}],
  "telemetry": [{"Prometheus": [{"host": "0.0.0.0", "port": 9988}]}]
}"#;
    let config = load(text).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.telemetry.prometheus,
        Some(("0.0.0.0".to_owned(), 9988))
    );
}

/// The sample configurations shipped in `conf/server/` load unchanged.
#[test]
fn the_repository_server_confs_load() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../conf/server");
    for name in ["server.conf", "server_postgres.conf"] {
        let config = ServerConfig::load(&dir.join(name), false, &Overrides::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(config.warnings.is_empty(), "{name}: {:?}", config.warnings);
    }
}

#[test]
fn prune_settings_take_spire_defaults_and_values() {
    let config = load(SERVER).unwrap();
    assert_eq!(
        config.prune_events_older_than,
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(
        config.prune_attested_nodes, None,
        "agents are kept by default"
    );

    let config = load(&with_server_keys(
        "prune_attested_nodes_expired_for = \"72h\"\n\
         experimental {\n prune_events_older_than = \"1h\"\n}",
    ))
    .unwrap();
    assert_eq!(config.prune_events_older_than, Duration::from_secs(3600));
    assert_eq!(
        config.prune_attested_nodes,
        Some(NodePruning {
            expired_for: Duration::from_secs(72 * 3600),
            batch_size: 1_000,
            tofu_nodes: false,
        })
    );
    let config = load(&with_server_keys(
        "prune_attested_nodes_expired_for = \"1h\"\nprune_attested_nodes_batch_size = 50\n\
         prune_tofu_nodes = true",
    ))
    .unwrap();
    assert_eq!(
        config.prune_attested_nodes,
        Some(NodePruning {
            expired_for: Duration::from_secs(3600),
            batch_size: 50,
            tofu_nodes: true,
        })
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    for (keys, message) in [
        (
            "prune_attested_nodes_expired_for = \"0s\"",
            "prune_attested_nodes_expired_for must be greater than zero",
        ),
        (
            "experimental {\n prune_events_older_than = \"0s\"\n}",
            "experimental.prune_events_older_than must be greater than zero",
        ),
    ] {
        assert_eq!(load(&with_server_keys(keys)).unwrap_err(), message);
    }
}
