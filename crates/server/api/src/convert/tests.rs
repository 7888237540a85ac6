use spire_id::TrustDomain;
use spire_proto::spire::api::types;

use super::*;

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn pid(td: &str, path: &str) -> types::Spiffeid {
    types::Spiffeid {
        trust_domain: td.into(),
        path: path.into(),
    }
}

#[test]
fn ids_are_checked_with_spire_messages() {
    let td = td();
    let cases: &[(Option<types::Spiffeid>, &str)] = &[
        (None, "request must specify SPIFFE ID"),
        (
            Some(pid("example.org", "foo")),
            "path must have a leading slash",
        ),
        (
            Some(pid("example.org", "/")),
            "path cannot have a trailing slash",
        ),
        (
            Some(pid("example.org", "/a/../b")),
            "path cannot contain dot segments",
        ),
        (
            Some(pid("Example.org", "/a")),
            "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
        ),
        (Some(pid("", "/a")), "trust domain is missing"),
        (
            Some(pid("other.org", "/a")),
            "\"spiffe://other.org/a\" is not a member of trust domain \"example.org\"",
        ),
        (
            Some(pid("example.org", "")),
            "\"spiffe://example.org\" is not a workload in trust domain \"example.org\"; path is empty",
        ),
        (
            Some(pid("example.org", "/spire/agent/x")),
            "\"spiffe://example.org/spire/agent/x\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace",
        ),
        (
            Some(pid("example.org", "/spire")),
            "\"spiffe://example.org/spire\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace",
        ),
    ];
    for (id, want) in cases {
        let err = workload_id_from_proto(&td, id.as_ref()).unwrap_err();
        assert_eq!(err.to_string(), *want, "{id:?}");
    }
    assert!(workload_id_from_proto(&td, Some(&pid("example.org", "/spirex"))).is_ok());
    let err = agent_id_from_proto(&td, Some(&pid("example.org", "/workload"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"spiffe://example.org/workload\" is not an agent in trust domain \"example.org\"; path is not in the agent namespace"
    );
}

fn entry() -> types::Entry {
    types::Entry {
        id: "e1".into(),
        spiffe_id: Some(pid("example.org", "/workload")),
        parent_id: Some(pid("example.org", "/spire/agent/x")),
        selectors: vec![types::Selector {
            r#type: "unix".into(),
            value: "uid:1000".into(),
        }],
        x509_svid_ttl: 60,
        federates_with: vec!["spiffe://other.org".into(), "third.org".into()],
        dns_names: vec!["b.example.org".into(), "a.example.org".into()],
        hint: "h".into(),
        ..types::Entry::default()
    }
}

#[test]
fn entry_round_trips_with_names_for_federated_trust_domains() {
    let (domain, mask) = entry_from_proto(&td(), &entry(), None).unwrap();
    assert_eq!(mask, spire_server_datastore::EntryMask::ALL);
    let back = entry_to_proto(&domain);
    assert_eq!(back.federates_with, vec!["other.org", "third.org"]);
    assert_eq!(back.dns_names, vec!["b.example.org", "a.example.org"]);
    assert_eq!(back.spiffe_id, entry().spiffe_id);
}

#[test]
fn entry_errors_are_wrapped_as_spire_wraps_them() {
    let td = td();
    let mut e = entry();
    e.parent_id = Some(pid("other.org", "/x"));
    assert_eq!(
        entry_from_proto(&td, &e, None).unwrap_err().to_string(),
        "invalid parent ID: \"spiffe://other.org/x\" is not a member of trust domain \"example.org\""
    );
    let mut e = entry();
    e.spiffe_id = Some(pid("example.org", ""));
    assert!(
        entry_from_proto(&td, &e, None)
            .unwrap_err()
            .to_string()
            .starts_with("invalid spiffe ID: ")
    );
    let mut e = entry();
    e.selectors.clear();
    assert_eq!(
        entry_from_proto(&td, &e, None).unwrap_err().to_string(),
        "selector list is empty"
    );
    let mut e = entry();
    e.hint = "a".repeat(1025);
    assert_eq!(
        entry_from_proto(&td, &e, None).unwrap_err().to_string(),
        "hint is too long, max length is 1024 characters"
    );
    let mut e = entry();
    e.dns_names = vec!["example.com.".into()];
    assert_eq!(
        entry_from_proto(&td, &e, None).unwrap_err().to_string(),
        "invalid DNS name: domain ends with dot"
    );
}

#[test]
fn masked_update_reads_only_masked_fields() {
    let mut e = entry();
    e.spiffe_id = None;
    e.selectors.clear();
    let input = types::EntryMask {
        x509_svid_ttl: true,
        ..types::EntryMask::default()
    };
    let (domain, mask) = entry_from_proto(&td(), &e, Some(&input)).unwrap();
    assert!(mask.x509_svid_ttl && !mask.spiffe_id && !mask.selectors);
    assert_eq!(domain.x509_svid_ttl, 60);
    assert!(domain.dns_names.is_empty());
}

#[test]
fn output_masks_clear_unselected_fields_and_nil_keeps_all() {
    let (domain, _) = entry_from_proto(&td(), &entry(), None).unwrap();
    let mut all = entry_to_proto(&domain);
    apply_entry_mask(&mut all, None);
    assert_eq!(all, entry_to_proto(&domain));
    let mut some = entry_to_proto(&domain);
    let mask = types::EntryMask {
        spiffe_id: true,
        ..types::EntryMask::default()
    };
    apply_entry_mask(&mut some, Some(&mask));
    assert_eq!(some.id, "e1");
    assert!(some.spiffe_id.is_some() && some.parent_id.is_none() && some.selectors.is_empty());
    assert_eq!(some.x509_svid_ttl, 0);
}
