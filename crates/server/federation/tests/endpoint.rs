//! The bundle endpoint over real TLS: the document and its hint, SPIRE's 404/405, bundle
//! changes, `https_spiffe` rotation and `serving_cert_file` reload, and a clean stop.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use spire_server_federation::{BundleEndpoint, EndpointConfig, ServingCertFile, ServingIdentity};
use spire_svid::{Bundle, X509Svid};
use spire_task::Shutdown;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use support::{Ca, bundle, request, td};

/// Guards awaits that must finish; time is not asserted.
const PATIENCE: Duration = Duration::from_secs(30);

struct Running {
    addr: std::net::SocketAddr,
    bundles: watch::Sender<Arc<Bundle>>,
    stop: Shutdown,
    task: JoinHandle<()>,
}

async fn start(identity: ServingIdentity, initial: Bundle) -> Running {
    let (bundles, bundles_rx) = watch::channel(Arc::new(initial));
    let config = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    let endpoint = BundleEndpoint::bind(config, identity, bundles_rx)
        .await
        .unwrap();
    let addr = endpoint.local_addr();
    let stop = Shutdown::new();
    let task = tokio::spawn(endpoint.serve(stop.clone()));
    Running {
        addr,
        bundles,
        stop,
        task,
    }
}

fn svid_identity(svid: X509Svid) -> (watch::Sender<Arc<X509Svid>>, ServingIdentity) {
    let (tx, rx) = watch::channel(Arc::new(svid));
    (tx, ServingIdentity::Svid(rx))
}

#[tokio::test]
async fn get_root_serves_the_bundle_document_with_the_configured_hint() {
    let ca = Ca::new(Some("example.org"));
    let local = bundle("example.org", &[&ca]);
    let (_svid, identity) = svid_identity(ca.svid("spiffe://example.org/spire/server"));
    let running = start(identity, local.clone()).await;

    let mut expected = local.clone();
    expected.refresh_hint = 300;
    for h2 in [false, true] {
        let reply = request(running.addr, Method::GET, "/", h2).await;
        assert_eq!(reply.status, StatusCode::OK, "h2={h2}");
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        assert_eq!(reply.body, expected.to_spiffe_json().as_bytes(), "h2={h2}");
        let served = Bundle::from_spiffe_json(td("example.org"), &reply.body).unwrap();
        assert_eq!(served.refresh_hint, 300);
        assert_eq!(served.x509_authorities, local.x509_authorities);
    }
}

#[tokio::test]
async fn other_methods_are_405_and_other_paths_404() {
    let ca = Ca::new(Some("example.org"));
    let (_svid, identity) = svid_identity(ca.svid("spiffe://example.org/spire/server"));
    let running = start(identity, bundle("example.org", &[&ca])).await;

    for h2 in [false, true] {
        let reply = request(running.addr, Method::POST, "/", h2).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.body, "405 method not allowed\n");
        let reply = request(running.addr, Method::PUT, "/elsewhere", h2).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        let reply = request(running.addr, Method::GET, "/bundle.json", h2).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.body, "404 page not found\n");
        assert_eq!(
            reply.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[tokio::test]
async fn the_served_document_follows_bundle_changes() {
    let ca = Ca::new(Some("example.org"));
    let next_ca = Ca::new(Some("example.org"));
    let (_svid, identity) = svid_identity(ca.svid("spiffe://example.org/spire/server"));
    let running = start(identity, bundle("example.org", &[&ca])).await;
    let first = request(running.addr, Method::GET, "/", false).await;

    let mut rotated = bundle("example.org", &[&ca, &next_ca]);
    rotated.sequence_number = 2;
    running.bundles.send_replace(Arc::new(rotated.clone()));

    // The endpoint applies a bundle change before it accepts the next connection.
    let second = request(running.addr, Method::GET, "/", true).await;
    assert_ne!(first.body, second.body);
    let served = Bundle::from_spiffe_json(td("example.org"), &second.body).unwrap();
    assert_eq!(served.x509_authorities, rotated.x509_authorities);
    assert_eq!(served.sequence_number, 2);
}

#[tokio::test]
async fn a_rotated_server_svid_is_presented_on_new_connections() {
    let ca = Ca::new(Some("example.org"));
    let first = ca.svid("spiffe://example.org/spire/server");
    let second = ca.svid("spiffe://example.org/spire/server");
    let (svids, identity) = svid_identity(first.clone());
    let running = start(identity, bundle("example.org", &[&ca])).await;

    let reply = request(running.addr, Method::GET, "/", false).await;
    assert_eq!(reply.leaf, first.leaf());
    svids.send_replace(Arc::new(second.clone()));
    let reply = request(running.addr, Method::GET, "/", true).await;
    assert_eq!(reply.leaf, second.leaf());
    let reply = request(running.addr, Method::GET, "/", false).await;
    assert_eq!(reply.leaf, second.leaf());
}

#[tokio::test]
async fn serving_cert_files_are_reloaded_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let web_ca = Ca::new(None);
    let first = web_ca.web_cert("localhost");
    std::fs::write(&cert_path, &first.cert_pem).unwrap();
    std::fs::write(&key_path, &first.key_pem).unwrap();

    let files = ServingCertFile::load(&cert_path, &key_path, Duration::from_millis(10)).unwrap();
    let mut reloads = files.subscribe();
    let identity = files.identity();
    let stop_files = Shutdown::new();
    let reloader = tokio::spawn(files.run(stop_files.clone()));
    let ca = Ca::new(Some("example.org"));
    let running = start(identity, bundle("example.org", &[&ca])).await;

    let reply = request(running.addr, Method::GET, "/", false).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.leaf, first.leaf_der);

    // A file that does not parse is ignored; the old certificate stays.
    std::fs::write(&cert_path, "not a certificate").unwrap();
    let second = web_ca.web_cert("localhost");
    std::fs::write(&key_path, &second.key_pem).unwrap();
    std::fs::write(&cert_path, &second.cert_pem).unwrap();
    tokio::time::timeout(PATIENCE, reloads.changed())
        .await
        .unwrap()
        .unwrap();
    let reply = request(running.addr, Method::GET, "/", true).await;
    assert_eq!(reply.leaf, second.leaf_der);

    stop_files.trigger();
    tokio::time::timeout(PATIENCE, reloader)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn unusable_serving_cert_files_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let web_ca = Ca::new(None);
    let cert = web_ca.web_cert("localhost");
    let other = web_ca.web_cert("localhost");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &other.key_pem).unwrap();

    let missing = ServingCertFile::load(dir.path().join("nope.pem"), &key_path, Duration::ZERO);
    assert!(missing.unwrap_err().to_string().contains("nope.pem"));
    let mismatched = ServingCertFile::load(&cert_path, &key_path, Duration::ZERO);
    assert!(mismatched.is_err());
}

#[tokio::test]
async fn stop_ends_serving_and_closes_the_listener() {
    let ca = Ca::new(Some("example.org"));
    let (_svid, identity) = svid_identity(ca.svid("spiffe://example.org/spire/server"));
    let running = start(identity, bundle("example.org", &[&ca])).await;
    // An idle keep-alive connection must not hold the stop up.
    let idle = tokio::net::TcpStream::connect(running.addr).await.unwrap();

    running.stop.trigger();
    tokio::time::timeout(PATIENCE, running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(running.addr).await.is_err());
    drop(idle);
}

#[tokio::test(start_paused = true)]
async fn idle_http1_connections_are_closed_after_the_header_read_timeout() {
    let frozen = support::FrozenTime::new();
    let ca = Ca::new(Some("example.org"));
    let (_svid, identity) = svid_identity(ca.svid("spiffe://example.org/spire/server"));
    let running = start(identity, bundle("example.org", &[&ca])).await;
    let capture = Arc::new(support::CaptureServerCert::default());
    let connector = tokio_rustls::TlsConnector::from(support::any_server(capture, &[b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get("/")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();

    // Kept alive but silent: once tokio time may move, the server's 10 s header-read
    // timeout closes the connection long before this test's own minute runs out.
    drop(frozen);
    tokio::time::timeout(Duration::from_secs(60), connection)
        .await
        .expect("the server closed the idle connection")
        .unwrap()
        // The server drops the connection without a TLS close_notify.
        .unwrap_err();
}
