//! `server { federation { … } }`: the bundle endpoint this server serves and the trust
//! domains it federates with statically. SPIRE's rules: a bundle endpoint without `profile`
//! is `https_spiffe` (deprecated; warned about at start), `https_web` needs exactly one of
//! `acme` and `serving_cert_file`, and every `federates_with` block needs an `https` URL and
//! a profile.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use spire_config::de::GoDuration;
use spire_config::server::{BundleEndpointSection, FederatesWithSection, FederationSection};
use spire_config::typed;
use spire_id::{SpiffeId, TrustDomain};
use spire_server_datastore::{BundleEndpointProfile, FederationRelationship};
use spire_server_federation::{DEFAULT_FILE_SYNC_INTERVAL, DEFAULT_REFRESH_HINT};

use crate::Error;

/// SPIRE's default `bundle_endpoint { address }`.
const DEFAULT_ADDRESS: &str = "0.0.0.0";
/// SPIRE's default `bundle_endpoint { port }`.
const DEFAULT_PORT: u16 = 443;

/// The resolved `federation { }` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FederationConfig {
    /// `bundle_endpoint { }`, when this server serves its bundle.
    pub bundle_endpoint: Option<BundleEndpointConfig>,
    /// `federates_with "<td>" { }`: static relationships, sorted by trust domain. They
    /// override dynamic ones (TrustDomain API) for the same trust domain.
    pub federates_with: Vec<FederationRelationship>,
}

/// `bundle_endpoint { address, port, refresh_hint, profile … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEndpointConfig {
    /// `address:port` (default `0.0.0.0:443`).
    pub address: SocketAddr,
    /// `refresh_hint` written into the served document (default 5 m).
    pub refresh_hint: Duration,
    /// What the endpoint presents.
    pub profile: EndpointProfile,
    /// True when no `profile` was given and `https_spiffe` was assumed (SPIRE deprecates
    /// this; the server warns at start).
    pub profile_defaulted: bool,
}

/// The bundle endpoint's profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointProfile {
    /// `profile "https_spiffe" {}`: the server's own X509-SVID.
    HttpsSpiffe,
    /// `profile "https_web" { serving_cert_file { … } }`.
    ServingCertFile {
        /// `cert_file_path`: PEM certificate chain.
        cert_file_path: PathBuf,
        /// `key_file_path`: PEM private key.
        key_file_path: PathBuf,
        /// `file_sync_interval` (default 1 h).
        file_sync_interval: Duration,
    },
}

/// `profile "https_web" { … }`.
#[derive(Deserialize)]
struct HttpsWebData {
    acme: Option<Value>,
    serving_cert_file: Option<ServingCertFileData>,
}

/// `serving_cert_file { … }`.
#[derive(Deserialize)]
struct ServingCertFileData {
    cert_file_path: Option<String>,
    key_file_path: Option<String>,
    file_sync_interval: Option<GoDuration>,
}

/// `bundle_endpoint_profile "https_spiffe" { … }`.
#[derive(Deserialize)]
struct HttpsSpiffeData {
    endpoint_spiffe_id: Option<String>,
}

/// A profile block with no settings.
#[derive(Deserialize)]
struct EmptyProfile {}

/// SPIRE's message for an ACME bundle endpoint, which spire-rs does not implement.
const ACME_UNSUPPORTED: &str = "federation.bundle_endpoint: profile \"https_web\" with \"acme\" is \
     not supported by spire-rs; use \"serving_cert_file\" (or profile \"https_spiffe\")";

// === impl FederationConfig ===

impl FederationConfig {
    /// Resolves `federation { }` (absent: nothing served, nothing federated).
    pub(crate) fn resolve(section: Option<&FederationSection>) -> Result<Self, Error> {
        let Some(section) = section else {
            return Ok(Self::default());
        };
        let bundle_endpoint = section
            .bundle_endpoint
            .as_ref()
            .map(BundleEndpointConfig::resolve)
            .transpose()?;
        let federates_with = section
            .federates_with
            .iter()
            .map(|(name, block)| relationship(name, block))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            bundle_endpoint,
            federates_with,
        })
    }
}

// === impl BundleEndpointConfig ===

impl BundleEndpointConfig {
    fn resolve(section: &BundleEndpointSection) -> Result<Self, Error> {
        if section.acme.is_some() {
            return Err(Error::Config(ACME_UNSUPPORTED.into()));
        }
        let address = section.address.as_deref().unwrap_or(DEFAULT_ADDRESS);
        let ip: IpAddr = address.parse().map_err(|_| {
            Error::Config(format!(
                "federation.bundle_endpoint.address {address:?} is not an IP address"
            ))
        })?;
        let port = section.port.map_or(DEFAULT_PORT, |p| p.0);
        let (profile, profile_defaulted) = match &section.profile {
            None => (EndpointProfile::HttpsSpiffe, true),
            Some(value) => (endpoint_profile(value)?, false),
        };
        Ok(Self {
            address: SocketAddr::new(ip, port),
            refresh_hint: section.refresh_hint.map_or(DEFAULT_REFRESH_HINT, |d| d.0),
            profile,
            profile_defaulted,
        })
    }
}

fn endpoint_profile(value: &Value) -> Result<EndpointProfile, Error> {
    const SECTION: &str = "federation.bundle_endpoint.profile";
    let (name, body) = labeled_block(SECTION, value)?;
    let section = format!("{SECTION}.{name}");
    match name {
        "https_spiffe" => {
            let _: EmptyProfile = typed(&section, body)?;
            Ok(EndpointProfile::HttpsSpiffe)
        }
        "https_web" => {
            let web: HttpsWebData = typed(&section, body)?;
            match (web.acme, web.serving_cert_file) {
                (Some(_), Some(_)) => Err(Error::Config(format!(
                    "{section}: only one of \"acme\" and \"serving_cert_file\" may be configured"
                ))),
                (Some(_), None) => Err(Error::Config(ACME_UNSUPPORTED.into())),
                (None, None) => Err(Error::Config(format!(
                    "{section}: one of \"acme\" or \"serving_cert_file\" must be configured"
                ))),
                (None, Some(files)) => {
                    let required = |value: Option<String>, key: &str| {
                        value
                            .filter(|v| !v.is_empty())
                            .map(PathBuf::from)
                            .ok_or_else(|| {
                                Error::Config(format!(
                                    "{section}.serving_cert_file.{key} must be set"
                                ))
                            })
                    };
                    Ok(EndpointProfile::ServingCertFile {
                        cert_file_path: required(files.cert_file_path, "cert_file_path")?,
                        key_file_path: required(files.key_file_path, "key_file_path")?,
                        file_sync_interval: files
                            .file_sync_interval
                            .map_or(DEFAULT_FILE_SYNC_INTERVAL, |d| d.0),
                    })
                }
            }
        }
        other => Err(Error::Config(format!(
            "{SECTION}: unknown bundle endpoint profile {other:?} (expected \"https_spiffe\" or \"https_web\")"
        ))),
    }
}

/// One `federates_with "<name>" { … }` block.
fn relationship(name: &str, block: &FederatesWithSection) -> Result<FederationRelationship, Error> {
    let section = format!("federation.federates_with[{name:?}]");
    let trust_domain = TrustDomain::new(name).map_err(|e| {
        Error::Config(format!(
            "{section}: {name:?} is not a valid trust domain name: {e}"
        ))
    })?;
    if block.bundle_endpoint.is_some() {
        return Err(Error::Config(format!(
            "{section}.bundle_endpoint is no longer supported; use bundle_endpoint_url and \
             bundle_endpoint_profile"
        )));
    }
    let url = block
        .bundle_endpoint_url
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::Config(format!("{section}.bundle_endpoint_url must be set")))?;
    if !url.starts_with("https://") {
        return Err(Error::Config(format!(
            "{section}.bundle_endpoint_url {url:?} must use the https scheme"
        )));
    }
    let profile = block.bundle_endpoint_profile.as_ref().ok_or_else(|| {
        Error::Config(format!(
            "{section}.bundle_endpoint_profile must be configured"
        ))
    })?;
    let profile_section = format!("{section}.bundle_endpoint_profile");
    let (profile_name, body) = labeled_block(&profile_section, profile)?;
    let profile_section = format!("{profile_section}.{profile_name}");
    let profile = match profile_name {
        "https_web" => {
            let _: EmptyProfile = typed(&profile_section, body)?;
            BundleEndpointProfile::HttpsWeb
        }
        "https_spiffe" => {
            let data: HttpsSpiffeData = typed(&profile_section, body)?;
            let id = data.endpoint_spiffe_id.unwrap_or_default();
            let endpoint_spiffe_id = SpiffeId::parse(&id).map_err(|e| {
                Error::Config(format!(
                    "{profile_section}.endpoint_spiffe_id {id:?} is not a valid SPIFFE ID: {e}"
                ))
            })?;
            BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id }
        }
        other => {
            return Err(Error::Config(format!(
                "{section}: unknown bundle endpoint profile {other:?} (expected \"https_spiffe\" or \"https_web\")"
            )));
        }
    };
    Ok(FederationRelationship {
        trust_domain,
        bundle_endpoint_url: url,
        profile,
        trust_domain_bundle: None,
    })
}

/// A block with exactly one label (`profile "https_web" { … }`): its label and its body
/// (an empty body may come out of the parser as null; it is read as `{}`).
fn labeled_block<'a>(section: &str, value: &'a Value) -> Result<(&'a str, Value), Error> {
    let Value::Object(map) = value else {
        return Err(Error::Config(format!(
            "{section}: expected a labeled block"
        )));
    };
    let mut blocks = map.iter();
    match (blocks.next(), blocks.next()) {
        (Some((name, body)), None) => {
            let body = match body {
                Value::Null => Value::Object(Map::new()),
                other => other.clone(),
            };
            Ok((name.as_str(), body))
        }
        (None, _) => Err(Error::Config(format!(
            "{section}: the profile name is missing"
        ))),
        (Some(_), Some(_)) => Err(Error::Config(format!(
            "{section}: only one profile may be configured"
        ))),
    }
}

#[cfg(test)]
mod tests;
