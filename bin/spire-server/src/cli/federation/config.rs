//! The relationship `federation create` and `federation update` send: from the flags, or from
//! a `-data` JSON file in SPIRE's shape
//! (`{"federationRelationships": [{"trustDomain", "bundleEndpointURL", "bundleEndpointProfile",
//! "endpointSPIFFEID", "trustDomainBundle", "trustDomainBundleFormat"}]}`, keys matched
//! case-insensitively as Go's `encoding/json` does), checked and worded as SPIRE's CLI does.

use anyhow::{anyhow, bail};
use clap::Args;
use serde_json::{Map, Value};
use spire_proto::spire::api::types::{
    Bundle, FederationRelationship, HttpsWebProfile, HttpsspiffeProfile,
    federation_relationship::BundleEndpointProfile as Profile,
};

use crate::cli::bundle::{BundleFormat, parse_bundle};
use crate::cli::common::{Io, go_errno_text, go_quote, read_input};

const PROFILE_WEB: &str = "https_web";
const PROFILE_SPIFFE: &str = "https_spiffe";
const FORMAT_PEM: &str = "pem";
const FORMAT_SPIFFE: &str = "spiffe";

/// The relationship flags of `federation create` / `federation update`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RelationshipFlags {
    /// Read the relationships from this JSON file instead of the flags ('-' for stdin)
    #[arg(long = "data", value_name = "string", default_value = "")]
    pub(crate) data: String,
    /// Foreign trust domain the relationship is with, e.g. other.org
    #[arg(long = "trustDomain", value_name = "string", default_value = "")]
    pub(crate) trust_domain: String,
    /// https URL where that trust domain serves its SPIFFE bundle
    #[arg(long = "bundleEndpointURL", value_name = "string", default_value = "")]
    pub(crate) bundle_endpoint_url: String,
    /// How the endpoint is authenticated: https_web or https_spiffe
    #[arg(
        long = "bundleEndpointProfile",
        value_name = "string",
        default_value = ""
    )]
    pub(crate) bundle_endpoint_profile: String,
    /// SPIFFE ID the endpoint must present (https_spiffe only)
    #[arg(long = "endpointSpiffeID", value_name = "string", default_value = "")]
    pub(crate) endpoint_spiffe_id: String,
    /// File with that trust domain's current bundle, to trust the endpoint from the start
    #[arg(
        long = "trustDomainBundlePath",
        value_name = "string",
        default_value = ""
    )]
    pub(crate) trust_domain_bundle_path: String,
    /// Encoding of that file: pem or spiffe
    #[arg(long = "trustDomainBundleFormat", value_name = "string", default_value = FORMAT_PEM)]
    pub(crate) trust_domain_bundle_format: String,
}

/// One relationship as the flags or one `-data` item describe it, before any check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RelationshipConfig {
    trust_domain: String,
    bundle_endpoint_url: String,
    bundle_endpoint_profile: String,
    endpoint_spiffe_id: String,
    /// `-data` only: the bundle itself (a PEM string, or the SPIFFE bundle document).
    trust_domain_bundle: Option<Value>,
    trust_domain_bundle_format: String,
    /// Flags only: where the bundle is read from.
    trust_domain_bundle_path: String,
}

// === impl RelationshipFlags ===

impl RelationshipFlags {
    /// The relationships to send: those of the `-data` file, or the one the flags describe.
    pub(crate) fn relationships(
        &self,
        io: &mut Io<'_>,
    ) -> anyhow::Result<Vec<FederationRelationship>> {
        let config = RelationshipConfig {
            trust_domain: self.trust_domain.clone(),
            bundle_endpoint_url: self.bundle_endpoint_url.clone(),
            bundle_endpoint_profile: self.bundle_endpoint_profile.clone(),
            endpoint_spiffe_id: self.endpoint_spiffe_id.clone(),
            trust_domain_bundle: None,
            trust_domain_bundle_format: self.trust_domain_bundle_format.clone(),
            trust_domain_bundle_path: self.trust_domain_bundle_path.clone(),
        };
        if self.data.is_empty() {
            return Ok(vec![config.to_proto()?]);
        }
        if !config.is_empty() {
            bail!("cannot use other flags to specify relationship fields when 'data' flag is set");
        }
        let raw = read_input(&self.data, io.stdin)?;
        parse_data(&raw)
    }
}

// === impl RelationshipConfig ===

impl RelationshipConfig {
    /// No relationship field was given as a flag (the format still at its default).
    fn is_empty(&self) -> bool {
        self.bundle_endpoint_profile.is_empty()
            && self.bundle_endpoint_url.is_empty()
            && self.trust_domain_bundle_format == FORMAT_PEM
            && self.trust_domain_bundle_path.is_empty()
            && self.endpoint_spiffe_id.is_empty()
            && self.trust_domain.is_empty()
    }

    /// SPIRE's client-side checks, in its order, and the API message. The bundle is parsed
    /// for the endpoint's trust domain when the profile is `https_spiffe` (the server then
    /// refuses one that is not the relationship's).
    fn to_proto(&self) -> anyhow::Result<FederationRelationship> {
        if self.trust_domain.is_empty() {
            bail!("trust domain is required");
        }
        if self.bundle_endpoint_url.is_empty() {
            bail!("bundle endpoint URL is required");
        }
        let mut bundle_trust_domain = self.trust_domain.clone();
        let profile = match self.bundle_endpoint_profile.as_str() {
            PROFILE_WEB => Profile::HttpsWeb(HttpsWebProfile {}),
            PROFILE_SPIFFE => {
                if self.endpoint_spiffe_id.is_empty() {
                    bail!(
                        "endpoint SPIFFE ID is required if 'https_spiffe' endpoint profile is set"
                    );
                }
                let id = spire_id::SpiffeId::parse(&self.endpoint_spiffe_id)
                    .map_err(|e| anyhow!("cannot parse bundle endpoint SPIFFE ID: {e}"))?;
                id.trust_domain()
                    .name()
                    .clone_into(&mut bundle_trust_domain);
                Profile::HttpsSpiffe(HttpsspiffeProfile {
                    endpoint_spiffe_id: self.endpoint_spiffe_id.clone(),
                })
            }
            other => bail!("unknown bundle endpoint profile type: {}", go_quote(other)),
        };
        let trust_domain_bundle = if !self.trust_domain_bundle_path.is_empty() {
            Some(self.bundle_from_path(&bundle_trust_domain)?)
        } else if let Some(raw) = &self.trust_domain_bundle {
            Some(
                self.bundle_from_json(raw, &bundle_trust_domain)
                    .map_err(|e| anyhow!("cannot parse bundle raw message: {e}"))?,
            )
        } else {
            None
        };
        Ok(FederationRelationship {
            trust_domain: self.trust_domain.clone(),
            bundle_endpoint_url: self.bundle_endpoint_url.clone(),
            bundle_endpoint_profile: Some(profile),
            trust_domain_bundle,
        })
    }

    /// `-trustDomainBundlePath`: PEM for `pem`, the SPIFFE document for anything else (as
    /// SPIRE's bundle parser decides).
    fn bundle_from_path(&self, trust_domain: &str) -> anyhow::Result<Bundle> {
        let path = &self.trust_domain_bundle_path;
        let data = std::fs::read(path).map_err(|e| {
            anyhow!(
                "cannot read bundle file: open {path}: {}",
                go_errno_text(&e)
            )
        })?;
        let format = if self.trust_domain_bundle_format == FORMAT_PEM {
            BundleFormat::Pem
        } else {
            BundleFormat::Spiffe
        };
        parse_bundle(&data, format, trust_domain)
            .map_err(|e| anyhow!("cannot parse bundle file: {e}"))
    }

    /// `trustDomainBundle` of a `-data` item: a JSON string of PEM, or the document itself.
    fn bundle_from_json(&self, raw: &Value, trust_domain: &str) -> anyhow::Result<Bundle> {
        match self.trust_domain_bundle_format.as_str() {
            FORMAT_PEM => {
                let Value::String(pem) = raw else {
                    bail!(
                        "failed to unmarshal json: json: cannot unmarshal {} into Go value of type string",
                        json_kind(raw)
                    );
                };
                parse_bundle(pem.as_bytes(), BundleFormat::Pem, trust_domain)
            }
            FORMAT_SPIFFE => parse_bundle(
                &serde_json::to_vec(raw)?,
                BundleFormat::Spiffe,
                trust_domain,
            ),
            other => bail!("bundle format {} is unsupported", go_quote(other)),
        }
    }
}

/// The relationships of a `-data` document, each checked as the flags are.
fn parse_data(raw: &[u8]) -> anyhow::Result<Vec<FederationRelationship>> {
    let doc: Value =
        serde_json::from_slice(raw).map_err(|e| anyhow!("failed to parse JSON: {e}"))?;
    let items = match &doc {
        Value::Object(top) => match field(top, "federationRelationships") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => bail!(
                "failed to parse JSON: json: cannot unmarshal {} into Go struct field federationRelationships.federationRelationships of type []*federation.federationRelationshipConfig",
                json_kind(other)
            ),
        },
        Value::Null => Vec::new(),
        other => bail!(
            "failed to parse JSON: json: cannot unmarshal {} into Go value of type federation.federationRelationships",
            json_kind(other)
        ),
    };
    let configs = items
        .into_iter()
        .map(config_from_json)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| anyhow!("failed to parse JSON: {e}"))?;
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.to_proto()
                .map_err(|e| anyhow!("could not parse item {i}: {e}"))
        })
        .collect()
}

fn config_from_json(item: &Value) -> anyhow::Result<RelationshipConfig> {
    let obj = match item {
        Value::Object(obj) => obj,
        Value::Null => return Ok(RelationshipConfig::default()),
        other => bail!(
            "json: cannot unmarshal {} into Go struct field federationRelationships.federationRelationships of type federation.federationRelationshipConfig",
            json_kind(other)
        ),
    };
    let text = |name: &str| -> anyhow::Result<String> {
        match field(obj, name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => bail!(
                "json: cannot unmarshal {} into Go struct field federationRelationshipConfig.federationRelationships.{name} of type string",
                json_kind(other)
            ),
        }
    };
    Ok(RelationshipConfig {
        trust_domain: text("trustDomain")?,
        bundle_endpoint_url: text("bundleEndpointURL")?,
        bundle_endpoint_profile: text("bundleEndpointProfile")?,
        endpoint_spiffe_id: text("endpointSPIFFEID")?,
        trust_domain_bundle: field(obj, "trustDomainBundle")
            .filter(|v| !v.is_null())
            .cloned(),
        trust_domain_bundle_format: text("trustDomainBundleFormat")?,
        trust_domain_bundle_path: String::new(),
    })
}

/// A key as Go's `encoding/json` finds it: the exact name, else any case-insensitive match.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// The JSON kind as Go's `encoding/json` names it in type errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn flags() -> RelationshipFlags {
        RelationshipFlags {
            data: String::new(),
            trust_domain: String::new(),
            bundle_endpoint_url: String::new(),
            bundle_endpoint_profile: String::new(),
            endpoint_spiffe_id: String::new(),
            trust_domain_bundle_path: String::new(),
            trust_domain_bundle_format: FORMAT_PEM.into(),
        }
    }

    fn run(f: &RelationshipFlags) -> anyhow::Result<Vec<FederationRelationship>> {
        let (mut out, mut err, mut stdin) = (Vec::new(), Vec::new(), std::io::empty());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            stdin: &mut stdin,
        };
        f.relationships(&mut io)
    }

    fn error(f: &RelationshipFlags) -> String {
        run(f).unwrap_err().to_string()
    }

    #[test]
    fn flag_checks_in_spire_order() {
        let mut f = flags();
        assert_eq!(error(&f), "trust domain is required");
        f.trust_domain = "td.org".into();
        assert_eq!(error(&f), "bundle endpoint URL is required");
        f.bundle_endpoint_url = "https://td.org".into();
        assert_eq!(error(&f), "unknown bundle endpoint profile type: \"\"");
        f.bundle_endpoint_profile = PROFILE_SPIFFE.into();
        assert_eq!(
            error(&f),
            "endpoint SPIFFE ID is required if 'https_spiffe' endpoint profile is set"
        );
        f.endpoint_spiffe_id = "td.org/server".into();
        assert_eq!(
            error(&f),
            "cannot parse bundle endpoint SPIFFE ID: scheme is missing or invalid"
        );
        f.endpoint_spiffe_id = "spiffe://td.org/server".into();
        f.trust_domain_bundle_path = "/nonexistent/bundle.pem".into();
        assert_eq!(
            error(&f),
            "cannot read bundle file: open /nonexistent/bundle.pem: no such file or directory"
        );
        f.trust_domain_bundle_path = String::new();
        let sent = run(&f).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].trust_domain_bundle, None);
        f.data = "-".into();
        assert_eq!(
            error(&f),
            "cannot use other flags to specify relationship fields when 'data' flag is set"
        );
    }

    #[test]
    fn data_items_in_spire_shape() {
        let raw = br#"{"federationRelationships":[
            {"trustDomain":"a.org","bundleEndpointURL":"https://a.org","bundleEndpointProfile":"https_web"},
            {"TRUSTDOMAIN":"b.org","bundleendpointurl":"https://b.org","bundleEndpointProfile":"https_spiffe",
             "endpointSPIFFEID":"spiffe://b.org/server",
             "trustDomainBundle":{"keys":[],"spiffe_refresh_hint":60},"trustDomainBundleFormat":"spiffe"}]}"#;
        let items = parse_data(raw).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].trust_domain, "a.org");
        assert_eq!(items[1].bundle_endpoint_url, "https://b.org");
        let bundle = items[1].trust_domain_bundle.as_ref().unwrap();
        assert_eq!(
            (bundle.trust_domain.as_str(), bundle.refresh_hint),
            ("b.org", 60)
        );

        let bad = |raw: &[u8]| parse_data(raw).unwrap_err().to_string();
        assert_eq!(
            bad(br#"{"federationRelationships":[{"trustDomain":"a.org"}]}"#),
            "could not parse item 0: bundle endpoint URL is required"
        );
        assert_eq!(
            bad(br#"{"federationRelationships":[{"trustDomain":1}]}"#),
            "failed to parse JSON: json: cannot unmarshal number into Go struct field federationRelationshipConfig.federationRelationships.trustDomain of type string"
        );
        assert_eq!(
            bad(br#"{"federationRelationships":[{"trustDomain":"a.org","bundleEndpointURL":"https://a.org",
                "bundleEndpointProfile":"https_web","trustDomainBundle":"x"}]}"#),
            "could not parse item 0: cannot parse bundle raw message: bundle format \"\" is unsupported"
        );
        assert_eq!(
            bad(br#"{"federationRelationships":[{"trustDomain":"a.org","bundleEndpointURL":"https://a.org",
                "bundleEndpointProfile":"https_web","trustDomainBundle":{},"trustDomainBundleFormat":"pem"}]}"#),
            "could not parse item 0: cannot parse bundle raw message: failed to unmarshal json: json: cannot unmarshal object into Go value of type string"
        );
        assert!(bad(b"{").starts_with("failed to parse JSON: "));
        assert!(parse_data(b"{}").unwrap().is_empty());
    }
}
