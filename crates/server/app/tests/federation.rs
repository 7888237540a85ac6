//! The bundle endpoint of a running server: `https_spiffe` (also what a `bundle_endpoint`
//! without profile means) presents the server SVID, `https_web` the `serving_cert_file`
//! certificate, and both serve the server's current bundle with the configured hint.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use spire_id::{SpiffeId, TrustDomain};
use spire_server_app::{Overrides, ServerConfig};
use spire_server_datastore::DataStore as _;
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_federation::{BundleClient, ClientOptions, EndpointAuth};
use spire_svid::Bundle;
use spire_task::Shutdown;
use spire_time::SystemClock;
use support::{config_text, free_port};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A server running in `dir` with `federation` inside `server { }`, and its stop switch.
struct Running {
    stop: Shutdown,
    task: JoinHandle<Result<(), spire_server_app::Error>>,
}

impl Running {
    async fn start(dir: &Path, federation: &str, endpoint_port: u16) -> Self {
        let text = config_text(dir, free_port(), federation);
        let config = ServerConfig::from_text(&text, &Overrides::default()).unwrap();
        let stop = Shutdown::new();
        let task = tokio::spawn(spire_server_app::run(
            config,
            Arc::new(SystemClock),
            stop.clone(),
        ));
        // Ready when the bundle endpoint accepts.
        tokio::time::timeout(Duration::from_secs(60), async {
            while TcpStream::connect(("127.0.0.1", endpoint_port))
                .await
                .is_err()
            {
                assert!(!task.is_finished(), "the server stopped during start");
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.trigger();
        self.task.await.unwrap().unwrap();
    }
}

/// The server's own bundle, read from its SQLite file.
async fn stored_bundle(dir: &Path) -> Bundle {
    let store = SqlStore::open(&SqlConfig {
        database_type: "sqlite3".into(),
        connection_string: dir.join("datastore.sqlite3").display().to_string(),
    })
    .await
    .unwrap();
    store
        .fetch_bundle(&TrustDomain::new("example.org").unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn client(web_roots: Vec<Vec<u8>>) -> BundleClient {
    BundleClient::new(
        Arc::new(SystemClock),
        ClientOptions {
            system_roots: false,
            extra_web_roots: web_roots,
            ..ClientOptions::default()
        },
    )
}

fn assert_same_authorities(fetched: &Bundle, stored: &Bundle) {
    let der = |b: &Bundle| -> Vec<Vec<u8>> {
        b.x509_authorities.iter().map(|a| a.asn1.clone()).collect()
    };
    assert_eq!(der(fetched), der(stored));
    let kids = |b: &Bundle| -> Vec<String> {
        b.jwt_authorities.iter().map(|a| a.key_id.clone()).collect()
    };
    assert_eq!(kids(fetched), kids(stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_endpoint_without_profile_serves_with_the_server_svid() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let federation = format!(
        "federation {{\n bundle_endpoint {{\n address = \"127.0.0.1\"\n port = {port}\n refresh_hint = \"2m\"\n }}\n }}"
    );
    let server = Running::start(dir.path(), &federation, port).await;
    let stored = stored_bundle(dir.path()).await;
    let trust_domain = TrustDomain::new("example.org").unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let client = client(Vec::new());

    let server_id = SpiffeId::parse("spiffe://example.org/spire/server").unwrap();
    let fetched = client
        .fetch(
            &url,
            &trust_domain,
            EndpointAuth::Spiffe {
                endpoint_spiffe_id: &server_id,
                bundle: &stored,
            },
        )
        .await
        .unwrap();
    assert_same_authorities(&fetched, &stored);
    assert_eq!(fetched.refresh_hint, 120);

    // The endpoint presents the server SVID, not any other ID.
    let other = SpiffeId::parse("spiffe://example.org/not-the-server").unwrap();
    let error = client
        .fetch(
            &url,
            &trust_domain,
            EndpointAuth::Spiffe {
                endpoint_spiffe_id: &other,
                bundle: &stored,
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("spiffe://example.org/spire/server"),
        "{error}"
    );

    server.stop().await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "the bundle endpoint stops with the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_web_serves_the_serving_cert_file_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_der, cert_pem, key_pem) = web_certificate("localhost");
    let cert_path = dir.path().join("bundle.crt");
    let key_path = dir.path().join("bundle.key");
    std::fs::write(&cert_path, cert_pem).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();
    let port = free_port();
    let federation = format!(
        r#"federation {{
        bundle_endpoint {{
            address = "127.0.0.1"
            port = {port}
            profile "https_web" {{
                serving_cert_file {{
                    cert_file_path = "{}"
                    key_file_path = "{}"
                }}
            }}
        }}
    }}"#,
        cert_path.display(),
        key_path.display()
    );
    let server = Running::start(dir.path(), &federation, port).await;
    let stored = stored_bundle(dir.path()).await;

    let fetched = client(vec![ca_der])
        .fetch(
            &format!("https://localhost:{port}"),
            &TrustDomain::new("example.org").unwrap(),
            EndpointAuth::Web,
        )
        .await
        .unwrap();
    assert_same_authorities(&fetched, &stored);
    assert_eq!(fetched.refresh_hint, 300, "SPIRE's default refresh_hint");
    server.stop().await;
}

#[tokio::test]
async fn a_missing_serving_certificate_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let federation = format!(
        r#"federation {{
        bundle_endpoint {{
            address = "127.0.0.1"
            port = {}
            profile "https_web" {{
                serving_cert_file {{
                    cert_file_path = "{dir}/missing.crt"
                    key_file_path = "{dir}/missing.key"
                }}
            }}
        }}
    }}"#,
        free_port(),
        dir = dir.path().display()
    );
    let text = config_text(dir.path(), free_port(), &federation);
    let config = ServerConfig::from_text(&text, &Overrides::default()).unwrap();
    let error = spire_server_app::run(config, Arc::new(SystemClock), Shutdown::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing.crt"), "{error}");
}

/// A private Web CA (DER) and a server certificate for `host` it signed (PEM), with its key.
fn web_certificate(host: &str) -> (Vec<u8>, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "test web CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.subject_alt_names = vec![SanType::DnsName(host.try_into().unwrap())];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.der().to_vec(), leaf_cert.pem(), key.serialize_pem())
}
