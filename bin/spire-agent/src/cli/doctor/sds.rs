//! The SDS side of `doctor`: an Envoy-like `FetchSecrets` and what the answer's `Secret`s hold.

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{BuildVersion, DataSource, Node};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, SpiffeCertValidatorConfig,
};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use prost::Message as _;
use tonic::Status;
use tonic::transport::Channel;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// The `type_url` Envoy sends for secrets.
pub(super) const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// What the `default` secret carried.
#[derive(Debug)]
pub(super) struct Svid {
    pub(super) chain: Vec<Vec<u8>>,
    pub(super) spiffe_id: String,
    pub(super) trust_domain: String,
    pub(super) not_before: i64,
    pub(super) not_after: i64,
}

/// Roots a validation context carries: per trust domain (SPIFFE validator) or one plain set.
#[derive(Debug)]
pub(super) enum Roots {
    PerTrustDomain(BTreeMap<String, Vec<Vec<u8>>>),
    Plain(Vec<Vec<u8>>),
}

/// `spiffe://example.org` or `example.org` → `example.org`.
pub(super) fn td_name(td: &str) -> &str {
    td.strip_prefix("spiffe://")
        .unwrap_or(td)
        .trim_end_matches('/')
}

/// The node an Istio Envoy sends (≥ 1.18, so SPIFFE validator contexts are allowed).
fn envoy_node() -> Node {
    Node {
        id: "spire-agent-doctor".to_owned(),
        cluster: "spire-agent-doctor".to_owned(),
        user_agent_name: "envoy".to_owned(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
            version: Some(SemanticVersion {
                major_number: 1,
                minor_number: 30,
                patch: 0,
            }),
            metadata: None,
        })),
        ..Node::default()
    }
}

/// `FetchSecrets` for one name; the one `Secret` of the answer.
pub(super) async fn fetch(
    sds: &mut SecretDiscoveryServiceClient<Channel>,
    name: &str,
    timeout: Duration,
) -> Result<Secret, Status> {
    let request = DiscoveryRequest {
        node: Some(envoy_node()),
        resource_names: vec![name.to_owned()],
        type_url: SECRET_TYPE_URL.to_owned(),
        ..DiscoveryRequest::default()
    };
    let response = tokio::time::timeout(timeout, sds.fetch_secrets(request))
        .await
        .map_err(|_| Status::deadline_exceeded("context deadline exceeded"))??
        .into_inner();
    let any = response
        .resources
        .into_iter()
        .next()
        .ok_or_else(|| Status::not_found(format!("no secret named {name:?} in the answer")))?;
    Secret::decode(any.value.as_slice())
        .map_err(|e| Status::internal(format!("cannot decode the Secret: {e}")))
}

fn inline_bytes(source: Option<&DataSource>) -> Option<&[u8]> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::InlineBytes(bytes)) => Some(bytes),
        Some(Specifier::InlineString(text)) => Some(text.as_bytes()),
        _ => None,
    }
}

/// The DER certificates of a PEM text.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("invalid PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    Ok(certs)
}

pub(super) fn parse_svid(secret: &Secret) -> Result<Svid, String> {
    let Some(SecretType::TlsCertificate(tls)) = &secret.r#type else {
        return Err("the `default` secret holds no TLS certificate".to_owned());
    };
    if inline_bytes(tls.private_key.as_ref()).is_none_or(<[u8]>::is_empty) {
        return Err("the `default` secret holds no private key".to_owned());
    }
    let chain = pem_certificates(inline_bytes(tls.certificate_chain.as_ref()).unwrap_or(&[]))?;
    let leaf = chain
        .first()
        .ok_or_else(|| "the `default` secret holds no certificate".to_owned())?;
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|e| format!("invalid certificate: {e}"))?;
    let spiffe_id = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
                _ => None,
            })
        })
        .ok_or_else(|| "the certificate has no SPIFFE ID (URI SAN)".to_owned())?;
    let trust_domain = td_name(&spiffe_id)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    Ok(Svid {
        chain,
        spiffe_id,
        trust_domain,
        not_before,
        not_after,
    })
}

pub(super) fn parse_roots(secret: &Secret) -> Result<Roots, String> {
    let Some(SecretType::ValidationContext(context)) = &secret.r#type else {
        return Err("the `ROOTCA` secret holds no validation context".to_owned());
    };
    roots_of(context)
}

fn roots_of(context: &CertificateValidationContext) -> Result<Roots, String> {
    if let Some(custom) = &context.custom_validator_config {
        let config = custom
            .typed_config
            .as_ref()
            .map(|any| SpiffeCertValidatorConfig::decode(any.value.as_slice()))
            .transpose()
            .map_err(|e| format!("cannot decode the SPIFFE validator config: {e}"))?
            .unwrap_or_default();
        let mut roots = BTreeMap::new();
        for td in &config.trust_domains {
            let certs = pem_certificates(inline_bytes(td.trust_bundle.as_ref()).unwrap_or(&[]))?;
            roots.insert(td.name.clone(), certs);
        }
        if roots.is_empty() {
            return Err("the SPIFFE validator lists no trust domain".to_owned());
        }
        return Ok(Roots::PerTrustDomain(roots));
    }
    let certs = pem_certificates(inline_bytes(context.trusted_ca.as_ref()).unwrap_or(&[]))?;
    if certs.is_empty() {
        return Err("the validation context holds no root certificate".to_owned());
    }
    Ok(Roots::Plain(certs))
}

// === impl Roots ===

impl Roots {
    pub(super) fn describe(&self) -> String {
        match self {
            Self::PerTrustDomain(map) => format!(
                "SPIFFE validator for {}",
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            Self::Plain(certs) => format!("trusted_ca with {} root(s)", certs.len()),
        }
    }

    /// The roots for `td`, if this context has them.
    pub(super) fn for_trust_domain(&self, td: &str) -> Option<&[Vec<u8>]> {
        match self {
            Self::PerTrustDomain(map) => map.get(td).map(Vec::as_slice),
            Self::Plain(certs) => Some(certs),
        }
    }
}
