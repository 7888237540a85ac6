//! Server protos → the agent's types.

use spire_agent_cache::Entry;
use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::types;
use spire_svid::{Bundle, JwtAuthority, X509Authority};

use crate::{Error, Result};

pub(crate) fn spiffe_id(id: Option<&types::Spiffeid>, what: &str) -> Result<SpiffeId> {
    let id = id.ok_or_else(|| Error::InvalidResponse(format!("{what} is missing")))?;
    let td = TrustDomain::parse(&id.trust_domain)
        .map_err(|e| Error::InvalidResponse(format!("{what}: {e}")))?;
    SpiffeId::from_path(td, &id.path).map_err(|e| Error::InvalidResponse(format!("{what}: {e}")))
}

/// An authorized entry; `parent_id` falls back to `default_parent` (the agent) when the
/// server left it out.
pub(crate) fn entry(e: types::Entry, default_parent: &SpiffeId) -> Result<Entry> {
    let spiffe_id = spiffe_id(e.spiffe_id.as_ref(), "entry SPIFFE ID")?;
    let parent_id = match e.parent_id.as_ref() {
        Some(p) => spiffe_id_or(p, default_parent),
        None => default_parent.clone(),
    };
    let selectors = e
        .selectors
        .iter()
        .map(|s| Selector::new(&s.r#type, &s.value))
        .collect::<Result<SelectorSet, _>>()
        .map_err(|err| Error::InvalidResponse(format!("entry {} selector: {err}", e.id)))?;
    let federates_with = e
        .federates_with
        .iter()
        .map(|td| TrustDomain::parse(td))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::InvalidResponse(format!("entry {} federates_with: {err}", e.id)))?;
    Ok(Entry {
        id: e.id,
        spiffe_id,
        parent_id,
        selectors,
        federates_with,
        dns_names: e.dns_names,
        hint: e.hint,
        revision_number: e.revision_number,
        created_at: e.created_at,
        x509_svid_ttl: e.x509_svid_ttl,
        store_svid: e.store_svid,
        admin: e.admin,
        downstream: e.downstream,
    })
}

fn spiffe_id_or(id: &types::Spiffeid, default: &SpiffeId) -> SpiffeId {
    spiffe_id(Some(id), "parent ID").unwrap_or_else(|_| default.clone())
}

pub(crate) fn bundle(b: types::Bundle) -> Result<Bundle> {
    let trust_domain = TrustDomain::parse(&b.trust_domain)
        .map_err(|e| Error::InvalidResponse(format!("bundle trust domain: {e}")))?;
    Ok(Bundle {
        trust_domain,
        x509_authorities: b
            .x509_authorities
            .into_iter()
            .map(|a| X509Authority {
                asn1: a.asn1,
                tainted: a.tainted,
            })
            .collect(),
        jwt_authorities: b
            .jwt_authorities
            .into_iter()
            .map(|k| JwtAuthority {
                key_id: k.key_id,
                public_key: k.public_key,
                expires_at: k.expires_at,
                tainted: k.tainted,
            })
            .collect(),
        refresh_hint: b.refresh_hint,
        sequence_number: b.sequence_number,
    })
}

/// The bundle SPIRE keeps in `agent-data.json`: X.509 roots only.
pub(crate) fn bundle_from_roots(trust_domain: TrustDomain, roots: &[Vec<u8>]) -> Bundle {
    let mut b = Bundle::new(trust_domain);
    b.x509_authorities = roots
        .iter()
        .map(|r| X509Authority {
            asn1: r.clone(),
            tainted: false,
        })
        .collect();
    b
}
