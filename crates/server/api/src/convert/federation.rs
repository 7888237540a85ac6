//! `spire.api.types.FederationRelationship` ⇄ [`FederationRelationship`], with SPIRE's checks
//! and messages: the trust domain, an `https` bundle endpoint URL with a host and no user
//! info, a profile (`https_web`, or `https_spiffe` with a parseable endpoint SPIFFE ID) and an
//! optional bundle that must belong to the relationship's trust domain.

use spire_id::{IdError, SpiffeId, TrustDomain};
use spire_proto::spire::api::types::{
    self, HttpsWebProfile, HttpsspiffeProfile,
    federation_relationship::BundleEndpointProfile as Profile,
};
use spire_server_datastore::{BundleEndpointProfile, FederationRelationship};

use super::bundle::{bundle_from_proto, bundle_to_proto};
use super::url::{GoUrl, UrlError};

/// Why a client's relationship was refused. The `Display` text is SPIRE's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelationshipError {
    /// The relationship's trust domain is malformed.
    #[error("failed to parse trust domain: {0}")]
    TrustDomain(IdError),
    /// Go's `url.Parse` refused the bundle endpoint URL.
    #[error("failed to parse bundle endpoint URL: {0}")]
    Url(String),
    /// The URL's scheme is not `https`.
    #[error("bundle endpoint URL must use the https scheme")]
    UrlScheme,
    /// The URL has no host.
    #[error("bundle endpoint URL must specify the host")]
    UrlHost,
    /// The URL carries user info.
    #[error("bundle endpoint URL must not contain user info")]
    UrlUserInfo,
    /// The `https_spiffe` endpoint SPIFFE ID is malformed.
    #[error("failed to parse endpoint SPIFFE ID: {0}")]
    EndpointId(IdError),
    /// Neither `https_web` nor `https_spiffe` is set (Go prints the nil interface's type).
    #[error("unsupported bundle endpoint profile type: <nil>")]
    NoProfile,
    /// The trust domain bundle does not convert.
    #[error("failed to parse bundle: {0}")]
    Bundle(super::Error),
    /// The trust domain bundle names another trust domain.
    #[error(
        "trust domain bundle (\"{bundle}\") must match the trust domain of the federation relationship (\"{relationship}\")"
    )]
    BundleMismatch {
        /// The bundle's trust domain as sent.
        bundle: String,
        /// The relationship's trust domain.
        relationship: TrustDomain,
    },
}

impl From<UrlError> for RelationshipError {
    fn from(e: UrlError) -> Self {
        Self::Url(e.to_string())
    }
}

/// The mask that keeps every field (SPIRE's default for a missing mask).
pub const ALL_RELATIONSHIP_FIELDS: types::FederationRelationshipMask =
    types::FederationRelationshipMask {
        bundle_endpoint_url: true,
        bundle_endpoint_profile: true,
        trust_domain_bundle: true,
    };

/// A client's relationship → domain, every field checked (SPIRE converts the whole message
/// even when an update's input mask leaves fields out). The URL is kept as written, with the
/// scheme lowercased as Go prints it back.
pub fn relationship_from_proto(
    f: &types::FederationRelationship,
) -> Result<FederationRelationship, RelationshipError> {
    let trust_domain =
        TrustDomain::parse(&f.trust_domain).map_err(RelationshipError::TrustDomain)?;
    let url = GoUrl::parse(&f.bundle_endpoint_url)?;
    if url.scheme != "https" {
        return Err(RelationshipError::UrlScheme);
    }
    if url.host.is_empty() {
        return Err(RelationshipError::UrlHost);
    }
    if url.has_user {
        return Err(RelationshipError::UrlUserInfo);
    }
    let profile = match &f.bundle_endpoint_profile {
        Some(Profile::HttpsWeb(_)) => BundleEndpointProfile::HttpsWeb,
        Some(Profile::HttpsSpiffe(p)) => BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: SpiffeId::parse(&p.endpoint_spiffe_id)
                .map_err(RelationshipError::EndpointId)?,
        },
        None => return Err(RelationshipError::NoProfile),
    };
    let trust_domain_bundle = match &f.trust_domain_bundle {
        None => None,
        Some(b) => {
            let bundle = bundle_from_proto(b).map_err(RelationshipError::Bundle)?;
            if bundle.trust_domain != trust_domain {
                return Err(RelationshipError::BundleMismatch {
                    bundle: b.trust_domain.clone(),
                    relationship: trust_domain,
                });
            }
            Some(bundle)
        }
    };
    Ok(FederationRelationship {
        trust_domain,
        bundle_endpoint_url: url.text,
        profile,
        trust_domain_bundle,
    })
}

/// A stored relationship → proto with the fields `mask` keeps (`None`: all). The trust
/// domain is always there; the bundle only when one is stored.
pub fn relationship_to_proto(
    f: &FederationRelationship,
    mask: Option<&types::FederationRelationshipMask>,
) -> types::FederationRelationship {
    let mask = mask.unwrap_or(&ALL_RELATIONSHIP_FIELDS);
    types::FederationRelationship {
        trust_domain: f.trust_domain.name().to_owned(),
        bundle_endpoint_url: if mask.bundle_endpoint_url {
            f.bundle_endpoint_url.clone()
        } else {
            String::new()
        },
        bundle_endpoint_profile: mask
            .bundle_endpoint_profile
            .then(|| profile_to_proto(&f.profile)),
        trust_domain_bundle: if mask.trust_domain_bundle {
            f.trust_domain_bundle.as_ref().map(bundle_to_proto)
        } else {
            None
        },
    }
}

/// The proto `oneof` of a profile.
pub fn profile_to_proto(profile: &BundleEndpointProfile) -> Profile {
    match profile {
        BundleEndpointProfile::HttpsWeb => Profile::HttpsWeb(HttpsWebProfile {}),
        BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
            Profile::HttpsSpiffe(HttpsspiffeProfile {
                endpoint_spiffe_id: endpoint_spiffe_id.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn web(td: &str, url: &str) -> types::FederationRelationship {
        types::FederationRelationship {
            trust_domain: td.into(),
            bundle_endpoint_url: url.into(),
            bundle_endpoint_profile: Some(Profile::HttpsWeb(HttpsWebProfile {})),
            trust_domain_bundle: None,
        }
    }

    fn message(f: &types::FederationRelationship) -> String {
        relationship_from_proto(f).unwrap_err().to_string()
    }

    #[test]
    fn spire_messages() {
        assert_eq!(
            message(&web("no a td", "https://x")),
            "failed to parse trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
        );
        assert_eq!(
            message(&web("", "https://x")),
            "failed to parse trust domain: trust domain is missing"
        );
        assert_eq!(
            message(&web("a.org", "http://x")),
            "bundle endpoint URL must use the https scheme"
        );
        assert_eq!(
            message(&web("a.org", "")),
            "bundle endpoint URL must use the https scheme"
        );
        assert_eq!(
            message(&web("a.org", "https:///p")),
            "bundle endpoint URL must specify the host"
        );
        assert_eq!(
            message(&web("a.org", "https://u:p@x")),
            "bundle endpoint URL must not contain user info"
        );
        assert_eq!(
            message(&web("a.org", "https://x:y")),
            "failed to parse bundle endpoint URL: parse \"https://x:y\": invalid port \":y\" after host"
        );
        let mut none = web("a.org", "https://x");
        none.bundle_endpoint_profile = None;
        assert_eq!(
            message(&none),
            "unsupported bundle endpoint profile type: <nil>"
        );
        let mut spiffe = web("a.org", "https://x");
        spiffe.bundle_endpoint_profile = Some(Profile::HttpsSpiffe(HttpsspiffeProfile {
            endpoint_spiffe_id: "a.org/server".into(),
        }));
        assert_eq!(
            message(&spiffe),
            "failed to parse endpoint SPIFFE ID: scheme is missing or invalid"
        );
        let mut other = web("a.org", "https://x");
        other.trust_domain_bundle = Some(types::Bundle {
            trust_domain: "b.org".into(),
            ..Default::default()
        });
        assert_eq!(
            message(&other),
            "trust domain bundle (\"b.org\") must match the trust domain of the federation relationship (\"a.org\")"
        );
    }

    #[test]
    fn round_trip_and_masks() {
        let mut f = web("a.org", "HTTPS://x:8443/b");
        f.trust_domain_bundle = Some(types::Bundle {
            trust_domain: "a.org".into(),
            refresh_hint: 5,
            ..Default::default()
        });
        let domain = relationship_from_proto(&f).unwrap();
        assert_eq!(domain.bundle_endpoint_url, "https://x:8443/b");
        let back = relationship_to_proto(&domain, None);
        assert_eq!(back.bundle_endpoint_url, "https://x:8443/b");
        assert_eq!(back.trust_domain_bundle.unwrap().refresh_hint, 5);
        let bare =
            relationship_to_proto(&domain, Some(&types::FederationRelationshipMask::default()));
        assert_eq!(
            bare,
            types::FederationRelationship {
                trust_domain: "a.org".into(),
                ..Default::default()
            }
        );
    }
}
