//! Workload API messages built from a cache update (`spire_agent_cache::WorkloadUpdate`).
//!
//! Each message is built once per update (through `WorkloadUpdate::memo`) and shared by every
//! stream that sends that update. The JWT messages and validated claims are in [`jwt`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use spire_agent_cache::{Entry, Identity, WorkloadUpdate};
use spire_id::TrustDomain;
use spire_proto::workload::{X509BundlesResponse, X509svid, X509svidResponse};
use spire_svid::Bundle;

pub mod jwt;

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
    oldest_per_hint(identities, |identity| &identity.entry)
}

/// [`filter_hints`] for entries (FetchJWTSVID works on entries, with or without an SVID).
pub fn filter_entry_hints(entries: &[Arc<Entry>]) -> Vec<&Arc<Entry>> {
    oldest_per_hint(entries, |entry| entry)
}

fn oldest_per_hint<T>(items: &[T], entry_of: impl Fn(&T) -> &Entry) -> Vec<&T> {
    let mut keep: HashMap<&str, &Entry> = HashMap::new();
    for item in items {
        let entry = entry_of(item);
        if entry.hint.is_empty() {
            continue;
        }
        keep.entry(entry.hint.as_str())
            .and_modify(|kept| {
                if (entry.created_at, &entry.id) < (kept.created_at, &kept.id) {
                    *kept = entry;
                }
            })
            .or_insert(entry);
    }
    let kept: HashSet<&str> = keep.values().map(|e| e.id.as_str()).collect();
    items
        .iter()
        .filter(|item| {
            let entry = entry_of(item);
            entry.hint.is_empty() || kept.contains(entry.id.as_str())
        })
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
