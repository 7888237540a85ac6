//! The bundle client against the real endpoint (`https_spiffe`, `https_web`) with real
//! certificates, and against a small HTTPS server that answers bad documents.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use spire_server_federation::{
    BundleClient, BundleEndpoint, ClientOptions, EndpointAuth, EndpointConfig, Error,
    ServingCertFile, ServingIdentity,
};
use spire_svid::{Bundle, BundleError};
use spire_task::Shutdown;
use spire_time::ManualClock;
use tokio::sync::watch;

use support::{Ca, WebCert, authorities, bundle, id, td};

/// Starts the real endpoint serving `served`; triggering the returned signal stops it.
async fn endpoint(identity: ServingIdentity, served: Bundle) -> (SocketAddr, Shutdown) {
    let (bundles, bundles_rx) = watch::channel(Arc::new(served));
    let config = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    let endpoint = BundleEndpoint::bind(config, identity, bundles_rx)
        .await
        .unwrap();
    let addr = endpoint.local_addr();
    let stop = Shutdown::new();
    let serving = stop.clone();
    tokio::spawn(async move {
        endpoint.serve(serving).await;
        drop(bundles);
    });
    (addr, stop)
}

fn client(extra_web_roots: Vec<Vec<u8>>) -> BundleClient {
    let options = ClientOptions {
        extra_web_roots,
        ..ClientOptions::default()
    };
    BundleClient::new(Arc::new(ManualClock::at_fixed_instant()), options)
}

fn svid_identity(ca: &Ca, spiffe_id: &str) -> ServingIdentity {
    // The value stays readable after the sender is gone.
    let (_, rx) = watch::channel(Arc::new(ca.svid(spiffe_id)));
    ServingIdentity::Svid(rx)
}

#[tokio::test]
async fn https_spiffe_fetches_the_remote_bundle() {
    let remote_ca = Ca::new(Some("example-federated.org"));
    let served = bundle("example-federated.org", &[&remote_ca]);
    let identity = svid_identity(&remote_ca, "spiffe://example-federated.org/spire/server");
    let (addr, _stop) = endpoint(identity, served.clone()).await;

    let endpoint_id = id("spiffe://example-federated.org/spire/server");
    let auth = EndpointAuth::Spiffe {
        endpoint_spiffe_id: &endpoint_id,
        bundle: &served,
    };
    let fetched = client(vec![])
        .fetch(
            &format!("https://127.0.0.1:{}", addr.port()),
            &td("example-federated.org"),
            auth,
        )
        .await
        .unwrap();
    assert_eq!(fetched.trust_domain, td("example-federated.org"));
    assert_eq!(authorities(&fetched), authorities(&served));
    assert_eq!(fetched.refresh_hint, 300);
}

#[tokio::test]
async fn https_spiffe_authenticates_against_the_endpoint_ids_trust_domain() {
    // The endpoint of remote.test's bundle is run by hosting.test (SPIRE's server_full.conf
    // shows such a setup); the client trusts it through hosting.test's bundle.
    let hosting_ca = Ca::new(Some("hosting.test"));
    let remote_ca = Ca::new(Some("remote.test"));
    let identity = svid_identity(&hosting_ca, "spiffe://hosting.test/bundle-server");
    let (addr, _stop) = endpoint(identity, bundle("remote.test", &[&remote_ca])).await;

    let endpoint_id = id("spiffe://hosting.test/bundle-server");
    let hosting = bundle("hosting.test", &[&hosting_ca]);
    let auth = EndpointAuth::Spiffe {
        endpoint_spiffe_id: &endpoint_id,
        bundle: &hosting,
    };
    let fetched = client(vec![])
        .fetch(
            &format!("https://localhost:{}/", addr.port()),
            &td("remote.test"),
            auth,
        )
        .await
        .unwrap();
    assert_eq!(authorities(&fetched), vec![remote_ca.der.clone()]);
}

#[tokio::test]
async fn https_spiffe_rejects_another_endpoint_id_and_an_untrusted_chain() {
    let remote_ca = Ca::new(Some("example-federated.org"));
    let served = bundle("example-federated.org", &[&remote_ca]);
    // Same trust domain, another workload: not the endpoint we were told to expect.
    let identity = svid_identity(&remote_ca, "spiffe://example-federated.org/not-the-server");
    let (addr, _stop) = endpoint(identity, served.clone()).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let expected = id("spiffe://example-federated.org/spire/server");

    let auth = EndpointAuth::Spiffe {
        endpoint_spiffe_id: &expected,
        bundle: &served,
    };
    let error = client(vec![])
        .fetch(&url, &td("example-federated.org"), auth)
        .await
        .unwrap_err();
    match &error {
        Error::PeerIdMismatch { expected: e, found } => {
            assert_eq!(e, &expected);
            assert_eq!(found, "spiffe://example-federated.org/not-the-server");
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("unexpected ID"), "{error}");

    // A bundle that does not hold the endpoint's CA authenticates nothing.
    let stranger = bundle(
        "example-federated.org",
        &[&Ca::new(Some("example-federated.org"))],
    );
    let auth = EndpointAuth::Spiffe {
        endpoint_spiffe_id: &expected,
        bundle: &stranger,
    };
    let error = client(vec![])
        .fetch(&url, &td("example-federated.org"), auth)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Handshake(_)), "{error:?}");
}

#[tokio::test]
async fn https_web_trusts_a_configured_ca_and_hints_at_https_spiffe() {
    let dir = tempfile::tempdir().unwrap();
    let web_ca = Ca::new(None);
    let cert = web_ca.web_cert("localhost");
    std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
    let files = ServingCertFile::load(
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        Duration::from_secs(3600),
    )
    .unwrap();
    let remote_ca = Ca::new(Some("example-federated.org"));
    let served = bundle("example-federated.org", &[&remote_ca]);
    let (addr, _stop) = endpoint(files.identity(), served.clone()).await;

    let fetched = client(vec![web_ca.der.clone()])
        .fetch(
            &format!("https://localhost:{}/", addr.port()),
            &td("example-federated.org"),
            EndpointAuth::Web,
        )
        .await
        .unwrap();
    assert_eq!(authorities(&fetched), authorities(&served));

    // Without the CA, Web PKI refuses the certificate.
    let error = client(vec![])
        .fetch(
            &format!("https://localhost:{}/", addr.port()),
            &td("example-federated.org"),
            EndpointAuth::Web,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Handshake(_) | Error::Tls(_)),
        "{error:?}"
    );

    // An https_spiffe endpoint reached as https_web: SPIRE's hint.
    let identity = svid_identity(&remote_ca, "spiffe://example-federated.org/spire/server");
    let (addr, _stop) = endpoint(identity, served).await;
    let error = client(vec![web_ca.der.clone()])
        .fetch(
            &format!("https://localhost:{}/", addr.port()),
            &td("example-federated.org"),
            EndpointAuth::Web,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::WebAuthWithSpiffeId { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("maybe use https_spiffe"),
        "{error}"
    );
}

/// A body of `chunks` × 64 KiB with no declared length (HTTP/1 chunked).
struct Chunks(usize);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; 64 * 1024])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Json(&'static str),
    Document(&'static str),
    Status(u16),
    Huge { declared: bool },
}

/// A tiny HTTPS server (HTTP/1.1 only) for `localhost` that gives every request `answer`.
async fn bad_remote(cert: &WebCert, answer: Answer, document: Bytes) -> SocketAddr {
    let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let document = document.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |_request| {
                    let document = document.clone();
                    async move {
                        let response = match answer {
                            Answer::Json(text) => {
                                boxed(200, Full::new(Bytes::from_static(text.as_bytes())))
                            }
                            Answer::Document(_) => boxed(200, Full::new(document)),
                            Answer::Status(code) => {
                                boxed(code, Full::new(Bytes::from_static(b"try later")))
                            }
                            Answer::Huge { declared: true } => {
                                boxed(200, Full::new(Bytes::from(vec![b' '; 2 * 1024 * 1024])))
                            }
                            Answer::Huge { declared: false } => boxed(200, Chunks(40)),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn boxed<B>(status: u16, body: B) -> Response<AnyBody>
where
    B: Body<Data = Bytes, Error = std::convert::Infallible> + Send + Sync + 'static,
{
    let mut response = Response::new(http_body_util::BodyExt::boxed(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

async fn fetch_from(answer: Answer) -> Result<Bundle, Error> {
    let web_ca = Ca::new(None);
    let cert = web_ca.web_cert("localhost");
    let document = match answer {
        Answer::Document(td) => bundle(td, &[&Ca::new(Some(td))]).to_spiffe_json().into(),
        _ => Bytes::new(),
    };
    let addr = bad_remote(&cert, answer, document).await;
    client(vec![web_ca.der.clone()])
        .fetch(
            &format!("https://localhost:{}", addr.port()),
            &td("example-federated.org"),
            EndpointAuth::Web,
        )
        .await
}

#[tokio::test]
async fn bad_documents_and_responses_are_errors() {
    let error = fetch_from(Answer::Json("{\"keys\": [")).await.unwrap_err();
    assert!(
        matches!(error, Error::InvalidBundle(BundleError::Decode(_))),
        "{error:?}"
    );
    let error = fetch_from(Answer::Json("{}")).await.unwrap_err();
    assert!(
        matches!(error, Error::InvalidBundle(BundleError::NoAuthorities)),
        "{error:?}"
    );
    let error = fetch_from(Answer::Json("{\"keys\": []}"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoX509Authorities), "{error:?}");

    let error = fetch_from(Answer::Document("example.org"))
        .await
        .unwrap_err();
    match &error {
        Error::WrongTrustDomain {
            expected,
            found,
            index,
        } => {
            assert_eq!(expected, &td("example-federated.org"));
            assert_eq!(found, "spiffe://example.org");
            assert_eq!(*index, 0);
        }
        other => panic!("{other:?}"),
    }
    // The right trust domain from the same server is fine.
    let fetched = fetch_from(Answer::Document("example-federated.org"))
        .await
        .unwrap();
    assert_eq!(fetched.x509_authorities.len(), 1);

    let error = fetch_from(Answer::Status(503)).await.unwrap_err();
    match &error {
        Error::Status { status, body } => assert_eq!((*status, body.as_str()), (503, "try later")),
        other => panic!("{other:?}"),
    }
    for declared in [true, false] {
        let error = fetch_from(Answer::Huge { declared }).await.unwrap_err();
        assert!(
            matches!(error, Error::BodyTooLarge { limit: 1_048_576 }),
            "declared={declared}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_endpoint_times_out_and_a_closed_port_fails_to_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ClientOptions {
        timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let client = BundleClient::new(Arc::new(ManualClock::at_fixed_instant()), options);
    let url = format!("https://127.0.0.1:{}", addr.port());
    // Accepted by the kernel, never answered.
    let error = client
        .fetch(&url, &td("example.org"), EndpointAuth::Web)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
    drop(listener);
    let error = client
        .fetch(&url, &td("example.org"), EndpointAuth::Web)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
}
