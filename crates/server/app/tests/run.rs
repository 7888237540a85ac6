//! The server process in-process: configuration from SPIRE's files, the admin socket's modes,
//! the TLS listener's identity, and a clean stop.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use spire_server_app::{Overrides, ServerConfig};
use spire_task::Shutdown;
use spire_time::SystemClock;
use support::{CaptureServerCert, client_builder, config_text, free_port};
use tokio::net::TcpStream;

#[tokio::test]
async fn serves_the_admin_socket_and_the_server_svid_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config =
        ServerConfig::from_text(&config_text(dir.path(), port, ""), &Overrides::default()).unwrap();
    let socket = config.socket_path.clone();
    let stop = Shutdown::new();
    let server = tokio::spawn(spire_server_app::run(
        config,
        Arc::new(SystemClock),
        stop.clone(),
    ));

    // Ready when the TLS port accepts.
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(tcp) => break tcp,
            Err(_) => tokio::task::yield_now().await,
        }
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o770);
    assert_eq!(mode(socket.parent().unwrap()), 0o750);
    assert_eq!(mode(&dir.path().join("keys.json")), 0o600);

    let capture = Arc::new(CaptureServerCert::default());
    let mut client = client_builder(capture.clone()).with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tls = connector
        .connect(ServerName::try_from("example.org").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let leaf = capture.leaves()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        format!("{:?}", san.value.general_names),
        r#"[URI("spiffe://example.org/spire/server")]"#
    );

    stop.trigger();
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket is removed on a clean stop");
}

#[test]
fn spire_stock_server_configs_resolve() {
    let Some(dir) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    for name in ["server.conf", "server_container.conf"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let config = ServerConfig::from_text(&text, &Overrides::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.trust_domain.name(), "example.org");
        assert!(
            config.plugins.upstream_authority.is_some(),
            "{name}: UpstreamAuthority disk"
        );
        assert_eq!(
            config.plugins.node_attestors,
            [spire_server_app::config::NodeAttestorChoice::JoinToken]
        );
    }
}

#[test]
fn flags_override_the_file_and_unknown_plugins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), 8081, "");
    let config = ServerConfig::from_text(
        &text,
        &Overrides {
            trust_domain: Some("other.org".into()),
            server_port: Some(9000),
            socket_path: Some("/tmp/x.sock".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(config.trust_domain.name(), "other.org");
    assert_eq!(config.bind_port, 9000);
    assert_eq!(config.socket_path, Path::new("/tmp/x.sock"));

    let kms = text.replace("KeyManager \"disk\"", "KeyManager \"aws_kms\"");
    let err = ServerConfig::from_text(&kms, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "no built-in plugin \"aws_kms\" for type \"KeyManager\""
    );
    let none = text.replace("NodeAttestor \"join_token\"", "Notifier \"k8sbundle\"");
    let err = ServerConfig::from_text(&none, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "plugin type \"NodeAttestor\" constraint not satisfied: expected at least 1 but got 0"
    );

    let err = ServerConfig::from_text(
        "server {\n trust_domain = \"Example.org\"\n}\n",
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("trust_domain"), "{err}");
}

#[test]
fn push_is_on_unless_experimental_disable_push() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        ServerConfig::from_text(&config_text(dir.path(), 8081, ""), &Overrides::default()).unwrap();
    assert!(!config.disable_push);
    let text = config_text(
        dir.path(),
        8081,
        "experimental {\n        disable_push = true\n    }",
    );
    let config = ServerConfig::from_text(&text, &Overrides::default()).unwrap();
    assert!(config.disable_push);
}

#[test]
fn jwt_settings_reach_the_ca_config() {
    use std::time::Duration;

    use spire_svid::KeyType;

    let dir = tempfile::tempdir().unwrap();
    let config =
        ServerConfig::from_text(&config_text(dir.path(), 8081, ""), &Overrides::default()).unwrap();
    assert_eq!(config.ca.jwt_key_type(), KeyType::EcP256);
    assert_eq!(config.ca.default_jwt_svid_ttl, Duration::from_secs(300));
    assert_eq!(config.ca.jwt_issuer, None);
    assert!(!config.ca.disable_jwt_svids);

    // jwt_key_type follows ca_key_type unless set.
    let text = config_text(dir.path(), 8081, "ca_key_type = \"rsa-2048\"");
    let config = ServerConfig::from_text(&text, &Overrides::default()).unwrap();
    assert_eq!(config.ca.jwt_key_type(), KeyType::Rsa2048);

    let text = config_text(
        dir.path(),
        8081,
        "ca_key_type = \"rsa-2048\"
    jwt_key_type = \"ec-p384\"
    jwt_issuer = \"https://oidc.example.org\"
    default_jwt_svid_ttl = \"90s\"
    disable_jwt_svids = true",
    );
    let config = ServerConfig::from_text(&text, &Overrides::default()).unwrap();
    assert_eq!(config.ca.jwt_key_type(), KeyType::EcP384);
    assert_eq!(
        config.ca.jwt_issuer.as_deref(),
        Some("https://oidc.example.org")
    );
    assert_eq!(config.ca.default_jwt_svid_ttl, Duration::from_secs(90));
    assert!(config.ca.disable_jwt_svids);

    let text = config_text(dir.path(), 8081, "jwt_key_type = \"ed25519\"");
    let err = ServerConfig::from_text(&text, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ed25519"), "{err}");
}

/// Both Istio quickstarts' `server.conf` (today's and the 2022 one the Istio guide was
/// written against) resolve unchanged, with their k8s_psat cluster and k8sbundle notifier.
#[test]
fn istio_quickstart_server_confs_resolve_unchanged() {
    use spire_server_app::config::{NodeAttestorChoice, NotifierChoice};
    for (dir, config_map) in [
        ("istio-samples", "spire-bundle"),
        ("istio-1.14-samples", "trust-bundle"),
    ] {
        let Some(dir) = spire_test::shared_testdata(dir) else {
            return;
        };
        let manifest = spire_test::manifest_objects(&dir.join("spire-quickstart.yaml"));
        let text = spire_test::config_map_data(&manifest, "spire", "spire-server", "server.conf");
        let config = ServerConfig::from_text(&text, &Overrides::default())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let NodeAttestorChoice::K8sPsat(psat) = &config.plugins.node_attestors[0] else {
            panic!("k8s_psat expected");
        };
        let cluster = &psat.clusters["demo-cluster"];
        assert!(
            cluster
                .service_account_allow_list
                .contains("spire:spire-agent")
        );
        assert_eq!(cluster.audience, ["spire-server"]);
        let NotifierChoice::K8sBundle(notifier) = &config.plugins.notifiers[0];
        assert_eq!(notifier.clusters[0].namespace, "spire");
        assert_eq!(notifier.clusters[0].config_map, config_map);
        assert!(config.health.listener_enabled);
    }
    // The 2022 server.conf's `default_svid_ttl = "1h"` is the deprecated X.509 SVID TTL.
    if let Some(dir) = spire_test::shared_testdata("istio-1.14-samples") {
        let manifest = spire_test::manifest_objects(&dir.join("spire-quickstart.yaml"));
        let text = spire_test::config_map_data(&manifest, "spire", "spire-server", "server.conf");
        let config = ServerConfig::from_text(&text, &Overrides::default()).unwrap();
        assert_eq!(
            config.ca.default_x509_svid_ttl,
            std::time::Duration::from_secs(3600)
        );
    }
}

#[tokio::test]
async fn a_key_file_holding_an_agent_key_stops_the_server_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, r#"{"keys":{"agent-svid-A":"AAAA"}}"#).unwrap();
    let config = ServerConfig::from_text(
        &config_text(dir.path(), free_port(), ""),
        &Overrides::default(),
    )
    .unwrap();
    let err = spire_server_app::run(config, Arc::new(SystemClock), Shutdown::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&keys.display().to_string()), "{err}");
    assert!(
        err.contains(
            "key \"agent-svid-A\": unknown key ID \"agent-svid-A\"; a server key file holds \
             x509-CA-A, x509-CA-B, JWT-Signer-A, JWT-Signer-B, WIT-Signer-A, WIT-Signer-B"
        ),
        "{err}"
    );
}
