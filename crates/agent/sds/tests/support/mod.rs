//! Shared test setup: test CAs, SVIDs minted under them, a real agent cache, the public
//! endpoint serving SDS in-process, and an SDS client that behaves like Istio's Envoy.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{BuildVersion, Node};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use prost::Message as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use spire_agent_cache::{Cache, CacheConfig, Entry, IssuedSvid};
use spire_agent_sds::{SdsConfig, SdsService};
use spire_agent_workload::{Endpoint, EndpointConfig, UnixAttestor, UnixConfig, WorkloadAttestor};
use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_svid::{Bundle, X509Authority};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

pub const TRUST_DOMAIN: &str = "example.org";
pub const FEDERATED: &str = "other.org";
pub const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// A self-signed test CA for one trust domain.
pub struct TestCa {
    pub trust_domain: TrustDomain,
    pub root_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        Self::for_domain(TRUST_DOMAIN)
    }

    pub fn for_domain(td: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::OrganizationName, "SPIFFE");
        params
            .subject_alt_names
            .push(SanType::URI(format!("spiffe://{td}").try_into().unwrap()));
        let cert = params.self_signed(&key).unwrap();
        Self {
            trust_domain: TrustDomain::new(td).unwrap(),
            root_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// This CA's trust domain bundle.
    pub fn bundle(&self) -> Bundle {
        let mut bundle = Bundle::new(self.trust_domain.clone());
        bundle.x509_authorities.push(X509Authority {
            asn1: self.root_der.clone(),
            tainted: false,
        });
        bundle
    }

    /// An X509-SVID for `spiffe_id` (SPIRE's workload profile, `CN` = `dns` when given).
    pub fn mint(&self, spiffe_id: &SpiffeId) -> IssuedSvid {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "SPIRE");
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.to_string().try_into().unwrap()));
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        IssuedSvid {
            chain: vec![cert.der().to_vec()],
            private_key: key.serialize_der(),
            not_before,
            not_after,
        }
    }
}

pub fn trust_domain() -> TrustDomain {
    TrustDomain::new(TRUST_DOMAIN).unwrap()
}

pub fn workload_id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TRUST_DOMAIN}/{path}")).unwrap()
}

/// `unix:uid:<effective uid of this process>`, what the unix attestor finds for the tests.
pub fn my_uid_selector() -> Selector {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    Selector::new("unix", &format!("uid:{uid}")).unwrap()
}

pub fn entry(id: &str, path: &str, selectors: &[Selector]) -> Entry {
    Entry {
        id: id.to_owned(),
        spiffe_id: workload_id(path),
        parent_id: workload_id("spire/agent/test"),
        selectors: selectors.iter().cloned().collect::<SelectorSet>(),
        federates_with: Vec::new(),
        dns_names: Vec::new(),
        hint: String::new(),
        revision_number: 1,
        created_at: 1_700_000_000,
        x509_svid_ttl: 0,
        store_svid: false,
        admin: false,
        downstream: false,
    }
}

/// An entry for this process that federates with `tds`.
pub fn federated_entry(id: &str, path: &str, tds: &[&str]) -> Entry {
    let mut entry = entry(id, path, &[my_uid_selector()]);
    entry.federates_with = tds.iter().map(|td| TrustDomain::new(td).unwrap()).collect();
    entry
}

pub fn cache(ca: &TestCa) -> Cache {
    Cache::new(
        CacheConfig {
            trust_domain: trust_domain(),
            x509_svid_cache_max_size: 1000,
        },
        ca.bundle(),
    )
}

/// Sets the cache's entries and mints an SVID for each.
pub fn set_entries(cache: &Cache, ca: &TestCa, entries: Vec<Entry>) {
    let svids = entries
        .iter()
        .map(|e| (e.id.clone(), ca.mint(&e.spiffe_id)))
        .collect();
    cache.update_entries(entries);
    cache.store_svids(svids);
}

/// Adds `federated`'s bundle to the cache next to the own one.
pub fn add_federated(cache: &Cache, own: &TestCa, federated: &TestCa) {
    let map: BTreeMap<TrustDomain, Bundle> =
        [(federated.trust_domain.clone(), federated.bundle())].into();
    cache.update_bundles(own.bundle(), map);
}

/// The public endpoint with SDS on a socket in a temporary directory; stops on drop.
pub struct Served {
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl Served {
    pub async fn client(&self) -> SecretDiscoveryServiceClient<Channel> {
        let channel =
            tonic::transport::Endpoint::try_from(format!("unix://{}", self.socket.display()))
                .unwrap()
                .connect()
                .await
                .unwrap();
        SecretDiscoveryServiceClient::new(channel)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

pub fn serve(cache: &Cache, config: SdsConfig) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("workload-spiffe-uds/socket");
    let (stop, stopped) = watch::channel(false);
    let attestors: Vec<Arc<dyn WorkloadAttestor>> =
        vec![Arc::new(UnixAttestor::new(UnixConfig::default()))];
    let sds = SdsService::new(cache.clone(), attestors.clone(), config, stopped.clone());
    let endpoint = Endpoint::bind(EndpointConfig {
        socket_path: socket.clone(),
        allow_unauthenticated_verifiers: false,
    })
    .unwrap()
    .with_routes(&[SdsService::NAME], sds.into_routes());
    let cache = cache.clone();
    tokio::spawn(async move { endpoint.serve(cache, attestors, stopped).await.unwrap() });
    Served {
        socket,
        _dir: dir,
        stop,
    }
}

/// A node as Istio's Envoy sends it: id, cluster, metadata, structured build version.
pub fn envoy_node(version: (u32, u32), metadata: &[(&str, Kind)]) -> Node {
    Node {
        id: "sidecar~10.0.0.1~sleep-1.default~default.svc.cluster.local".into(),
        cluster: "sleep.default".into(),
        metadata: Some(Struct {
            fields: metadata
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        Value {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .chain([(
                    "ISTIO_VERSION".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue("1.24.0".into())),
                    },
                )])
                .collect(),
        }),
        user_agent_name: "envoy".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
            version: Some(SemanticVersion {
                major_number: version.0,
                minor_number: version.1,
                patch: 2,
            }),
            metadata: None,
        })),
        ..Node::default()
    }
}

pub fn request(node: Option<Node>, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        node,
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        type_url: SECRET_TYPE_URL.into(),
        ..DiscoveryRequest::default()
    }
}

/// One `StreamSecrets` stream as Istio's Envoy runs it: the node on the first message only,
/// and (through [`EnvoyStream::next_acked`]) an ACK with version and nonce for every response.
pub struct EnvoyStream {
    pub names: Vec<String>,
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl EnvoyStream {
    /// Opens the stream and sends the first request (with `node`).
    pub async fn open(
        client: &mut SecretDiscoveryServiceClient<Channel>,
        node: Node,
        names: &[&str],
    ) -> Result<Self, tonic::Status> {
        let (tx, rx) = mpsc::channel(8);
        tx.send(request(Some(node), names)).await.unwrap();
        let responses = client
            .stream_secrets(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            tx,
            responses,
        })
    }

    /// The next response, or the status that ended the stream.
    pub async fn next(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        match self.responses.message().await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(tonic::Status::ok("stream ended")),
            Err(status) => Err(status),
        }
    }

    /// The next response, ACKed as Envoy does (no node, same names, its version and nonce).
    pub async fn next_acked(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        let response = self.next().await?;
        self.ack(&response).await;
        Ok(response)
    }

    pub async fn ack(&self, response: &DiscoveryResponse) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let mut ack = request(None, &names);
        ack.version_info = response.version_info.clone();
        ack.response_nonce = response.nonce.clone();
        self.send(ack).await;
    }

    pub async fn send(&self, request: DiscoveryRequest) {
        self.tx.send(request).await.unwrap();
    }
}

/// The secrets of a response, decoded.
pub fn secrets(response: &DiscoveryResponse) -> Vec<Secret> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, SECRET_TYPE_URL);
            Secret::decode(any.value.as_slice()).unwrap()
        })
        .collect()
}

/// Names of secrets, with `tls:`/`ctx:` by kind.
pub fn kinds(secrets: &[Secret]) -> Vec<String> {
    secrets
        .iter()
        .map(|s| match &s.r#type {
            Some(secret::Type::TlsCertificate(_)) => format!("tls:{}", s.name),
            Some(secret::Type::ValidationContext(_)) => format!("ctx:{}", s.name),
            other => panic!("unexpected secret type {other:?}"),
        })
        .collect()
}

/// What a validation context holds: `("spiffe", [(td, pem)])` or `("trusted_ca", [("", pem)])`.
pub fn context(secret: &Secret) -> (&'static str, Vec<(String, String)>) {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SpiffeCertValidatorConfig;
    let Some(secret::Type::ValidationContext(context)) = &secret.r#type else {
        panic!("not a validation context: {secret:?}");
    };
    let text = |source: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>| match source
        .as_ref()
        .and_then(|s| s.specifier.as_ref())
    {
        Some(Specifier::InlineBytes(bytes)) => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("not inline bytes: {other:?}"),
    };
    if let Some(custom) = &context.custom_validator_config {
        assert_eq!(custom.name, "envoy.tls.cert_validator.spiffe");
        assert!(context.trusted_ca.is_none());
        let any = custom.typed_config.as_ref().unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
        );
        let config = SpiffeCertValidatorConfig::decode(any.value.as_slice()).unwrap();
        let tds = config
            .trust_domains
            .iter()
            .map(|td| (td.name.clone(), text(&td.trust_bundle)))
            .collect();
        ("spiffe", tds)
    } else {
        (
            "trusted_ca",
            vec![(String::new(), text(&context.trusted_ca))],
        )
    }
}

/// The PEM chain and key of a TLS certificate secret.
pub fn tls(secret: &Secret) -> (String, String) {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    let Some(secret::Type::TlsCertificate(cert)) = &secret.r#type else {
        panic!("not a TLS certificate: {secret:?}");
    };
    let text = |source: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>| match source
        .as_ref()
        .and_then(|s| s.specifier.as_ref())
    {
        Some(Specifier::InlineBytes(bytes)) => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("not inline bytes: {other:?}"),
    };
    (text(&cert.certificate_chain), text(&cert.private_key))
}

/// PEM of DER certificates, as the agent encodes them.
pub fn pem_of(ders: &[&[u8]]) -> String {
    spire_svid::encode_certificates_pem(ders.iter().copied())
}
