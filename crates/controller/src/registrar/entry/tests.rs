use std::collections::BTreeMap;

use spire_id::IdError;

use super::*;
use crate::registrar::fixtures::{NODE, NODE_UID, SLEEP_POD, SLEEP_POD_UID};

const NODE_ALIAS: &str =
    "spiffe://example.org/k8s-workload-registrar/demo-cluster/node/kind-worker";

fn sel(kind: &str, value: &str) -> Selector {
    Selector {
        r#type: kind.to_owned(),
        value: value.to_owned(),
    }
}

fn sleep_spec() -> SpiffeIdSpec {
    SpiffeIdSpec {
        spiffe_id: "spiffe://example.org/ns/default/sa/sleep".to_owned(),
        parent_id: NODE_ALIAS.to_owned(),
        selector: SpiffeIdSelector {
            pod_uid: SLEEP_POD_UID.to_owned(),
            namespace: "default".to_owned(),
            node_name: NODE.to_owned(),
            ..SpiffeIdSelector::default()
        },
        dns_names: vec![SLEEP_POD.to_owned(), "sleep.default.svc".to_owned()],
        federates_with: vec!["domain.test".to_owned()],
        downstream: false,
    }
}

fn sleep_entry() -> Entry {
    spiffe_id_to_entry(&sleep_spec()).expect("valid spec")
}

#[test]
fn every_selector_field_maps_in_upstream_order() {
    let selector = SpiffeIdSelector {
        pod_label: BTreeMap::from([
            ("version".to_owned(), "v1".to_owned()),
            ("app".to_owned(), "sleep".to_owned()),
        ]),
        pod_name: SLEEP_POD.to_owned(),
        pod_uid: SLEEP_POD_UID.to_owned(),
        namespace: "default".to_owned(),
        service_account: "sleep".to_owned(),
        container_image: "curlimages/curl".to_owned(),
        container_name: "sleep".to_owned(),
        node_name: NODE.to_owned(),
        arbitrary: vec!["pod-image-count:2".to_owned(), "sa:extra".to_owned()],
        cluster: "demo-cluster".to_owned(),
        agent_node_uid: NODE_UID.to_owned(),
    };
    assert_eq!(
        selectors(&selector),
        vec![
            sel("k8s_psat", "cluster:demo-cluster"),
            sel("k8s_psat", &format!("agent_node_uid:{NODE_UID}")),
            sel("k8s", "pod-label:app:sleep"),
            sel("k8s", "pod-label:version:v1"),
            sel("k8s", &format!("pod-name:{SLEEP_POD}")),
            sel("k8s", &format!("pod-uid:{SLEEP_POD_UID}")),
            sel("k8s", "ns:default"),
            sel("k8s", "sa:sleep"),
            sel("k8s", "container-name:sleep"),
            sel("k8s", "container-image:curlimages/curl"),
            sel("k8s", &format!("node-name:{NODE}")),
            sel("k8s", "pod-image-count:2"),
            sel("k8s", "sa:extra"),
        ]
    );
}

#[test]
fn empty_selector_fields_are_skipped() {
    assert!(selectors(&SpiffeIdSelector::default()).is_empty());
}

#[test]
fn pod_spec_becomes_an_entry_without_id_or_ttl() {
    let entry = sleep_entry();
    assert_eq!(
        entry,
        Entry {
            spiffe_id: Some(Spiffeid {
                trust_domain: "example.org".to_owned(),
                path: "/ns/default/sa/sleep".to_owned(),
            }),
            parent_id: Some(Spiffeid {
                trust_domain: "example.org".to_owned(),
                path: "/k8s-workload-registrar/demo-cluster/node/kind-worker".to_owned(),
            }),
            selectors: vec![
                sel("k8s", &format!("pod-uid:{SLEEP_POD_UID}")),
                sel("k8s", "ns:default"),
                sel("k8s", &format!("node-name:{NODE}")),
            ],
            dns_names: vec![SLEEP_POD.to_owned(), "sleep.default.svc".to_owned()],
            federates_with: vec!["domain.test".to_owned()],
            ..Entry::default()
        }
    );
}

#[test]
fn malformed_ids_are_reported_parent_first() {
    let both_bad = SpiffeIdSpec {
        spiffe_id: "ns/default/sa/sleep".to_owned(),
        parent_id: "spiffe://Example.org/x".to_owned(),
        ..sleep_spec()
    };
    let err = spiffe_id_to_entry(&both_bad).expect_err("bad parent");
    assert_eq!(
        err.to_string(),
        "malformed CRD parent ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
    );
    let bad_id = SpiffeIdSpec {
        spiffe_id: "ns/default/sa/sleep".to_owned(),
        ..sleep_spec()
    };
    assert_eq!(
        spiffe_id_to_entry(&bad_id),
        Err(RegistrarError::MalformedSpiffeId(IdError::WrongScheme))
    );
    assert_eq!(
        spiffe_id_to_entry(&bad_id).expect_err("bad id").to_string(),
        "malformed CRD SPIFFE ID: scheme is missing or invalid"
    );
}

#[test]
fn identical_entries_need_no_update_whatever_the_server_adds() {
    let desired = sleep_entry();
    let existing = Entry {
        id: "6f1b2c3d-0000-4000-8000-00000000abcd".to_owned(),
        revision_number: 3,
        created_at: 1_656_000_000,
        x509_svid_ttl: 3600,
        ..desired.clone()
    };
    assert!(!entry_needs_update(&existing, &desired));
}

#[test]
fn selector_order_does_not_matter() {
    let desired = sleep_entry();
    let mut existing = desired.clone();
    existing.selectors.reverse();
    assert!(!entry_needs_update(&existing, &desired));
}

#[test]
fn dns_name_order_matters() {
    let desired = sleep_entry();
    let mut existing = desired.clone();
    existing.dns_names.reverse();
    assert!(entry_needs_update(&existing, &desired));
}

#[test]
fn federates_with_changes_alone_never_update() {
    let desired = sleep_entry();
    let mut existing = desired.clone();
    existing.federates_with = vec!["other.test".to_owned()];
    assert!(!entry_needs_update(&existing, &desired));
}

#[test]
fn id_parent_selector_dns_and_downstream_changes_update() {
    let desired = sleep_entry();
    let changes: [fn(&mut Entry); 6] = [
        |e| {
            if let Some(id) = e.spiffe_id.as_mut() {
                id.path = "/ns/default/sa/other".to_owned();
            }
        },
        |e| {
            if let Some(id) = e.parent_id.as_mut() {
                id.path = "/k8s-workload-registrar/demo-cluster/node/other".to_owned();
            }
        },
        |e| e.selectors[0] = sel("k8s", "pod-uid:other"),
        |e| e.selectors.push(sel("k8s", "sa:sleep")),
        |e| e.dns_names.push("extra".to_owned()),
        |e| e.downstream = true,
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut existing = desired.clone();
        change(&mut existing);
        assert!(entry_needs_update(&existing, &desired), "change #{i}");
    }
}
