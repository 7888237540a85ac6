//! Workload API messages built from a cache update (`spire_agent_cache::WorkloadUpdate`).
//!
//! Each message is built once per update (through `WorkloadUpdate::memo`) and shared by every
//! stream that sends that update.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use spire_agent_cache::{Identity, WorkloadUpdate};
use spire_id::TrustDomain;
use spire_proto::workload::{X509BundlesResponse, X509svid, X509svidResponse};
use spire_svid::Bundle;

/// The `FetchX509SVID` message of one update; `None` when the caller has no identity.
#[derive(Debug)]
pub(crate) struct SvidMessage(pub(crate) Option<X509svidResponse>);

/// The `FetchX509Bundles` message of one update.
#[derive(Debug)]
pub(crate) struct BundlesMessage(pub(crate) X509BundlesResponse);

/// The `FetchX509SVID` message of `update`, built once and shared.
pub(crate) fn svid_message(update: &WorkloadUpdate) -> Arc<SvidMessage> {
    update.memo(|u| {
        SvidMessage(x509_svid_response(
            &u.identities,
            &u.bundle,
            &u.federated_bundles,
        ))
    })
}

/// The `FetchX509Bundles` message of `update`, built once and shared.
pub(crate) fn bundles_message(update: &WorkloadUpdate) -> Arc<BundlesMessage> {
    update.memo(|u| {
        BundlesMessage(x509_bundles_response(
            !u.identities.is_empty(),
            &u.bundle,
            &u.federated_bundles,
        ))
    })
}

/// SPIRE's hint filter (Workload API only): among identities sharing a non-empty hint keep
/// the oldest by `created_at` (ties: the smaller entry ID); order is otherwise kept.
pub fn filter_hints(identities: &[Identity]) -> Vec<&Identity> {
    let mut keep: HashMap<&str, &Identity> = HashMap::new();
    for identity in identities {
        let hint = identity.entry.hint.as_str();
        if hint.is_empty() {
            continue;
        }
        keep.entry(hint)
            .and_modify(|kept| {
                let (a, b) = (&identity.entry, &kept.entry);
                if (a.created_at, &a.id) < (b.created_at, &b.id) {
                    *kept = identity;
                }
            })
            .or_insert(identity);
    }
    let kept: HashSet<&str> = keep.values().map(|i| i.entry.id.as_str()).collect();
    identities
        .iter()
        .filter(|i| i.entry.hint.is_empty() || kept.contains(i.entry.id.as_str()))
        .collect()
}

/// The `FetchX509SVID` message for these identities (ordered by entry ID), or `None` when
/// there is none: one `X509SVID` per identity left by [`filter_hints`], each with the own
/// trust domain's roots, plus the federated bundles keyed `spiffe://<td>`.
pub fn x509_svid_response(
    identities: &[Identity],
    bundle: &Bundle,
    federated: &BTreeMap<TrustDomain, Arc<Bundle>>,
) -> Option<X509svidResponse> {
    if identities.is_empty() {
        return None;
    }
    let roots = concat_roots(bundle);
    let svids = filter_hints(identities)
        .into_iter()
        .map(|identity| X509svid {
            spiffe_id: identity.entry.spiffe_id.to_string(),
            x509_svid: identity.svid.chain.concat(),
            x509_svid_key: identity.svid.private_key.clone(),
            bundle: roots.clone(),
            hint: identity.entry.hint.clone(),
        })
        .collect();
    Some(X509svidResponse {
        svids,
        crl: Vec::new(),
        federated_bundles: bundle_map(federated),
    })
}

/// The `FetchX509Bundles` message: the own trust domain always, federated trust domains only
/// for a caller with an identity.
pub fn x509_bundles_response(
    has_identity: bool,
    bundle: &Bundle,
    federated: &BTreeMap<TrustDomain, Arc<Bundle>>,
) -> X509BundlesResponse {
    let mut bundles = if has_identity {
        bundle_map(federated)
    } else {
        HashMap::new()
    };
    bundles.insert(bundle.trust_domain.id_string(), concat_roots(bundle));
    X509BundlesResponse {
        crl: Vec::new(),
        bundles,
    }
}

/// The bundle's X.509 roots as concatenated DER.
pub fn concat_roots(bundle: &Bundle) -> Vec<u8> {
    bundle
        .x509_authorities
        .iter()
        .flat_map(|a| a.asn1.iter().copied())
        .collect()
}

fn bundle_map(bundles: &BTreeMap<TrustDomain, Arc<Bundle>>) -> HashMap<String, Vec<u8>> {
    bundles
        .iter()
        .map(|(td, bundle)| (td.id_string(), concat_roots(bundle)))
        .collect()
}

#[cfg(test)]
mod tests;
