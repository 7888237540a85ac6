//! MintX509SVID's CSR rules, Debug.GetInfo and grpc.health.v1 over a real server.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, SanType};
use spire_proto::health::pb::{HealthCheckRequest, health_client::HealthClient};
use spire_proto::spire::api::server::debug::v1::{GetInfoRequest, debug_client::DebugClient};
use spire_proto::spire::api::server::svid::v1::{MintX509svidRequest, svid_client::SvidClient};
use support::{Harness, domain_entry, secs};
use tonic::Code;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

fn csr(key: &KeyPair, sans: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.serialize_request(key).unwrap().der().to_vec()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

#[tokio::test]
async fn mint_x509_svid_follows_the_csr_rules() {
    let h = Harness::start().await;
    let client = SvidClient::new(h.channel.clone());
    let key = KeyPair::generate().unwrap();
    let mint = |csr: Vec<u8>, ttl: i32| {
        let mut c = client.clone();
        async move {
            c.mint_x509svid(MintX509svidRequest { csr, ttl })
                .await
                .map(|r| r.into_inner().svid.unwrap())
        }
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "missing CSR"),
        (csr(&key, vec![]), "CSR URI SAN is required"),
        (
            csr(
                &key,
                vec![uri("spiffe://example.org/a"), uri("spiffe://example.org/b")],
            ),
            "only one URI SAN is expected",
        ),
        (
            csr(&key, vec![uri("spiffe://example.org/spire/server")]),
            "CSR URI SAN is invalid: \"spiffe://example.org/spire/server\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace",
        ),
        (
            csr(&key, vec![uri("spiffe://other.org/w")]),
            "CSR URI SAN is invalid: \"spiffe://other.org/w\" is not a member of trust domain \"example.org\"",
        ),
        (
            csr(&key, vec![uri("https://example.org/w")]),
            "CSR URI SAN is invalid: scheme is missing or invalid",
        ),
        (
            csr(&key, vec![uri("spiffe://example.org/w"), dns("bad.name.")]),
            "CSR DNS name is invalid: domain ends with dot",
        ),
        (
            csr(
                &key,
                vec![
                    uri("spiffe://example.org/w"),
                    dns("*.example.org"),
                    dns("www.example.org"),
                ],
            ),
            "CSR DNS name contains a wildcard that covers another non-wildcard name: name \"www.example.org\" overlaps with an existing wildcard name in the list: wildcard overlap",
        ),
    ];
    for (der, want) in cases {
        let err = mint(der, 0).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, want));
    }
    let err = mint(b"junk".to_vec(), 0).await.unwrap_err();
    assert!(
        err.message().starts_with("malformed CSR"),
        "{}",
        err.message()
    );

    let svid = mint(
        csr(
            &key,
            vec![
                uri("spiffe://example.org/w"),
                dns("web.example.org"),
                dns("api.example.org"),
            ],
        ),
        120,
    )
    .await
    .unwrap();
    assert_eq!(svid.id.as_ref().unwrap().path, "/w");
    assert_eq!(svid.expires_at, h.now() + 120);
    let (_, leaf) = X509Certificate::from_der(&svid.cert_chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    let names: Vec<String> = leaf
        .extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.clone()),
            _ => None,
        })
        .flatten()
        .map(|n| match n {
            GeneralName::URI(u) => u.to_owned(),
            GeneralName::DNSName(d) => d.to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "spiffe://example.org/w",
            "web.example.org",
            "api.example.org"
        ]
    );

    let default_ttl = mint(csr(&key, vec![uri("spiffe://example.org/w")]), 0)
        .await
        .unwrap();
    assert_eq!(
        default_ttl.expires_at,
        h.now() + 3600,
        "default_x509_svid_ttl"
    );
}

#[tokio::test]
async fn debug_get_info_counts_and_shows_the_server_svid() {
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let h = Harness::start_with(|ctx| ctx.server_svid = Some(Arc::new(rx))).await;
    let key = KeyPair::generate().unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    tx.send(h.ctx.ca.sign_server_x509_svid(&spki).unwrap())
        .unwrap();
    h.add_entry(domain_entry("/a", "/spire/agent/x", "unix:uid:1"))
        .await;
    h.add_entry(domain_entry("/b", "/spire/agent/x", "unix:uid:2"))
        .await;
    h.add_node("/spire/agent/x", "1", "join_token").await;
    h.clock.advance(secs(42));

    let info = DebugClient::new(h.channel.clone())
        .get_info(GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.entries_count, info.agents_count), (2, 1));
    assert_eq!(info.federated_bundles_count, 0);
    assert_eq!(info.uptime, 42);
    assert_eq!(info.svid_chain.len(), 1);
    let cert = &info.svid_chain[0];
    assert_eq!(cert.id.as_ref().unwrap().path, "/spire/server");
    assert_eq!(cert.subject, "O=SPIRE,C=US");
    assert!(cert.expires_at > h.now());
}

#[tokio::test]
async fn health_is_serving_on_the_admin_socket_only() {
    let h = Harness::start().await;
    let status = HealthClient::new(h.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1, "SERVING");
    let err = HealthClient::new(h.tcp_channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}
