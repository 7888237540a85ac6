//! The server process in-process: configuration from SPIRE's files, the admin socket's modes,
//! the TLS listener's identity, and a clean stop.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use spire_server_app::{Overrides, ServerConfig};
use spire_time::SystemClock;
use tokio::net::TcpStream;
use tokio::sync::watch;

fn config_text(dir: &Path, port: u16) -> String {
    format!(
        r#"
server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{dir}/private/api.sock"
    trust_domain = "example.org"
    data_dir = "{dir}"
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{dir}/datastore.sqlite3"
        }}
    }}
    KeyManager "disk" {{
        plugin_data = {{ keys_path = "{dir}/keys.json" }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#,
        dir = dir.display()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Records the server's certificate chain without judging it.
#[derive(Debug)]
struct Capture(std::sync::Mutex<Vec<Vec<u8>>>);

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.lock().unwrap().push(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn serves_the_admin_socket_and_the_server_svid_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config =
        ServerConfig::from_text(&config_text(dir.path(), port), &Overrides::default()).unwrap();
    let socket = config.socket_path.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(spire_server_app::run(
        config,
        Arc::new(SystemClock),
        stop_rx,
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

    let capture = Arc::new(Capture(Default::default()));
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(capture.clone())
    .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tls = connector
        .connect(ServerName::try_from("example.org").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let leaf = capture.0.lock().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        format!("{:?}", san.value.general_names),
        r#"[URI("spiffe://example.org/spire/server")]"#
    );

    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket is removed on a clean stop");
}

#[test]
fn spire_stock_server_configs_resolve() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/testdata/spire-conf");
    if !dir.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing in CI",
            dir.display()
        );
        eprintln!(
            "skipping: {} is absent (a plain clone has no shared testdata)",
            dir.display()
        );
        return;
    }
    for name in ["server.conf", "server_container.conf"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let config = ServerConfig::from_text(&text, &Overrides::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.trust_domain.name(), "example.org");
        assert!(
            config.upstream_authority.is_some(),
            "{name}: UpstreamAuthority disk"
        );
        assert_eq!(config.node_attestors, ["join_token"]);
    }
}

#[test]
fn flags_override_the_file_and_unknown_plugins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), 8081);
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

    let text = text.replace("KeyManager \"disk\"", "KeyManager \"aws_kms\"");
    let err = ServerConfig::from_text(&text, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("aws_kms"), "{err}");

    let err = ServerConfig::from_text(
        "server {\n trust_domain = \"Example.org\"\n}\n",
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("trust_domain"), "{err}");
}
