//! The Istio contract against the real binaries: `spire-server` and `spire-agent` run as
//! processes in a private temporary directory (stock configs, free port, the agent socket at
//! `<tmp>/run/secrets/workload-spiffe-uds/socket`), and an SDS client that behaves like Istio's
//! Envoy (shared with `crates/agent/sds/tests`) talks to the agent. This test process is the
//! workload (`unix:uid:<uid>`).
//!
//! `spire-server` is looked up next to `spire-agent`, as in `e2e_shell.rs`; with
//! `cargo test -p spire-agent` alone build it first (`cargo build -p spire-server`).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

#[path = "../../../crates/agent/sds/tests/support/envoy_client.rs"]
mod envoy_client;
mod istio_support;

use std::time::Duration;

use envoy_client::{EnvoyStream, context, envoy_node, kinds, secrets, tls};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use istio_support::{
    Cluster, FEDERATION_SDS, PARENT, assert_chain_verifies, ders, my_uid, prerequisites,
    sds_client, wait,
};
use spire_proto::health::pb::HealthCheckRequest;
use spire_proto::health::pb::health_check_response::ServingStatus;
use spire_proto::health::pb::health_client::HealthClient;
use tonic::Code;

const SLEEP: &str = "spiffe://example.org/ns/default/sa/sleep";
/// Istio's health-check deadline on the socket.
const ISTIO_DEADLINE: Duration = Duration::from_secs(1);
/// How long any one awaited push or retry may take before the test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(90);

/// The next response on `stream`, ACKed; fails after [`WAIT`].
async fn next(stream: &mut EnvoyStream, what: &str) -> DiscoveryResponse {
    tokio::time::timeout(WAIT, stream.next_acked())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
}

/// The leaf certificate of a `default` response: (DNS SANs, serial, notBefore and notAfter in
/// unix seconds).
fn leaf_facts(response: &DiscoveryResponse) -> (Vec<String>, Vec<u8>, (i64, i64)) {
    let got = secrets(response);
    assert_eq!(kinds(&got), ["tls:default"]);
    let (chain, _) = tls(&got[0]);
    let leaf = &ders(&chain)[0];
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let dns = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect();
    let validity = cert.validity();
    let times = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    (dns, cert.raw_serial().to_vec(), times)
}

/// Plain seed config: socket health within 1 s, the gateway-at-0/1 retry, `default` and
/// `ROOTCA`, the chain, `openssl x509 -text`, and pushes on entry change and on rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_envoy_against_the_real_agent() {
    let Some(conf) = prerequisites() else {
        return;
    };
    let cluster = Cluster::start(&conf, None).await;
    let sock = cluster.agent_socket.clone();

    // 1. From the moment the socket exists: a fresh HTTP/2 dial + health within Istio's 1 s.
    let health = tokio::time::timeout(ISTIO_DEADLINE, async {
        let channel = tonic::transport::Endpoint::try_from(format!("unix://{}", sock.display()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
    })
    .await
    .expect("no gRPC health answer within Istio's 1 s of the socket appearing")
    .unwrap();
    assert_eq!(health.get_ref().status, ServingStatus::Serving as i32);

    let mut client = sds_client(&sock).await;
    let node = envoy_node((1, 30), &[]);

    // 4. The proxy starts before its entry (the ingress gateway at 0/1): refused.
    let status = match EnvoyStream::open(&mut client, node.clone(), &["default"]).await {
        Ok(mut stream) => tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        r#"workload is not authorized for the requested identities ["default"]"#
    );
    let mut rootca = EnvoyStream::open(&mut client, node.clone(), &["ROOTCA"])
        .await
        .unwrap();
    let roots = next(&mut rootca, "ROOTCA").await;
    let roots = secrets(&roots);
    assert_eq!(kinds(&roots), ["ctx:ROOTCA"]);
    let (shape, tds) = context(&roots[0]);
    assert_eq!(shape, "spiffe");
    assert_eq!(tds.len(), 1, "{tds:?}");
    assert_eq!(tds[0].0, "example.org");
    let roots_pem = tds[0].1.clone();

    // 2. `entry create` runs; Envoy retries until it gets `default`.
    let uid = my_uid();
    let selector = format!("unix:uid:{uid}");
    let entry = |extra: &[&str]| {
        let mut args = vec![
            "-entryID",
            "sleep",
            "-parentID",
            PARENT,
            "-spiffeID",
            SLEEP,
            "-selector",
            &selector,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    cluster.server_cli("entry", "create", &entry(&["-dns", "sleep.default.svc"]));
    let (mut default, first) = wait("`default` after entry create", WAIT, || {
        let mut client = client.clone();
        let node = node.clone();
        async move {
            let mut stream = EnvoyStream::open(&mut client, node, &["default"])
                .await
                .ok()?;
            match tokio::time::timeout(WAIT, stream.next_acked()).await.ok()? {
                Ok(response) => Some((stream, response)),
                Err(status) => {
                    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                    None
                }
            }
        }
    })
    .await;
    let (dns, serial, _) = leaf_facts(&first);
    assert_eq!(dns, ["sleep.default.svc"]);
    let (chain, key) = tls(&secrets(&first)[0]);
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 key");
    assert_chain_verifies(&chain, &roots_pem, SLEEP);

    // The seed's proof step: the `default` PEM read by `openssl x509 -text`.
    let pem_path = cluster.dir().join("default.pem");
    std::fs::write(&pem_path, &chain).unwrap();
    let text = cluster.openssl(&["x509", "-in", pem_path.to_str().unwrap(), "-text", "-noout"]);
    assert!(
        text.contains("Subject: C = US, O = SPIRE, CN = sleep.default.svc"),
        "{text}"
    );
    assert!(text.contains(&format!("URI:{SLEEP}")), "{text}");

    // 3a. An entry change (a second DNS name) is pushed on the open `default` stream.
    let two_dns = [
        "-dns",
        "sleep.default.svc",
        "-dns",
        "sleep.default.svc.cluster.local",
    ];
    cluster.server_cli("entry", "update", &entry(&two_dns));
    let mut last_serial = serial;
    loop {
        let (dns, serial, _) = leaf_facts(&next(&mut default, "push after entry update").await);
        assert_ne!(serial, last_serial, "a push without a new certificate");
        last_serial = serial;
        if dns == ["sleep.default.svc", "sleep.default.svc.cluster.local"] {
            break;
        }
    }

    // 3b. Rotation: a 20 s X509-SVID TTL (an entry change, pushed), then a new serial on the
    // same open stream without any further change.
    let mut short = two_dns.to_vec();
    short.extend_from_slice(&["-x509SVIDTTL", "20"]);
    cluster.server_cli("entry", "update", &entry(&short));
    let short_lived = loop {
        let (_, serial, times) = leaf_facts(&next(&mut default, "push after TTL update").await);
        last_serial = serial;
        // notBefore is backdated 10 s.
        if times.1 - times.0 <= 30 {
            break times;
        }
    };
    eprintln!("20 s SVID valid {short_lived:?}; waiting for its rotation");
    let rotated = next(&mut default, "rotation of a 20 s SVID").await;
    let (dns, serial, times) = leaf_facts(&rotated);
    eprintln!("rotated: valid {times:?}");
    assert_ne!(serial, last_serial);
    assert!(times.1 - times.0 <= 30, "{times:?}");
    // Minted later (at about half of its validity), not a second copy for the same change.
    assert!(times.0 > short_lived.0, "{times:?} after {short_lived:?}");
    assert_eq!(
        dns,
        ["sleep.default.svc", "sleep.default.svc.cluster.local"]
    );
    let (chain, _) = tls(&secrets(&rotated)[0]);
    assert_chain_verifies(&chain, &roots_pem, SLEEP);
}

/// The seed's federation config (`default_bundle_name = "null"`,
/// `default_all_bundles_name = "ROOTCA"`): after `bundle set` for other.td and an entry that
/// federates with it, `ROOTCA` is ONE SPIFFE-validator context with both trust domains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_config_rootca_holds_both_trust_domains() {
    let Some(conf) = prerequisites() else {
        return;
    };
    let cluster = Cluster::start(&conf, Some(FEDERATION_SDS)).await;
    let dir = cluster.dir().to_owned();
    let key = dir.join("other.key");
    let ca = dir.join("other.pem");
    cluster.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/O=other.td test CA",
        "-days",
        "1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        ca.to_str().unwrap(),
    ]);
    let other_der = ders(&std::fs::read_to_string(&ca).unwrap());
    let ca_path = ca.to_str().unwrap().to_owned();
    cluster.server_cli(
        "bundle",
        "set",
        &[
            "-id".into(),
            "spiffe://other.td".into(),
            "-path".into(),
            ca_path,
        ],
    );
    let selector = format!("unix:uid:{}", my_uid());
    let args = [
        "-parentID",
        PARENT,
        "-spiffeID",
        SLEEP,
        "-selector",
        &selector,
        "-dns",
        "sleep.default.svc",
        "-federatesWith",
        "spiffe://other.td",
    ];
    cluster.server_cli("entry", "create", &args.map(str::to_owned));

    let client = sds_client(&cluster.agent_socket).await;
    let node = envoy_node((1, 30), &[]);
    // The agent syncs the entry and the federated bundle; Envoy retries `default` until
    // served, then `ROOTCA` holds every trust domain the caller may see.
    let (_default, first) = wait("`default` with the federated entry", WAIT, || {
        let mut client = client.clone();
        let node = node.clone();
        async move {
            let mut stream = EnvoyStream::open(&mut client, node, &["default"])
                .await
                .ok()?;
            let response = tokio::time::timeout(WAIT, stream.next_acked()).await.ok()?;
            response.ok().map(|r| (stream, r))
        }
    })
    .await;
    let mut client = client.clone();
    let mut rootca = EnvoyStream::open(&mut client, node, &["ROOTCA"])
        .await
        .unwrap();
    let (shape, tds) = loop {
        let response = next(&mut rootca, "ROOTCA").await;
        let all = secrets(&response);
        assert_eq!(kinds(&all), ["ctx:ROOTCA"], "one context");
        let (shape, tds) = context(&all[0]);
        if tds.len() == 2 {
            break (shape, tds);
        }
    };
    assert_eq!(shape, "spiffe");
    let names: Vec<&str> = tds.iter().map(|(td, _)| td.as_str()).collect();
    assert_eq!(names, ["example.org", "other.td"]);
    assert_eq!(ders(&tds[1].1), other_der);
    let (chain, _) = tls(&secrets(&first)[0]);
    assert_chain_verifies(&chain, &tds[0].1, SLEEP);
}
