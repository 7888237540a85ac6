//! Both listeners of a running server, end to end: the admin Unix socket (every caller is
//! local) and the TLS port, where what a caller may do depends on the client certificate it
//! presents, verified against the trust bundle.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use spire_proto::spire::api::server::entry::v1::CountEntriesRequest;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::svid::v1::MintX509svidRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_server_app::{Overrides, ServerConfig};
use spire_task::Shutdown;
use spire_time::SystemClock;
use support::{CaptureServerCert, client_builder, config_text, free_port};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// A gRPC channel over TLS to `port`, presenting `identity` (chain, PKCS#8 key) if given.
async fn tls_channel(
    port: u16,
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Result<Channel, tonic::transport::Error> {
    let builder = client_builder(Arc::new(CaptureServerCert::default()));
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain.into_iter().map(CertificateDer::from).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_static("http://example.org")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
                let tls = connector
                    .connect(ServerName::try_from("example.org").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

/// A P-256 key (PKCS#8) and a CSR for `uri`.
fn key_and_csr(uri: &str) -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    (key.serialize_der(), csr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_callers_are_authorized_by_their_verified_svid() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = ServerConfig::from_text(
        &config_text(
            dir.path(),
            port,
            r#"admin_ids = ["spiffe://example.org/admin"]"#,
        ),
        &Overrides::default(),
    )
    .unwrap();
    let socket = config.socket_path.clone();
    let stop = Shutdown::new();
    let server = tokio::spawn(spire_server_app::run(
        config,
        Arc::new(SystemClock),
        stop.clone(),
    ));

    // The admin socket: a local caller mints an SVID for the configured admin ID.
    let uds = loop {
        match Endpoint::from_shared(format!("unix:{}", socket.display()))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::task::yield_now().await,
        }
    };
    let (admin_key, admin_csr) = key_and_csr("spiffe://example.org/admin");
    let minted = SvidClient::new(uds.clone())
        .mint_x509svid(MintX509svidRequest {
            csr: admin_csr,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let admin_chain = minted.svid.unwrap().cert_chain;
    let (other_key, other_csr) = key_and_csr("spiffe://example.org/workload");
    let other_chain = SvidClient::new(uds.clone())
        .mint_x509svid(MintX509svidRequest {
            csr: other_csr,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .svid
        .unwrap()
        .cert_chain;
    EntryClient::new(uds)
        .count_entries(CountEntriesRequest::default())
        .await
        .unwrap();

    // Over TLS: the admin's SVID may count entries...
    let admin = tls_channel(port, Some((admin_chain, admin_key)))
        .await
        .unwrap();
    EntryClient::new(admin)
        .count_entries(CountEntriesRequest::default())
        .await
        .unwrap();

    // ...another SVID of the trust domain, or no certificate at all, may not.
    for identity in [Some((other_chain, other_key)), None] {
        let channel = tls_channel(port, identity).await.unwrap();
        let status = EntryClient::new(channel)
            .count_entries(CountEntriesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    }

    // A certificate from outside the bundle never gets past the handshake.
    let foreign_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://example.org/admin".try_into().unwrap(),
    )];
    let foreign = params.self_signed(&foreign_key).unwrap().der().to_vec();
    let refused = match tls_channel(port, Some((vec![foreign], foreign_key.serialize_der()))).await
    {
        Err(_) => true,
        Ok(channel) => EntryClient::new(channel)
            .count_entries(CountEntriesRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a self-signed client certificate must be refused");

    stop.trigger();
    server.await.unwrap().unwrap();
}
