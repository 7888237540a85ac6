//! From a cache update and the requested resource names to `Secret` resources (compat §5.2,
//! §5.3).
//!
//! Each encoded `Secret` is memoised on the update ([`WorkloadUpdate::memo`]) under what
//! determines its bytes (kind, resource name, validator mode), so every stream that sends
//! the same update shares one encoding.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::{DataSource, TypedExtensionConfig};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::spiffe_cert_validator_config::TrustDomain as ValidatorTrustDomain;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, SpiffeCertValidatorConfig, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use spire_agent_cache::{Identity, WorkloadUpdate};
use spire_id::TrustDomain;
use spire_svid::Bundle;

use crate::{Error, Result, SdsConfig, ValidatorMode};

/// The name of Envoy's SPIFFE certificate validator extension.
pub const SPIFFE_VALIDATOR_NAME: &str = "envoy.tls.cert_validator.spiffe";

/// The `Secret` resources answering `names` for a caller whose state is `update`, in SPIRE's
/// order: the own trust domain's context (one of own TD ID, `default_bundle_name`,
/// `default_all_bundles_name`: the first that was asked), federated contexts by trust domain,
/// then TLS certificates by entry ID. Empty `names` return every identity and trust domain.
///
/// Fails with [`Error::NotAuthorized`] naming whatever was asked but not served, and with
/// [`Error::SpiffeValidatorUnsupported`] for `default_all_bundles_name` in
/// [`ValidatorMode::TrustedCa`].
pub fn resources(
    config: &SdsConfig,
    names: &[String],
    mode: ValidatorMode,
    update: &WorkloadUpdate,
) -> Result<Vec<Arc<Any>>> {
    let encoded = update.memo(|_| Encoded::default());
    let all = names.is_empty();
    let mut wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut out = Vec::new();

    let own_id = update.bundle.trust_domain.id_string();
    // One switch in SPIRE: only the first matching alternative is served.
    if all || wanted.contains(own_id.as_str()) {
        out.push(
            encoded.get(Key::one(&own_id, &update.bundle.trust_domain, mode), || {
                one_context(&own_id, &update.bundle, mode)
            })?,
        );
        wanted.remove(own_id.as_str());
    } else if wanted.contains(config.default_bundle_name.as_str()) {
        let name = &config.default_bundle_name;
        out.push(
            encoded.get(Key::one(name, &update.bundle.trust_domain, mode), || {
                one_context(name, &update.bundle, mode)
            })?,
        );
        wanted.remove(name.as_str());
    } else if wanted.contains(config.default_all_bundles_name.as_str()) {
        let name = &config.default_all_bundles_name;
        out.push(encoded.get(Key::All(name.clone(), mode), || {
            all_context(name, update, mode)
        })?);
        wanted.remove(name.as_str());
    }

    for (td, bundle) in &update.federated_bundles {
        let id = td.id_string();
        if all || wanted.contains(id.as_str()) {
            out.push(encoded.get(Key::one(&id, td, mode), || one_context(&id, bundle, mode))?);
            wanted.remove(id.as_str());
        }
    }

    for (index, identity) in update.identities.iter().enumerate() {
        let id = identity.entry.spiffe_id.to_string();
        if all || wanted.contains(id.as_str()) {
            out.push(encoded.get(Key::Tls(index, id.clone()), || {
                Ok(tls_certificate(&id, identity))
            })?);
            wanted.remove(id.as_str());
        } else if index == 0 && wanted.contains(config.default_svid_name.as_str()) {
            let name = &config.default_svid_name;
            out.push(encoded.get(Key::Tls(index, name.clone()), || {
                Ok(tls_certificate(name, identity))
            })?);
            wanted.remove(name.as_str());
        }
    }

    if !wanted.is_empty() {
        return Err(Error::NotAuthorized(
            wanted.into_iter().map(str::to_owned).collect(),
        ));
    }
    Ok(out)
}

/// A TLS certificate secret: the PEM chain (leaf first) and the PKCS#8 key as PEM.
pub fn tls_certificate(name: &str, identity: &Identity) -> Any {
    let chain = spire_svid::encode_certificates_pem(identity.svid.chain.iter().map(Vec::as_slice));
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let key = pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", identity.svid.private_key.clone()),
        config,
    );
    pack_any(Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(chain.into_bytes())),
            private_key: Some(inline(key.into_bytes())),
            ..TlsCertificate::default()
        })),
    })
}

/// The validation context of one trust domain.
fn one_context(name: &str, bundle: &Bundle, mode: ValidatorMode) -> Result<Any> {
    let context = match mode {
        ValidatorMode::TrustedCa => CertificateValidationContext {
            trusted_ca: Some(inline(bundle.x509_authorities_pem().into_bytes())),
            ..CertificateValidationContext::default()
        },
        ValidatorMode::Spiffe => spiffe_validator([bundle]),
    };
    Ok(context_secret(name, context))
}

/// One SPIFFE-validator context with the own and every federated trust domain of the update.
fn all_context(name: &str, update: &WorkloadUpdate, mode: ValidatorMode) -> Result<Any> {
    if mode == ValidatorMode::TrustedCa {
        return Err(Error::SpiffeValidatorUnsupported);
    }
    let mut bundles: Vec<&Bundle> = std::iter::once(update.bundle.as_ref())
        .chain(update.federated_bundles.values().map(Arc::as_ref))
        .collect();
    bundles.sort_by(|a, b| a.trust_domain.name().cmp(b.trust_domain.name()));
    Ok(context_secret(name, spiffe_validator(bundles)))
}

fn spiffe_validator<'a>(
    bundles: impl IntoIterator<Item = &'a Bundle>,
) -> CertificateValidationContext {
    let trust_domains = bundles
        .into_iter()
        .map(|bundle| ValidatorTrustDomain {
            name: bundle.trust_domain.name().to_owned(),
            trust_bundle: Some(inline(bundle.x509_authorities_pem().into_bytes())),
            ..ValidatorTrustDomain::default()
        })
        .collect();
    CertificateValidationContext {
        custom_validator_config: Some(TypedExtensionConfig {
            name: SPIFFE_VALIDATOR_NAME.to_owned(),
            typed_config: Some(pack_any(SpiffeCertValidatorConfig {
                trust_domains,
                ..SpiffeCertValidatorConfig::default()
            })),
        }),
        ..CertificateValidationContext::default()
    }
}

fn context_secret(name: &str, context: CertificateValidationContext) -> Any {
    pack_any(Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::ValidationContext(context)),
    })
}

fn inline(bytes: Vec<u8>) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineBytes(bytes)),
        ..DataSource::default()
    }
}

// === Encoded (the per-update memo) ===

/// What determines one encoded secret of an update.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Identity at this index, under this resource name.
    Tls(usize, String),
    /// One trust domain's context under this resource name.
    One(String, TrustDomain, ValidatorMode),
    /// The all-bundles context under this resource name.
    All(String, ValidatorMode),
}

impl Key {
    fn one(name: &str, td: &TrustDomain, mode: ValidatorMode) -> Self {
        Self::One(name.to_owned(), td.clone(), mode)
    }
}

/// The secrets of one update encoded so far (failures are cached too).
#[derive(Debug, Default)]
struct Encoded {
    secrets: Mutex<HashMap<Key, Result<Arc<Any>>>>,
}

impl Encoded {
    fn get(&self, key: Key, build: impl FnOnce() -> Result<Any>) -> Result<Arc<Any>> {
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets
            .entry(key)
            .or_insert_with(|| build().map(Arc::new))
            .clone()
    }
}
