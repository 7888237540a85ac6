//! ClusterFederatedTrustDomain objects to federation relationships, and declared vs current
//! relationships to a write plan. Relationships are keyed by trust domain; the oldest object
//! wins a trust domain, and every relationship not declared is deleted.

use std::collections::{BTreeMap, BTreeSet};

use spire_id::go_fmt::quote;
use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile as ApiProfile;
use spire_proto::spire::api::types::{
    Bundle, FederationRelationship, HttpsWebProfile, HttpsspiffeProfile,
};

use super::declare::{DeclareConfig, RenderFailure};
use super::{Error, ObjectKind, Owner};
use crate::crd::{ClusterFederatedTrustDomain, ClusterFederatedTrustDomainSpec};

/// `bundleEndpointProfile.type` of a web-PKI endpoint.
pub const HTTPS_WEB_PROFILE: &str = "https_web";
/// `bundleEndpointProfile.type` of an endpoint authenticated by its SPIFFE ID.
pub const HTTPS_SPIFFE_PROFILE: &str = "https_spiffe";

/// Parses a SPIFFE bundle document (`trustDomainBundle`) for a trust domain into the API form.
/// Supplied by the caller so this engine stays free of certificate parsing.
pub type BundleParser<'a> = &'a dyn Fn(&TrustDomain, &str) -> Result<Bundle, String>;

/// The federation relationships the objects declare.
#[derive(Clone, Debug, Default)]
pub struct DeclaredFederation {
    relationships: BTreeMap<String, DeclaredRelationship>,
    /// Objects ignored (invalid spec, or a trust domain an older object already declares).
    pub failures: Vec<RenderFailure>,
}

/// One declared relationship and the object that declared it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredRelationship {
    /// The relationship as the trust domain API takes it.
    pub relationship: FederationRelationship,
    /// The ClusterFederatedTrustDomain's name.
    pub owner: String,
}

/// What to write so spire-server holds exactly the declared relationships.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FederationPlan {
    /// Relationships to create, by trust domain.
    pub create: Vec<FederationRelationship>,
    /// Relationships whose endpoint URL or profile changed, by trust domain.
    pub update: Vec<FederationRelationship>,
    /// Trust domain names whose relationship is to be deleted, sorted.
    pub delete: Vec<String>,
}

// === impl DeclaredFederation ===

impl DeclaredFederation {
    /// The declared relationships, by trust domain name.
    pub fn relationships(&self) -> impl ExactSizeIterator<Item = &DeclaredRelationship> {
        self.relationships.values()
    }

    /// The relationship declared for `trust_domain`.
    pub fn get(&self, trust_domain: &str) -> Option<&DeclaredRelationship> {
        self.relationships.get(trust_domain)
    }
}

/// Validates a ClusterFederatedTrustDomain spec as its webhook does and builds the relationship.
pub fn parse_federated_trust_domain(
    spec: &ClusterFederatedTrustDomainSpec,
    parse_bundle: BundleParser<'_>,
) -> Result<FederationRelationship, Error> {
    let invalid = Error::InvalidSpec;
    let trust_domain = TrustDomain::parse(&spec.trust_domain)
        .map_err(|e| invalid(format!("invalid trustDomain value: {e}")))?;
    validate_bundle_endpoint_url(&spec.bundle_endpoint_url)
        .map_err(|e| invalid(format!("invalid bundleEndpointURL value: {e}")))?;
    let profile = &spec.bundle_endpoint_profile;
    let profile = match profile.kind.as_str() {
        HTTPS_WEB_PROFILE => {
            if !profile.endpoint_spiffe_id.is_empty() {
                return Err(invalid(format!(
                    "invalid bundle endpoint profile endpointSPIFFEID value: not applicable to the {} profile",
                    quote(HTTPS_WEB_PROFILE)
                )));
            }
            ApiProfile::HttpsWeb(HttpsWebProfile {})
        }
        HTTPS_SPIFFE_PROFILE => {
            let id = SpiffeId::parse(&profile.endpoint_spiffe_id).map_err(|e| {
                invalid(format!(
                    "invalid bundle endpoint profile endpointSPIFFEID value: {e}"
                ))
            })?;
            ApiProfile::HttpsSpiffe(HttpsspiffeProfile {
                endpoint_spiffe_id: id.to_string(),
            })
        }
        other => {
            return Err(invalid(format!(
                "invalid bundle endpoint profile type value {}",
                quote(other)
            )));
        }
    };
    let trust_domain_bundle = if spec.trust_domain_bundle.is_empty() {
        None
    } else {
        Some(
            parse_bundle(&trust_domain, &spec.trust_domain_bundle)
                .map_err(|e| invalid(format!("invalid trustDomainBundle value: {e}")))?,
        )
    };
    Ok(FederationRelationship {
        trust_domain: trust_domain.name().to_owned(),
        bundle_endpoint_url: spec.bundle_endpoint_url.clone(),
        bundle_endpoint_profile: Some(profile),
        trust_domain_bundle,
    })
}

/// The relationships the ClusterFederatedTrustDomains this controller handles declare. Objects
/// are taken oldest first (creation time, then UID); a later object naming a trust domain
/// already declared is ignored, as is an object whose spec does not parse.
pub fn declare_federation(
    config: &DeclareConfig,
    objects: &[&ClusterFederatedTrustDomain],
    parse_bundle: BundleParser<'_>,
) -> DeclaredFederation {
    let mut objects: Vec<&ClusterFederatedTrustDomain> = objects
        .iter()
        .copied()
        .filter(|o| config.handles_class(&o.spec.class_name))
        .collect();
    objects.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then_with(|| a.metadata.uid.cmp(&b.metadata.uid))
    });
    let mut declared = DeclaredFederation::default();
    for object in objects {
        let name = object.metadata.name.clone().unwrap_or_default();
        let fail = |reason: String| RenderFailure {
            owner: Owner {
                kind: ObjectKind::ClusterFederatedTrustDomain,
                name: name.clone(),
            },
            pod: None,
            reason,
        };
        match parse_federated_trust_domain(&object.spec, parse_bundle) {
            Err(e) => declared.failures.push(fail(e.to_string())),
            Ok(relationship) => {
                if let Some(existing) = declared.relationships.get(&relationship.trust_domain) {
                    declared.failures.push(fail(format!(
                        "trust domain {} is already declared by ClusterFederatedTrustDomain {}",
                        quote(&relationship.trust_domain),
                        quote(&existing.owner)
                    )));
                    continue;
                }
                declared.relationships.insert(
                    relationship.trust_domain.clone(),
                    DeclaredRelationship {
                        relationship,
                        owner: name.clone(),
                    },
                );
            }
        }
    }
    declared
}

/// Creates what is declared and missing, updates what differs in endpoint URL or profile (the
/// bundle is not compared), deletes every current relationship not declared.
pub fn plan_federation(
    declared: &DeclaredFederation,
    current: &[FederationRelationship],
) -> FederationPlan {
    let current: BTreeMap<&str, &FederationRelationship> = current
        .iter()
        .map(|r| (r.trust_domain.as_str(), r))
        .collect();
    let mut plan = FederationPlan::default();
    for (trust_domain, declared) in &declared.relationships {
        let want = &declared.relationship;
        match current.get(trust_domain.as_str()) {
            None => plan.create.push(want.clone()),
            Some(have)
                if have.bundle_endpoint_url != want.bundle_endpoint_url
                    || have.bundle_endpoint_profile != want.bundle_endpoint_profile =>
            {
                plan.update.push(want.clone());
            }
            Some(_) => {}
        }
    }
    let undeclared: BTreeSet<&str> = current
        .keys()
        .copied()
        .filter(|td| !declared.relationships.contains_key(*td))
        .collect();
    plan.delete = undeclared.into_iter().map(str::to_owned).collect();
    plan
}

/// An `https` URL with a host and no user info, as spire-controller-manager requires of
/// `bundleEndpointURL` (Go `net/url` parsing, simplified to what can reach this check).
pub fn validate_bundle_endpoint_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("bundle endpoint URL is missing".into());
    }
    let parse_error = |detail: &str| format!("parse {}: {detail}", quote(url));
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(parse_error("net/url: invalid control character in URL"));
    }
    if url.starts_with(':') {
        return Err(parse_error("missing protocol scheme"));
    }
    let (scheme, rest) = match url.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (scheme.to_ascii_lowercase(), rest),
        _ => (String::new(), url),
    };
    if scheme != "https" {
        return Err("scheme must be https".into());
    }
    let rest = rest.split(['#', '?']).next().unwrap_or_default();
    let Some(after_slashes) = rest.strip_prefix("//") else {
        return Err("host must be specified".into());
    };
    let authority = after_slashes.split('/').next().unwrap_or_default();
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => {
            let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(parse_error(&format!(
                    "invalid port {} after host",
                    quote(&format!(":{port}"))
                )));
            }
            host
        }
    };
    if let Some(bad) = host
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err(parse_error(&format!(
            "invalid character {} in host name",
            quote(&bad.to_string())
        )));
    }
    if host.is_empty() {
        return Err("host must be specified".into());
    }
    if userinfo.is_some() {
        return Err("cannot contain userinfo".into());
    }
    Ok(())
}

/// Go `getScheme`: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests;
