//! Two trust domains on one machine, `example.org` and `example-federated.org`: two servers,
//! each with an `https_spiffe` bundle endpoint, and one agent each. The bundles are
//! bootstrapped by hand (`bundle show` on one side, `bundle set` on the other), then kept
//! fresh by each server's refresher through the other's endpoint. This process is the
//! workload of both agents, with one entry per domain federating with the other, and the
//! Envoy of both (SDS streams for the other domain's bundle).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use rustls::pki_types::ServerName;
use spire_integration_tests::spiffe::{TrustDomain, X509Context, X509Source};
use spire_integration_tests::types;
use spire_integration_tests::{
    ServerBuilder, SharedClock, SystemClock, TestAgent, TestServer, WAIT, entry, free_port,
    init_logging, leaf_spiffe_id, manual_clock, next_matching, uid_selector,
};
use spire_proto::spire::api::server::bundle::v1::batch_delete_federated_bundle_request::Mode;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::transport::Channel;

use crate::common::fetch_context_eventually;
use crate::sds::{self, EnvoyStream};

const EXAMPLE: &str = "example.org";
const FEDERATED: &str = "example-federated.org";
/// The bundle endpoints' `refresh_hint`: SPIRE's floor, so the refresher polls every 15 s.
const REFRESH_HINT_SECS: i64 = 60;

/// One trust domain: a server with a bundle endpoint and an agent attested by join token.
struct Domain {
    trust_domain: &'static str,
    server: TestServer,
    agent: TestAgent,
    agent_id: String,
    endpoint_port: u16,
}

impl Domain {
    async fn start(trust_domain: &'static str, clock: SharedClock, server_extra: &str) -> Self {
        let endpoint_port = free_port().unwrap();
        let server = ServerBuilder::new()
            .trust_domain(trust_domain)
            .clock(clock)
            .server_extra(&format!(
                r#"federation {{
        bundle_endpoint {{
            address = "127.0.0.1"
            port = {endpoint_port}
            refresh_hint = "{REFRESH_HINT_SECS}s"
            profile "https_spiffe" {{}}
        }}
    }}"#
            ))
            .server_extra(server_extra)
            .start()
            .await
            .unwrap();
        let agent = server.join_token_agent().await.unwrap();
        let agent_id = agent.agent_id().unwrap();
        Self {
            trust_domain,
            server,
            agent,
            agent_id,
            endpoint_port,
        }
    }

    fn workload_id(&self) -> String {
        format!("spiffe://{}/workload", self.trust_domain)
    }

    async fn stop(self) {
        self.agent.stop().await.unwrap();
        self.server.stop().await.unwrap();
    }
}

/// Federates `a` and `b` both ways as an operator would: each server's bundle is copied to
/// the other (`bundle show -format spiffe` | `bundle set -format spiffe`), each creates an
/// `https_spiffe` relationship with the other's endpoint (endpoint ID: the other server),
/// and each registers this process as its workload, federating with the other domain.
async fn federate(a: &Domain, b: &Domain) {
    for (from, to) in [(a, b), (b, a)] {
        let bundle = from.server.bundle().await.unwrap();
        assert_ne!(bundle.refresh_hint, REFRESH_HINT_SECS, "bootstrap hint");
        to.server.set_federated_bundle(bundle).await.unwrap();
    }
    for (this, other) in [(a, b), (b, a)] {
        this.server
            .create_spiffe_federation(
                other.trust_domain,
                &format!("https://127.0.0.1:{}", other.endpoint_port),
                &format!("spiffe://{}/spire/server", other.trust_domain),
            )
            .await
            .unwrap();
        let mut workload = entry(&this.workload_id(), &this.agent_id, &[&uid_selector()]);
        workload.federates_with = vec![other.trust_domain.to_owned()];
        this.server.create_entry(workload).await.unwrap();
    }
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn x509_roots(bundle: &types::Bundle) -> Vec<Vec<u8>> {
    bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.clone())
        .collect()
}

/// The DER roots a Workload API context holds for `trust_domain`.
fn context_roots(context: &X509Context, trust_domain: &str) -> Option<Vec<Vec<u8>>> {
    let bundle = context.bundle_set().get(&td(trust_domain))?;
    Some(
        bundle
            .authorities()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect(),
    )
}

/// Waits until the context `source` serves satisfies `wanted`.
async fn source_reaches(source: &X509Source, what: &str, wanted: impl Fn(&X509Context) -> bool) {
    // Subscribed before the first look, so no update falls between look and wait.
    let mut updates = source.updated();
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            if source.x509_context().is_ok_and(|c| wanted(&c)) {
                return;
            }
            updates.changed().await.unwrap();
        }
    })
    .await;
    assert!(reached.is_ok(), "timed out waiting for {what}");
}

/// Envoy on one domain's agent, following the other domain's bundle over SDS: one
/// `StreamSecrets` stream asks for it by trust domain ID (`spiffe://<other>`), one for `ALL`
/// (the SPIFFE validator with every trust domain the workload may trust).
struct SdsWatch {
    own: &'static str,
    other: &'static str,
    /// Held so that the streams' connection lives as long as the watch.
    _client: SecretDiscoveryServiceClient<Channel>,
    /// Each stream with the first response it received.
    streams: Vec<(EnvoyStream, DiscoveryResponse)>,
}

impl SdsWatch {
    /// Opens both streams on `this` agent and ACKs their first responses, which must carry
    /// `other_roots`, the other domain's roots at that moment.
    async fn open(this: &Domain, other: &Domain, other_roots: &[Vec<u8>]) -> Self {
        let mut client = sds::sds_client(&this.agent).await;
        let by_id = format!("spiffe://{}", other.trust_domain);
        let mut streams = Vec::new();
        for name in [by_id.as_str(), "ALL"] {
            let (stream, first) = sds::open_acked(&mut client, &[name]).await;
            assert_eq!(
                sds::sds_roots(&first, name, other.trust_domain).as_deref(),
                Some(other_roots),
                "{name} on {}'s agent before the rotation",
                this.trust_domain
            );
            streams.push((stream, first));
        }
        let watch = Self {
            own: this.trust_domain,
            other: other.trust_domain,
            _client: client,
            streams,
        };
        watch.assert_all_lists_both();
        watch
    }

    /// `ALL` lists the own trust domain and the federated one, and nothing else.
    fn assert_all_lists_both(&self) {
        for (stream, first) in &self.streams {
            if stream.names == ["ALL"] {
                let mut listed = sds::sds_trust_domains(first, "ALL");
                listed.sort();
                let mut expected = vec![self.own.to_owned(), self.other.to_owned()];
                expected.sort();
                assert_eq!(listed, expected, "ALL on {}'s agent", self.own);
            }
        }
    }

    /// Waits on every stream for a new response (each one read is ACKed) whose validation
    /// context holds exactly `roots` for the other trust domain.
    async fn reaches(&mut self, roots: &[Vec<u8>]) {
        for (stream, first) in &mut self.streams {
            let name = stream.names[0].clone();
            let what = format!("{}'s new root in {name}", self.other);
            let response = sds::next_acked_matching(stream, &what, |response| {
                sds::sds_roots(response, &name, self.other).as_deref() == Some(roots)
            })
            .await;
            assert_ne!(
                response.version_info, first.version_info,
                "{what}: a new version"
            );
            assert_ne!(response.nonce, first.nonce, "{what}: a new nonce");
        }
    }
}

/// One mTLS handshake between the SVIDs of two X509Sources, authenticated and authorized by
/// spiffe-rustls (each side accepts the other's trust domain). Returns each side's view:
/// the peer's SPIFFE ID, or why the handshake failed there.
async fn handshake(
    client: &X509Source,
    client_trusts: &str,
    server: &X509Source,
    server_trusts: &str,
) -> (io::Result<String>, io::Result<String>) {
    let client_config = spiffe_rustls::mtls_client(client.clone())
        .authorize(spiffe_rustls::trust_domains([client_trusts]).unwrap())
        .build()
        .unwrap();
    let server_config = spiffe_rustls::mtls_server(server.clone())
        .authorize(spiffe_rustls::trust_domains([server_trusts]).unwrap())
        .build()
        .unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    // spiffe-rustls authenticates the URI SAN; the server name is not checked.
    let name = ServerName::try_from("workload").unwrap();
    let (client_side, server_side) = tokio::join!(
        TlsConnector::from(Arc::new(client_config)).connect(name, client_io),
        TlsAcceptor::from(Arc::new(server_config)).accept(server_io),
    );
    let peer = |certs: Option<&[rustls::pki_types::CertificateDer<'_>]>| {
        let leaf = certs.and_then(<[_]>::first).expect("a peer certificate");
        leaf_spiffe_id(leaf.as_ref()).unwrap()
    };
    (
        client_side.map(|tls| peer(tls.get_ref().1.peer_certificates())),
        server_side.map(|tls| peer(tls.get_ref().1.peer_certificates())),
    )
}

/// True when this side itself refused the handshake (rather than being told so by an alert).
fn refused_here(result: &io::Result<String>) -> bool {
    let Err(error) = result else {
        return false;
    };
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    !matches!(rustls_error, Some(rustls::Error::AlertReceived(_)) | None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_in_two_trust_domains_trust_each_other() {
    init_logging();
    let clock: SharedClock = Arc::new(SystemClock);
    let example = Domain::start(EXAMPLE, clock.clone(), "").await;
    let federated = Domain::start(FEDERATED, clock, "").await;
    federate(&example, &federated).await;

    // Each refresher fetched the other's bundle through its https_spiffe endpoint (the
    // document's hint replaced the bootstrapped copy's).
    for (this, other) in [(&example, &federated), (&federated, &example)] {
        spire_integration_tests::eventually("a bundle fetched from the endpoint", || async {
            let stored = this
                .server
                .federated_bundle(other.trust_domain)
                .await
                .ok()??;
            (stored.refresh_hint == REFRESH_HINT_SECS).then_some(())
        })
        .await
        .unwrap();
    }

    // Each workload receives the other domain's X.509 and JWT bundles.
    for (this, other) in [(&example, &federated), (&federated, &example)] {
        let other_bundle = other.server.bundle().await.unwrap();
        let client = this.agent.workload().await.unwrap();
        fetch_context_eventually(&client).await;
        let mut contexts = client.stream_x509_contexts().await.unwrap();
        let context = next_matching(&mut contexts, "the federated X.509 bundle", |c| {
            context_roots(c, other.trust_domain).is_some()
        })
        .await
        .unwrap();
        assert_eq!(
            context_roots(&context, other.trust_domain).unwrap(),
            x509_roots(&other_bundle)
        );
        assert_eq!(
            context.default_svid().unwrap().spiffe_id().to_string(),
            this.workload_id()
        );

        let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
        let other_jwt = jwt_bundles
            .get(&td(other.trust_domain))
            .expect("the federated JWT bundle");
        assert!(!other_bundle.jwt_authorities.is_empty());
        for key in &other_bundle.jwt_authorities {
            assert!(
                other_jwt.find_jwt_authority(&key.key_id).is_some(),
                "JWT key {} of {}",
                key.key_id,
                other.trust_domain
            );
        }
    }

    // mTLS between the two workloads' SVIDs, judged by spiffe-rustls, both ways.
    let example_source = X509Source::builder()
        .endpoint(example.agent.workload_uri())
        .build()
        .await
        .unwrap();
    let federated_source = X509Source::builder()
        .endpoint(federated.agent.workload_uri())
        .build()
        .await
        .unwrap();
    let (client, server) = handshake(&example_source, FEDERATED, &federated_source, EXAMPLE).await;
    assert_eq!(client.unwrap(), federated.workload_id());
    assert_eq!(server.unwrap(), example.workload_id());
    let (client, server) = handshake(&federated_source, EXAMPLE, &example_source, FEDERATED).await;
    assert_eq!(client.unwrap(), example.workload_id());
    assert_eq!(server.unwrap(), federated.workload_id());

    // example.org stops trusting example-federated.org: `bundle delete -mode delete` also
    // deletes the entry federating with it, so the workload keeps an identity through a
    // second, unfederated entry.
    let plain = "spiffe://example.org/plain";
    example
        .server
        .create_entry(entry(plain, &example.agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    example
        .server
        .delete_federated_bundle(FEDERATED, Mode::Delete)
        .await
        .unwrap();
    assert!(
        example
            .server
            .federated_bundle(FEDERATED)
            .await
            .unwrap()
            .is_none()
    );
    source_reaches(
        &example_source,
        "the agent to drop the deleted bundle",
        |c| {
            context_roots(c, FEDERATED).is_none()
                && c.svids().iter().all(|s| s.spiffe_id().to_string() == plain)
        },
    )
    .await;
    let (client, _) = handshake(&example_source, FEDERATED, &federated_source, EXAMPLE).await;
    assert!(
        refused_here(&client),
        "the example.org client must refuse the federated server: {client:?}"
    );
    let (_, server) = handshake(&federated_source, EXAMPLE, &example_source, FEDERATED).await;
    assert!(
        refused_here(&server),
        "the example.org server must refuse the federated client: {server:?}"
    );

    example_source.shutdown().await;
    federated_source.shutdown().await;
    example.stop().await;
    federated.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_reaches_the_other_domain_through_the_refresher() {
    init_logging();
    // One manual clock for both domains. With 20-minute CAs, every certificate (capped at
    // its CA's end) is still valid 11 minutes later, when both CAs have prepared their next
    // authority and published its root.
    let (clock, shared) = manual_clock();
    let example = Domain::start(EXAMPLE, shared.clone(), "ca_ttl = \"20m\"").await;
    let federated = Domain::start(FEDERATED, shared, "ca_ttl = \"20m\"").await;
    federate(&example, &federated).await;

    let mut streams = Vec::new();
    for (this, other) in [(&example, &federated), (&federated, &example)] {
        let client = this.agent.workload().await.unwrap();
        fetch_context_eventually(&client).await;
        let mut contexts = client.stream_x509_contexts().await.unwrap();
        next_matching(&mut contexts, "the federated X.509 bundle", |c| {
            context_roots(c, other.trust_domain).is_some()
        })
        .await
        .unwrap();
        streams.push((client, contexts));
    }
    let before = [
        x509_roots(&example.server.bundle().await.unwrap()),
        x509_roots(&federated.server.bundle().await.unwrap()),
    ];
    // Each domain's Envoy follows the other's bundle, by ID and through `ALL`.
    let mut example_envoy = SdsWatch::open(&example, &federated, &before[1]).await;
    let mut federated_envoy = SdsWatch::open(&federated, &example, &before[0]).await;

    clock.advance(Duration::from_secs(11 * 60));
    // The CA managers look at the clock every 10 s.
    let mut rotated = Vec::new();
    for (server, before) in [
        (&example.server, &before[0]),
        (&federated.server, &before[1]),
    ] {
        let after = spire_integration_tests::eventually("a prepared CA root", || async {
            let roots = x509_roots(&server.bundle().await.ok()?);
            (roots.len() > before.len()).then_some(roots)
        })
        .await
        .unwrap();
        rotated.push(after);
    }
    let [example_after, federated_after] = [rotated[0].clone(), rotated[1].clone()];

    // example.org asks for example-federated.org's bundle now (RefreshBundle), until the
    // endpoint serves the new root (it follows its server's change feed, within a second).
    let stored =
        spire_integration_tests::eventually("the new root through RefreshBundle", || async {
            example.server.refresh_bundle(FEDERATED).await.ok()?;
            let stored = example.server.federated_bundle(FEDERATED).await.ok()??;
            (x509_roots(&stored) == federated_after).then_some(stored)
        })
        .await
        .unwrap();
    // Its workload sees the new root on its open stream, and the JWT keys that came with it.
    let (example_client, example_stream) = &mut streams[0];
    next_matching(example_stream, "example-federated.org's new root", |c| {
        context_roots(c, FEDERATED).as_ref() == Some(&federated_after)
    })
    .await
    .unwrap();
    let jwt_bundles = example_client.fetch_jwt_bundles().await.unwrap();
    let federated_jwt = jwt_bundles.get(&td(FEDERATED)).unwrap();
    for key in &stored.jwt_authorities {
        assert!(federated_jwt.find_jwt_authority(&key.key_id).is_some());
    }
    // Its Envoy receives the new root on both open SDS streams.
    example_envoy.reaches(&federated_after).await;

    // example-federated.org is not asked: its scheduled poll (every 15 s) delivers
    // example.org's new root to its workload.
    let (_, federated_stream) = &mut streams[1];
    next_matching(
        federated_stream,
        "example.org's new root, by schedule",
        |c| context_roots(c, EXAMPLE).as_ref() == Some(&example_after),
    )
    .await
    .unwrap();
    federated_envoy.reaches(&example_after).await;

    drop((streams, example_envoy, federated_envoy));
    example.stop().await;
    federated.stop().await;
}
