use std::time::{Duration, SystemTime};

use spire_agent_cache::{Entry, IssuedSvid};
use spire_id::{SelectorSet, SpiffeId};
use spire_svid::X509Authority;

use super::*;

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn identity(id: &str, path: &str, hint: &str, created_at: i64) -> Identity {
    let entry = Entry {
        id: id.to_owned(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/{path}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/x").unwrap(),
        selectors: SelectorSet::new(),
        federates_with: Vec::new(),
        dns_names: Vec::new(),
        hint: hint.to_owned(),
        revision_number: 0,
        created_at,
        x509_svid_ttl: 0,
        store_svid: false,
        admin: false,
        downstream: false,
    };
    let svid = IssuedSvid {
        chain: vec![
            format!("{id}-leaf").into_bytes(),
            format!("{id}-int").into_bytes(),
        ],
        private_key: format!("{id}-key").into_bytes(),
        not_before: SystemTime::UNIX_EPOCH,
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(3600),
    };
    Identity {
        entry: Arc::new(entry),
        svid: Arc::new(svid),
    }
}

fn bundle(name: &str, roots: &[&str]) -> Bundle {
    let mut bundle = Bundle::new(td(name));
    for root in roots {
        bundle.x509_authorities.push(X509Authority {
            asn1: root.as_bytes().to_vec(),
            tainted: false,
        });
    }
    bundle
}

fn ids<'a>(identities: impl IntoIterator<Item = &'a Identity>) -> Vec<&'a str> {
    identities
        .into_iter()
        .map(|i| i.entry.id.as_str())
        .collect()
}

#[test]
fn hint_filter_keeps_the_oldest_per_hint_and_every_unhinted() {
    let identities = vec![
        identity("a", "a", "db", 30),
        identity("b", "b", "", 10),
        identity("c", "c", "db", 20),
        identity("d", "d", "web", 5),
        identity("e", "e", "", 1),
        identity("f", "f", "db", 25),
    ];
    assert_eq!(ids(filter_hints(&identities)), ["b", "c", "d", "e"]);
}

#[test]
fn hint_filter_breaks_created_at_ties_by_entry_id() {
    let identities = vec![
        identity("m", "m", "same", 7),
        identity("k", "k", "same", 7),
        identity("z", "z", "same", 8),
    ];
    assert_eq!(ids(filter_hints(&identities)), ["k"]);
}

#[test]
fn no_identity_no_svid_response() {
    assert!(x509_svid_response(&[], &bundle("example.org", &["r"]), &BTreeMap::new()).is_none());
}

#[test]
fn svid_response_carries_chain_key_roots_hints_and_federated_bundles() {
    let identities = vec![
        identity("1", "one", "", 1),
        identity("2", "two", "h", 1),
        identity("3", "three", "h", 0),
    ];
    let own = bundle("example.org", &["root1", "root2"]);
    let mut federated = BTreeMap::new();
    federated.insert(td("other.org"), Arc::new(bundle("other.org", &["fedroot"])));

    let response = x509_svid_response(&identities, &own, &federated).unwrap();
    let svids: Vec<_> = response
        .svids
        .iter()
        .map(|s| s.spiffe_id.as_str())
        .collect();
    assert_eq!(
        svids,
        ["spiffe://example.org/one", "spiffe://example.org/three"],
        "entry-ID order kept, duplicate hint dropped"
    );
    let first = &response.svids[0];
    assert_eq!(first.x509_svid, b"1-leaf1-int");
    assert_eq!(first.x509_svid_key, b"1-key");
    assert_eq!(first.bundle, b"root1root2");
    assert_eq!(first.hint, "");
    assert_eq!(response.svids[1].hint, "h");
    assert!(response.crl.is_empty());
    assert_eq!(response.federated_bundles.len(), 1);
    assert_eq!(response.federated_bundles["spiffe://other.org"], b"fedroot");
}

#[test]
fn bundles_response_has_federated_only_with_an_identity() {
    let own = bundle("example.org", &["root"]);
    let mut federated = BTreeMap::new();
    federated.insert(td("other.org"), Arc::new(bundle("other.org", &["fed"])));

    let with = x509_bundles_response(true, &own, &federated);
    assert_eq!(with.bundles.len(), 2);
    assert_eq!(with.bundles["spiffe://example.org"], b"root");
    assert_eq!(with.bundles["spiffe://other.org"], b"fed");

    let without = x509_bundles_response(false, &own, &federated);
    assert_eq!(without.bundles.len(), 1);
    assert_eq!(without.bundles["spiffe://example.org"], b"root");
}

#[tokio::test]
async fn messages_are_built_once_per_update_and_shared() {
    let cache = spire_agent_cache::Cache::new(
        spire_agent_cache::CacheConfig {
            trust_domain: td("example.org"),
            x509_svid_cache_max_size: 10,
        },
        bundle("example.org", &["root"]),
    );
    let selectors: SelectorSet = [spire_id::Selector::new("unix", "uid:1").unwrap()]
        .into_iter()
        .collect();
    let mut first = cache.subscribe(selectors.clone());
    let mut second = cache.subscribe(selectors);
    let (a, b) = (first.next().await.unwrap(), second.next().await.unwrap());

    let svid = svid_message(&a);
    assert!(svid.0.is_none(), "no identity, no SVID message");
    assert!(Arc::ptr_eq(&a, &b), "equal selector sets share one update");
    assert!(
        Arc::ptr_eq(&svid, &svid_message(&b)),
        "built once, shared by both streams"
    );
    let bundles = bundles_message(&a);
    assert!(Arc::ptr_eq(&bundles, &bundles_message(&a)));
    assert_eq!(bundles.0.bundles["spiffe://example.org"], b"root");
}
