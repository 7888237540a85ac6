//! An SDS client that behaves like Istio's Envoy against the real public endpoint (in-process),
//! a real agent cache and SVIDs minted under a test CA.
#![allow(clippy::unwrap_used)]

mod support;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::google::protobuf::value::Kind;
use spire_agent_sds::SdsConfig;
use support::*;
use tonic::Code;

const SLEEP: &str = "spiffe://example.org/ns/default/sa/sleep";

/// The DER certificates of a PEM text.
fn ders(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect()
}

/// The leaf verifies under one of `roots` and carries `spiffe_id` as its URI SAN.
fn assert_chain_verifies(chain_pem: &str, roots_pem: &str, spiffe_id: &str) {
    let chain = ders(chain_pem);
    let roots = ders(roots_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let verified = roots.iter().any(|root| {
        let (_, root) = x509_parser::parse_x509_certificate(root).unwrap();
        leaf.verify_signature(Some(root.public_key())).is_ok()
    });
    assert!(verified, "leaf does not chain to the delivered roots");
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    let uris: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(uris, [spiffe_id]);
}

fn assert_nonce(nonce: &str) {
    assert_eq!(nonce.len(), 8, "{nonce:?}");
    assert!(nonce.chars().all(|c| c.is_ascii_hexdigit()), "{nonce:?}");
}

#[tokio::test]
async fn istio_envoy_gets_default_and_rootca_and_pushed_updates() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry(
            "entry-a",
            "ns/default/sa/sleep",
            &[my_uid_selector()],
        )],
    );
    let served = serve(&cache, SdsConfig::default());
    let mut client = served.client().await;
    let node = envoy_node((1, 28), &[]);

    let mut default = EnvoyStream::open(&mut client, node.clone(), &["default"])
        .await
        .unwrap();
    let mut rootca = EnvoyStream::open(&mut client, node, &["ROOTCA"])
        .await
        .unwrap();

    let first = default.next_acked().await.unwrap();
    assert_eq!(first.version_info, "1");
    assert_eq!(first.type_url, SECRET_TYPE_URL);
    assert_nonce(&first.nonce);
    let tls_secrets = secrets(&first);
    assert_eq!(kinds(&tls_secrets), ["tls:default"]);
    let (chain, _key) = tls(&tls_secrets[0]);

    let roots = rootca.next_acked().await.unwrap();
    assert_eq!(roots.version_info, "1");
    assert_nonce(&roots.nonce);
    let ctx_secrets = secrets(&roots);
    assert_eq!(kinds(&ctx_secrets), ["ctx:ROOTCA"]);
    let (shape, tds) = context(&ctx_secrets[0]);
    assert_eq!(shape, "spiffe");
    assert_eq!(tds.len(), 1);
    assert_eq!(tds[0].0, "example.org");
    assert_chain_verifies(&chain, &tds[0].1, SLEEP);

    // SVID rotation: a new SVID in the cache is pushed on the `default` stream.
    let rotated = ca.mint(&workload_id("ns/default/sa/sleep"));
    cache.store_svids(vec![("entry-a".into(), rotated.clone())]);
    let pushed = default.next_acked().await.unwrap();
    assert_eq!(pushed.version_info, "2");
    assert_ne!(pushed.nonce, first.nonce);
    let (chain, _) = tls(&secrets(&pushed)[0]);
    assert_eq!(chain, pem_of(&[&rotated.chain[0]]));

    // CA rotation: a second root in the bundle reaches ROOTCA; the SVID rotation before it did
    // not (its content was unchanged), so the first push already holds the new root.
    let next_ca = TestCa::new();
    let mut bundle = ca.bundle();
    bundle
        .x509_authorities
        .extend(next_ca.bundle().x509_authorities);
    cache.update_bundles(bundle, Default::default());
    let pushed_roots = rootca.next_acked().await.unwrap();
    assert_ne!(pushed_roots.version_info, "1");
    let (_, tds) = context(&secrets(&pushed_roots)[0]);
    assert_eq!(tds[0].1, pem_of(&[&ca.root_der, &next_ca.root_der]));

    // Entry change: an identity with a smaller entry ID becomes `default`.
    set_entries(
        &cache,
        &ca,
        vec![
            entry("entry-0", "ns/default/sa/first", &[my_uid_selector()]),
            entry("entry-a", "ns/default/sa/sleep", &[my_uid_selector()]),
        ],
    );
    loop {
        let pushed = default.next_acked().await.unwrap();
        let (chain, _) = tls(&secrets(&pushed)[0]);
        let leaf = &ders(&chain)[0];
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
        let san = format!(
            "{:?}",
            cert.subject_alternative_name().unwrap().unwrap().value
        );
        if san.contains("ns/default/sa/first") {
            break;
        }
    }
}

#[tokio::test]
async fn proxy_started_before_its_entry_is_refused_then_served() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    let served = serve(&cache, SdsConfig::default());
    let mut client = served.client().await;
    let node = envoy_node((1, 28), &[]);

    let status = match EnvoyStream::open(&mut client, node.clone(), &["default"]).await {
        Ok(mut stream) => stream.next().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        r#"workload is not authorized for the requested identities ["default"]"#
    );
    // ROOTCA is served without an identity.
    let mut rootca = EnvoyStream::open(&mut client, node.clone(), &["ROOTCA"])
        .await
        .unwrap();
    assert_eq!(
        kinds(&secrets(&rootca.next_acked().await.unwrap())),
        ["ctx:ROOTCA"]
    );

    // `entry create` runs; Envoy retries.
    set_entries(
        &cache,
        &ca,
        vec![entry(
            "entry-a",
            "ns/istio-system/sa/gateway",
            &[my_uid_selector()],
        )],
    );
    let mut retry = EnvoyStream::open(&mut client, node, &["default"])
        .await
        .unwrap();
    let response = retry.next_acked().await.unwrap();
    assert_eq!(kinds(&secrets(&response)), ["tls:default"]);
}

#[tokio::test]
async fn federation_config_returns_both_trust_domains_under_rootca() {
    let ca = TestCa::new();
    let other = TestCa::for_domain(FEDERATED);
    let cache = cache(&ca);
    add_federated(&cache, &ca, &other);
    let mut e = federated_entry("entry-a", "ns/default/sa/sleep", &[FEDERATED]);
    e.dns_names = vec!["sleep.default.svc".into()];
    set_entries(&cache, &ca, vec![e]);
    let config = SdsConfig {
        default_svid_name: "default".into(),
        default_bundle_name: "null".into(),
        default_all_bundles_name: "ROOTCA".into(),
        disable_spiffe_cert_validation: false,
    };
    let served = serve(&cache, config);
    let mut client = served.client().await;
    let node = envoy_node((1, 28), &[]);
    let mut rootca = EnvoyStream::open(&mut client, node.clone(), &["ROOTCA"])
        .await
        .unwrap();
    let response = rootca.next_acked().await.unwrap();
    let all = secrets(&response);
    assert_eq!(kinds(&all), ["ctx:ROOTCA"]);
    assert_eq!(
        context(&all[0]),
        (
            "spiffe",
            vec![
                ("example.org".to_owned(), pem_of(&[&ca.root_der])),
                ("other.org".to_owned(), pem_of(&[&other.root_der])),
            ]
        )
    );
    let mut default = EnvoyStream::open(&mut client, node, &["default"])
        .await
        .unwrap();
    let (chain, _) = tls(&secrets(&default.next_acked().await.unwrap())[0]);
    assert_chain_verifies(&chain, &context(&all[0]).1[0].1, SLEEP);
}

#[tokio::test]
async fn fetch_secrets_and_validator_modes() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry(
            "entry-a",
            "ns/default/sa/sleep",
            &[my_uid_selector()],
        )],
    );
    let served = serve(&cache, SdsConfig::default());
    let client = served.client().await;
    let fetch = |node, names: &'static [&'static str]| {
        let mut client = client.clone();
        async move { client.fetch_secrets(request(node, names)).await }
    };

    let response = fetch(Some(envoy_node((1, 28), &[])), &["default", "ROOTCA"])
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.version_info, "");
    assert_eq!(response.nonce, "");
    assert_eq!(response.type_url, SECRET_TYPE_URL);
    let got = secrets(&response);
    assert_eq!(kinds(&got), ["ctx:ROOTCA", "tls:default"]);
    assert_eq!(context(&got[0]).0, "spiffe");

    let disabled_bool = [("disable_spiffe_cert_validation", Kind::BoolValue(true))];
    let disabled_string = [(
        "disable_spiffe_cert_validation",
        Kind::StringValue("true".into()),
    )];
    let rows: Vec<(&str, Option<_>, &str)> = vec![
        ("no node", None, "spiffe"),
        ("Envoy 1.18", Some(envoy_node((1, 18), &[])), "spiffe"),
        ("Envoy 1.17", Some(envoy_node((1, 17), &[])), "trusted_ca"),
        (
            "metadata bool",
            Some(envoy_node((1, 28), &disabled_bool)),
            "trusted_ca",
        ),
        (
            "metadata string",
            Some(envoy_node((1, 28), &disabled_string)),
            "trusted_ca",
        ),
    ];
    for (what, node, shape) in rows {
        let response = fetch(node, &["ROOTCA"]).await.unwrap().into_inner();
        assert_eq!(context(&secrets(&response)[0]).0, shape, "{what}");
    }
    let status = fetch(Some(envoy_node((1, 17), &[])), &["ALL"])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    let status = fetch(None, &["nope"]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        r#"workload is not authorized for the requested identities ["nope"]"#
    );

    // The agent's setting, overridden per Envoy by its metadata.
    drop(served);
    let served = serve(
        &cache,
        SdsConfig {
            disable_spiffe_cert_validation: true,
            ..SdsConfig::default()
        },
    );
    let mut client = served.client().await;
    let enabled = [(
        "disable_spiffe_cert_validation",
        Kind::StringValue("false".into()),
    )];
    for (node, shape) in [
        (envoy_node((1, 28), &[]), "trusted_ca"),
        (envoy_node((1, 28), &enabled), "spiffe"),
    ] {
        let response = client
            .fetch_secrets(request(Some(node), &["ROOTCA"]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(context(&secrets(&response)[0]).0, shape);
    }
}

#[tokio::test]
async fn delta_secrets_is_unimplemented() {
    let ca = TestCa::new();
    let cache = cache(&ca);
    let served = serve(&cache, SdsConfig::default());
    let mut client = served.client().await;
    let requests = tokio_stream::iter([DeltaDiscoveryRequest::default()]);
    let status = match client.delta_secrets(requests).await {
        Err(status) => status,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(status.message(), "Method is not implemented");
}

#[tokio::test]
async fn health_reports_sds_serving_on_the_shared_socket() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let ca = TestCa::new();
    let cache = cache(&ca);
    let served = serve(&cache, SdsConfig::default());
    let channel =
        tonic::transport::Endpoint::try_from(format!("unix://{}", served.socket.display()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = HealthClient::new(channel);
    for service in [spire_agent_sds::SdsService::NAME, ""] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    assert_eq!(
        spire_agent_sds::SdsService::NAME,
        "envoy.service.secret.v3.SecretDiscoveryService"
    );
}
