//! Envoy SDS v3 on an agent's public socket, spoken by the Istio-like client of
//! `spire-agent-sds`'s tests (included by path, as `bin/spire-agent`'s tests and the benches
//! do): streams opened and ACKed as Envoy runs them, and the roots their validation contexts
//! carry.

#[path = "../../../../crates/agent/sds/tests/support/envoy_client.rs"]
mod envoy_client;

pub(crate) use envoy_client::EnvoyStream;
use envoy_client::{context, envoy_node, secrets, tls};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use spire_integration_tests::{TestAgent, WAIT};
use tonic::transport::{Channel, Endpoint};

/// The Envoy version the streams announce: SPIFFE-validator contexts (Envoy ≥ 1.18).
const ENVOY_VERSION: (u32, u32) = (1, 30);

/// An SDS client on a new connection to `agent`'s public socket.
pub(crate) async fn sds_client(agent: &TestAgent) -> SecretDiscoveryServiceClient<Channel> {
    let channel = Endpoint::try_from(agent.workload_uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    SecretDiscoveryServiceClient::new(channel)
}

/// Opens one `StreamSecrets` stream for `names` as Envoy does (the node on the first
/// request only) and returns it with its first response, already ACKed.
pub(crate) async fn open_acked(
    client: &mut SecretDiscoveryServiceClient<Channel>,
    names: &[&str],
) -> (EnvoyStream, DiscoveryResponse) {
    let mut stream = EnvoyStream::open(client, envoy_node(ENVOY_VERSION, &[]), names)
        .await
        .unwrap_or_else(|s| panic!("opening SDS {names:?}: {s:?}"));
    let first = next_acked_matching(&mut stream, "the first response", |_| true).await;
    (stream, first)
}

/// The next response on `stream` for which `wanted` holds, within [`WAIT`]; every response
/// read on the way is ACKed (version and nonce), as Envoy does.
pub(crate) async fn next_acked_matching(
    stream: &mut EnvoyStream,
    what: &str,
    mut wanted: impl FnMut(&DiscoveryResponse) -> bool,
) -> DiscoveryResponse {
    let names = stream.names.clone();
    let search = async {
        loop {
            let response = stream
                .next_acked()
                .await
                .unwrap_or_else(|s| panic!("SDS {names:?}, {what}: {s:?}"));
            if wanted(&response) {
                return response;
            }
        }
    };
    tokio::time::timeout(WAIT, search)
        .await
        .unwrap_or_else(|_| panic!("SDS {names:?}: no {what} within {WAIT:?}"))
}

/// The DER roots that the validation context named `secret_name` in `response` holds for
/// `trust_domain` (a name without scheme, as the SPIFFE validator lists it); `None` when the
/// response has no such secret or the context does not list that trust domain.
pub(crate) fn sds_roots(
    response: &DiscoveryResponse,
    secret_name: &str,
    trust_domain: &str,
) -> Option<Vec<Vec<u8>>> {
    let secrets = secrets(response);
    let secret = secrets.iter().find(|s| s.name == secret_name)?;
    let (shape, trust_domains) = context(secret);
    assert_eq!(
        shape, "spiffe",
        "Envoy {ENVOY_VERSION:?} gets the SPIFFE validator"
    );
    let (_, pem_text) = trust_domains
        .into_iter()
        .find(|(name, _)| name == trust_domain)?;
    let roots = pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .map(pem::Pem::into_contents)
        .collect();
    Some(roots)
}

/// The trust domains (names without scheme) the validation context `secret_name` lists.
pub(crate) fn sds_trust_domains(response: &DiscoveryResponse, secret_name: &str) -> Vec<String> {
    secrets(response)
        .iter()
        .filter(|s| s.name == secret_name)
        .flat_map(|s| context(s).1)
        .map(|(name, _)| name)
        .collect()
}

/// The DER chain (leaf first) of the TLS certificate secret named `secret_name` in
/// `response`; `None` when the response has no such secret.
pub(crate) fn sds_chain(response: &DiscoveryResponse, secret_name: &str) -> Option<Vec<Vec<u8>>> {
    let secrets = secrets(response);
    let secret = secrets.iter().find(|s| s.name == secret_name)?;
    let (pem_text, _key) = tls(secret);
    Some(
        pem::parse_many(pem_text)
            .unwrap()
            .into_iter()
            .map(pem::Pem::into_contents)
            .collect(),
    )
}
