use std::time::Duration;

use super::server::ServerSection;
use super::*;

const SERVER_TYPES: &[&str] = &[
    "DataStore",
    "KeyManager",
    "NodeAttestor",
    "UpstreamAuthority",
    "Notifier",
    "BundlePublisher",
    "CredentialComposer",
];

fn server_doc(text: &str) -> Result<(ServerSection, Plugins), ConfigError> {
    let doc = Document::parse(text)?;
    doc.check_sections(&["server", "plugins", "telemetry", "health_checks"])?;
    let server: ServerSection = doc.section("server")?;
    let plugins = Plugins::parse(doc.raw("plugins"), SERVER_TYPES)?;
    Ok((server, plugins))
}

#[test]
fn quoted_numbers_and_defaults() {
    let (server, plugins) = server_doc(
        r#"
server {
    bind_address = "127.0.0.1"
    bind_port = "8081"
    trust_domain = "example.org"
    ca_ttl = "168h"
}
plugins {
    KeyManager "memory" {
        plugin_data = {}
    }
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./.data/datastore.sqlite3"
        }
    }
}
"#,
    )
    .unwrap();
    assert_eq!(server.bind_port(), 8081);
    assert_eq!(server.ca_ttl(), std::time::Duration::from_secs(168 * 3600));
    assert_eq!(
        server.default_x509_svid_ttl(),
        std::time::Duration::from_secs(3600)
    );
    assert_eq!(server.socket_path(), "/tmp/spire-server/private/api.sock");
    let ds: Vec<_> = plugins.of_type("DataStore").collect();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].name, "sql");
    assert_eq!(ds[0].plugin_data["database_type"], "sqlite3");
    assert_eq!(
        plugins.of_type("KeyManager").next().unwrap().plugin_data,
        serde_json::json!({})
    );
}

#[test]
fn default_svid_ttl_is_a_deprecated_alias() {
    let (server, _) =
        server_doc("server {\n trust_domain = \"td\"\n default_svid_ttl = \"2h\"\n}\n").unwrap();
    assert_eq!(server.default_x509_svid_ttl(), Duration::from_secs(7200));
    let warnings = server.deprecation_warnings().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("default_svid_ttl"), "{warnings:?}");

    let (server, _) = server_doc(
        "server {\n trust_domain = \"td\"\n default_svid_ttl = \"2h\"\n default_x509_svid_ttl = \"1h\"\n}\n",
    )
    .unwrap();
    let err = server.deprecation_warnings().unwrap_err();
    assert!(err.contains("cannot be set together"), "{err}");

    let (server, _) = server_doc("server {\n trust_domain = \"td\"\n}\n").unwrap();
    assert!(server.deprecation_warnings().unwrap().is_empty());
}

const CATALOG: CatalogSpec = CatalogSpec {
    types: &[
        ("DataStore", Constraint::ExactlyOne),
        ("NodeAttestor", Constraint::AtLeastOne),
        ("UpstreamAuthority", Constraint::AtMostOne),
        ("Notifier", Constraint::Any),
    ],
    built_ins: &[
        ("DataStore", "sql"),
        ("NodeAttestor", "join_token"),
        ("NodeAttestor", "k8s_psat"),
        ("UpstreamAuthority", "disk"),
        ("Notifier", "k8sbundle"),
    ],
};

fn catalog_error(plugins: &str) -> String {
    let doc = Document::parse(plugins).unwrap();
    CATALOG.load(doc.raw("plugins")).unwrap_err().to_string()
}

#[test]
fn catalog_errors_are_spires() {
    assert_eq!(
        catalog_error("plugins {\n Foo \"x\" {}\n}\n"),
        "unsupported plugin type \"Foo\""
    );
    assert_eq!(
        catalog_error("plugins {\n DataStore \"sql\" {}\n NodeAttestor \"aws_iid\" {}\n}\n"),
        "no built-in plugin \"aws_iid\" for type \"NodeAttestor\""
    );
    assert_eq!(
        catalog_error("plugins {\n NodeAttestor \"join_token\" {}\n}\n"),
        "plugin type \"DataStore\" constraint not satisfied: expected exactly 1 but got 0"
    );
    assert_eq!(
        catalog_error("plugins {\n DataStore \"sql\" {}\n}\n"),
        "plugin type \"NodeAttestor\" constraint not satisfied: expected at least 1 but got 0"
    );
    let external = catalog_error(
        "plugins {\n DataStore \"sql\" {}\n NodeAttestor \"join_token\" { plugin_cmd = \"/bin/x\" }\n}\n",
    );
    assert!(
        external.contains("external plugins are not supported"),
        "{external}"
    );
    // A disabled block counts for nothing, so it may name anything.
    let doc = Document::parse(
        "plugins {\n DataStore \"sql\" {}\n NodeAttestor \"join_token\" {}\n NodeAttestor \"tpm\" { enabled = false }\n}\n",
    )
    .unwrap();
    let plugins = CATALOG.load(doc.raw("plugins")).unwrap();
    assert_eq!(plugins.of_type("NodeAttestor").count(), 1);
}

#[test]
fn unknown_keys_are_fatal_and_named() {
    let err =
        server_doc("server {\n trust_domain = \"td\"\n default_svid_tll = \"1h\"\n bogus = 1\n}\n")
            .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("unknown configuration detected"),
        "{message}"
    );
    assert!(message.contains("server.default_svid_tll"), "{message}");
    assert!(message.contains("server.bogus"), "{message}");

    let err = server_doc("serverr {}\n").unwrap_err().to_string();
    assert!(err.contains("serverr"), "{err}");
}

#[test]
fn json_form_with_list_wrapped_blocks() {
    let (server, plugins) = server_doc(
        r#"{
  "server": [{"trust_domain": "example.org", "bind_port": 8081,
              "ca_subject": [{"country": ["ARPA"], "organization": ["Example"], "common_name": "example.org"}]}],
  "plugins": {
    "NodeAttestor": [{"k8s_psat": [{"plugin_data": [{"clusters": [{"demo": [{"service_account_allow_list": ["spire:spire-agent"]}]}]}]}]}],
    "KeyManager": [{"disk": [{"plugin_data": [{"keys_path": "/run/spire/data/keys.json"}]}]}]
  },
  "telemetry": [{"DogStatsd": [{"address": "localhost:8125"}, {"address": "localhost:8126"}]}]
}"#,
    )
    .unwrap();
    assert_eq!(server.trust_domain.as_deref(), Some("example.org"));
    assert_eq!(server.ca_subject.unwrap().country, ["ARPA"]);
    let psat = plugins.of_type("NodeAttestor").next().unwrap();
    assert_eq!(psat.name, "k8s_psat");
    assert_eq!(
        psat.plugin_data["clusters"]["demo"]["service_account_allow_list"],
        serde_json::json!(["spire:spire-agent"])
    );
}

#[test]
fn a_plugin_configured_twice_is_refused() {
    let err = server_doc("plugins {\n KeyManager \"disk\" {}\n KeyManager \"disk\" {}\n}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than once"), "{err}");
}

#[test]
fn spire_stock_configs_parse() {
    let Some(dir) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    for name in ["server.conf", "server_container.conf", "server_full.conf"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let (server, plugins) = server_doc(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            server.trust_domain.as_deref(),
            Some("example.org"),
            "{name}"
        );
        assert!(plugins.of_type("DataStore").next().is_some(), "{name}");
        assert_eq!(server.refusals(), [], "{name}");
        assert!(server.ignored().is_empty(), "{name}");
    }
}

const AGENT_TYPES: &[&str] = &[
    "KeyManager",
    "NodeAttestor",
    "WorkloadAttestor",
    "SVIDStore",
];

fn agent_doc(text: &str) -> Result<(agent::AgentSection, Plugins), ConfigError> {
    let doc = Document::parse(text)?;
    doc.check_sections(&["agent", "plugins", "telemetry", "health_checks"])?;
    let agent: agent::AgentSection = doc.section("agent")?;
    let plugins = Plugins::parse(doc.raw("plugins"), AGENT_TYPES)?;
    Ok((agent, plugins))
}

#[test]
fn agent_section_defaults_and_quoted_port() {
    let (agent, _) = agent_doc(
        "agent {\n trust_domain = \"example.org\"\n server_address = \"127.0.0.1\"\n \
         server_port = \"8081\"\n insecure_bootstrap = true\n experimental { sync_interval = \"1s\" }\n}\n",
    )
    .unwrap();
    assert_eq!(agent.server_port.map(|p| p.0), Some(8081));
    assert_eq!(agent.socket_path(), "/tmp/spire-agent/public/api.sock");
    assert_eq!(agent.data_dir(), ".");
    assert_eq!(agent.trust_bundle_format(), "pem");
    assert_eq!(agent.x509_svid_cache_max_size(), 1000);
    assert_eq!(agent.sync_interval(), std::time::Duration::from_secs(1));
    assert!(agent.insecure_bootstrap.is_some_and(|b| b.0));
}

#[test]
fn agent_unknown_key_is_named() {
    let err =
        agent_doc("agent {\n trust_domain = \"example.org\"\n default_svid_ttl = \"1h\"\n}\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("agent.default_svid_ttl"), "{err}");
}

#[test]
fn spire_stock_agent_configs_parse() {
    let Some(dir) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    for name in ["agent.conf", "agent_container.conf", "agent_full.conf"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let (agent, plugins) = agent_doc(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(agent.trust_domain.as_deref(), Some("example.org"), "{name}");
        assert!(plugins.of_type("NodeAttestor").next().is_some(), "{name}");
        // agent_full.conf sets rebootstrap_mode = "never" and its delay: accepted.
        assert_eq!(agent.refusals(), [], "{name}");
        assert!(agent.ignored().is_empty(), "{name}");
    }
}

#[test]
fn plugin_data_file_is_refused_by_name_on_enabled_blocks() {
    let err = catalog_error(
        "plugins {\n DataStore \"sql\" { plugin_data_file = \"/etc/ds.conf\" }\n \
         NodeAttestor \"join_token\" {}\n}\n",
    );
    assert!(
        err.starts_with("plugins.DataStore.sql.plugin_data_file is not supported by spire-rs: "),
        "{err}"
    );
    // A disabled block is not read, so its data file is not either.
    let doc = Document::parse(
        "plugins {\n DataStore \"sql\" {}\n NodeAttestor \"join_token\" {}\n \
         NodeAttestor \"k8s_psat\" {\n enabled = false\n plugin_data_file = \"/x\"\n }\n}\n",
    )
    .unwrap();
    CATALOG.load(doc.raw("plugins")).unwrap();
}

#[test]
fn refusals_name_the_key_and_join_with_semicolons() {
    let err = ConfigError::Unsupported(vec![
        Refusal::new("server.a", "no a"),
        Refusal::new("server.b", "no b"),
    ]);
    assert_eq!(
        err.to_string(),
        "server.a is not supported by spire-rs: no a; server.b is not supported by spire-rs: no b"
    );
    assert!(refuse(Vec::new()).is_ok());
}
