use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use spire_proto::spire::api::types::Spiffeid;

use super::*;
use crate::crd::{SpiffeIdSelector, SpiffeIdSpec, SpiffeIdStatus};
use crate::registrar::fixtures::{NODE, NODE_UID, REGISTRAR_NS, SLEEP_POD, SLEEP_POD_UID, td};
use crate::registrar::node_spiffe_id;

const ENTRY_ID: &str = "6f1b2c3d-0000-4000-8000-00000000abcd";

fn sleep_object() -> crd::SpiffeId {
    crd::SpiffeId {
        metadata: ObjectMeta {
            name: Some(SLEEP_POD.to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        spec: SpiffeIdSpec {
            spiffe_id: "spiffe://example.org/ns/default/sa/sleep".to_owned(),
            parent_id: "spiffe://example.org/k8s-workload-registrar/demo-cluster/node/kind-worker"
                .to_owned(),
            selector: SpiffeIdSelector {
                pod_uid: SLEEP_POD_UID.to_owned(),
                namespace: "default".to_owned(),
                node_name: NODE.to_owned(),
                ..SpiffeIdSelector::default()
            },
            dns_names: vec![SLEEP_POD.to_owned(), "sleep.default.svc".to_owned()],
            ..SpiffeIdSpec::default()
        },
        status: None,
    }
}

fn message(object: &crd::SpiffeId) -> String {
    validate_spiffe_id_object(object, &td(), REGISTRAR_NS)
        .expect_err("invalid")
        .to_string()
}

#[test]
fn registrar_made_objects_pass() {
    assert_eq!(
        validate_spiffe_id_object(&sleep_object(), &td(), REGISTRAR_NS),
        Ok(())
    );
    let node = node_spiffe_id(
        &crate::registrar::fixtures::node(),
        "demo-cluster",
        &td(),
        REGISTRAR_NS,
    );
    assert_eq!(node.spec.selector.agent_node_uid, NODE_UID);
    assert_eq!(
        validate_spiffe_id_object(&node, &td(), REGISTRAR_NS),
        Ok(())
    );
}

#[test]
fn ids_outside_the_trust_domain_are_refused_parent_first() {
    let mut object = sleep_object();
    object.spec.parent_id = "spiffe://other.org/node".to_owned();
    object.spec.spiffe_id = "spiffe://other.org/sleep".to_owned();
    assert_eq!(
        message(&object),
        "spec.parentId must begin with spiffe://example.org"
    );
    object.spec.parent_id = sleep_object().spec.parent_id;
    assert_eq!(
        message(&object),
        "spec.spiffeId must begin with spiffe://example.org"
    );
}

#[test]
fn prefix_check_is_a_plain_string_prefix() {
    let mut object = sleep_object();
    object.spec.spiffe_id = "spiffe://example.org.evil/sleep".to_owned();
    assert_eq!(
        validate_spiffe_id_object(&object, &td(), REGISTRAR_NS),
        Ok(())
    );
}

#[test]
fn psat_selectors_are_reserved_to_the_registrar_namespace() {
    let mut object = sleep_object();
    object.spec.selector.cluster = "demo-cluster".to_owned();
    assert_eq!(
        message(&object),
        "spec.Selector.Cluster and spec.Selector.AgentNodeUid can only be used by the k8s-workload-registrar"
    );
    let mut object = sleep_object();
    object.spec.selector.agent_node_uid = NODE_UID.to_owned();
    assert_eq!(
        validate_spiffe_id_object(&object, &td(), REGISTRAR_NS),
        Err(RegistrarError::PsatSelectorOutsideRegistrar)
    );
}

#[test]
fn namespace_selector_must_match_the_object_namespace() {
    let mut object = sleep_object();
    object.spec.selector.namespace = "bookinfo".to_owned();
    assert_eq!(
        message(&object),
        "spec.Selector.Namespace must match namespace of resource"
    );
    object.spec.selector.namespace = String::new();
    assert_eq!(
        validate_spiffe_id_object(&object, &td(), REGISTRAR_NS),
        Err(RegistrarError::NamespaceMismatch)
    );
}

#[test]
fn invalid_dns_names_are_quoted_with_the_reason() {
    let mut object = sleep_object();
    object.spec.dns_names.push("sleep-.default.svc".to_owned());
    assert_eq!(
        message(&object),
        "invalid DNS name \"sleep-.default.svc\": label does not match regex: sleep-"
    );
}

#[test]
fn dns_name_rules_and_messages() {
    let cases: [(&str, Result<(), DnsNameError>); 11] = [
        (SLEEP_POD, Ok(())),
        ("sleep.default.svc", Ok(())),
        ("  sleep.default.svc ", Ok(())),
        ("Sleep-V2.example.org", Ok(())),
        ("   ", Err(DnsNameError::Empty)),
        ("sleep..svc", Err(DnsNameError::EmptyLabel)),
        ("sleep.svc.", Err(DnsNameError::EmptyLabel)),
        ("a.example.org", Err(DnsNameError::BadLabel("a".to_owned()))),
        ("*.example.org", Err(DnsNameError::BadLabel("*".to_owned()))),
        ("-sleep", Err(DnsNameError::BadLabel("-sleep".to_owned()))),
        (
            "sleep_v2",
            Err(DnsNameError::BadLabel("sleep_v2".to_owned())),
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(validate_dns_name(name), expected, "{name:?}");
    }
    let long_label = "a".repeat(64);
    assert_eq!(
        validate_dns_name(&format!("{long_label}.svc")),
        Err(DnsNameError::LabelTooLong(long_label.clone()))
    );
    assert_eq!(
        DnsNameError::LabelTooLong(long_label.clone()).to_string(),
        format!("label length exceeded: {long_label}")
    );
    let long_name = vec!["ab"; 86].join(".");
    assert_eq!(long_name.len(), 257);
    assert_eq!(validate_dns_name(&long_name), Err(DnsNameError::TooLong));
    assert_eq!(DnsNameError::TooLong.to_string(), "length exceeded");
    assert_eq!(DnsNameError::Empty.to_string(), "empty or only whitespace");
    assert_eq!(DnsNameError::EmptyLabel.to_string(), "label is empty");
}

fn listed(id: &str, path: &str) -> Entry {
    Entry {
        id: id.to_owned(),
        spiffe_id: Some(Spiffeid {
            trust_domain: "example.org".to_owned(),
            path: path.to_owned(),
        }),
        ..Entry::default()
    }
}

#[test]
fn same_id_and_selectors_under_another_entry_is_a_duplicate() {
    let object = sleep_object();
    let err = check_duplicate(&object, &[listed(ENTRY_ID, "/ns/default/sa/sleep")])
        .expect_err("duplicate");
    assert_eq!(err.to_string(), "Duplicate detected");
}

#[test]
fn own_entry_and_other_ids_are_not_duplicates() {
    let mut object = sleep_object();
    object.status = Some(SpiffeIdStatus {
        entry_id: ENTRY_ID.to_owned(),
    });
    assert_eq!(
        check_duplicate(
            &object,
            &[
                listed(ENTRY_ID, "/ns/default/sa/sleep"),
                listed("other", "/ns/default/sa/other"),
            ]
        ),
        Ok(())
    );
    assert_eq!(check_duplicate(&sleep_object(), &[]), Ok(()));
}

#[test]
fn malformed_listed_ids_are_reported() {
    let err =
        check_duplicate(&sleep_object(), &[listed(ENTRY_ID, "no-slash")]).expect_err("malformed");
    assert_eq!(
        err.to_string(),
        "entry SPIFFE ID is malformed: path must have a leading slash"
    );
}
