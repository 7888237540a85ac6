//! An SDS client that behaves like Istio's Envoy (node with metadata and build version, one
//! stream per resource name, the node on the first message only, an ACK with version and nonce
//! for every response) and decoders for what it receives. Needs only `envoy-types`, `prost`,
//! `tonic`, `tokio` and `tokio-stream`, so other crates' tests include it by `#[path]`
//! (`bin/spire-agent/tests/sds_istio.rs` runs it against the real agent binary).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{BuildVersion, Node};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

pub const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

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
