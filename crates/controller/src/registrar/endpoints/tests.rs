use super::*;
use crate::crd::SpiffeIdSpec;
use crate::registrar::fixtures::{
    SLEEP_POD, SLEEP_POD_UID, annotation_settings, edit, pod, quickstart_settings, sleep_endpoints,
    sleep_pod, sleep_pod_json,
};
use crate::registrar::{Registrar, RegistrarSettings};

fn object_with(dns_names: &[&str]) -> crd::SpiffeId {
    crd::SpiffeId {
        spec: SpiffeIdSpec {
            dns_names: dns_names.iter().map(|n| (*n).to_owned()).collect(),
            ..SpiffeIdSpec::default()
        },
        ..crd::SpiffeId::default()
    }
}

#[test]
fn service_dns_name_is_svc_ns_svc() {
    assert_eq!(svc_dns_name(&sleep_endpoints()), "sleep.default.svc");
    assert_eq!(
        service_dns_name("productpage", "bookinfo"),
        "productpage.bookinfo.svc"
    );
}

#[test]
fn only_ready_addresses_with_a_target_ref_count() {
    assert_eq!(
        target_pods(&sleep_endpoints()),
        vec![TargetPod {
            uid: SLEEP_POD_UID.to_owned(),
            name: SLEEP_POD.to_owned(),
            namespace: "default".to_owned(),
        }]
    );
    assert_eq!(
        target_pod_uids(&sleep_endpoints()),
        vec![SLEEP_POD_UID.to_owned()]
    );
    assert_eq!(
        pod_uid_label_selector(SLEEP_POD_UID),
        format!("podUid={SLEEP_POD_UID}")
    );
}

#[test]
fn a_pod_in_two_subsets_is_listed_once() {
    let mut endpoints = sleep_endpoints();
    let subsets = endpoints.subsets.as_mut().expect("subsets");
    let copy = subsets[0].clone();
    subsets.push(copy);
    assert_eq!(target_pods(&endpoints).len(), 1);
}

#[test]
fn endpoints_without_subsets_target_nothing() {
    let mut endpoints = sleep_endpoints();
    endpoints.subsets = None;
    assert!(target_pods(&endpoints).is_empty());
}

#[test]
fn service_name_is_appended_once() {
    let mut object = object_with(&[SLEEP_POD]);
    assert!(add_dns_name(&mut object, "sleep.default.svc"));
    assert!(!add_dns_name(&mut object, "sleep.default.svc"));
    assert_eq!(object.spec.dns_names, vec![SLEEP_POD, "sleep.default.svc"]);
}

#[test]
fn service_name_is_removed_everywhere_and_order_kept() {
    let mut object = object_with(&[
        SLEEP_POD,
        "sleep.default.svc",
        "other.default.svc",
        "sleep.default.svc",
    ]);
    assert!(remove_dns_name(&mut object, "sleep.default.svc"));
    assert_eq!(object.spec.dns_names, vec![SLEEP_POD, "other.default.svc"]);
    assert!(!remove_dns_name(&mut object, "sleep.default.svc"));
}

#[test]
fn missing_spiffe_id_is_waited_for_only_when_the_pod_will_get_one() {
    let annotation = Registrar::new(annotation_settings()).expect("valid settings");
    assert!(annotation.waits_for_pod(None));
    assert!(!annotation.waits_for_pod(Some(&sleep_pod())));
    let annotated = pod(edit(sleep_pod_json(), |v| {
        v["metadata"]["annotations"]["spiffe.io/spiffe-id"] = "sleep".into();
    }));
    assert!(annotation.waits_for_pod(Some(&annotated)));

    let label = Registrar::new(RegistrarSettings {
        pod_label: "app".to_owned(),
        dns_name_templates: Some(Vec::new()),
        ..quickstart_settings()
    })
    .expect("valid settings");
    assert!(label.waits_for_pod(Some(&sleep_pod())));
}

/// Tests that execute Go templates (need `spire-gotmpl`).
mod templates {
    use super::*;

    #[test]
    fn templated_identities_always_wait_for_the_pod() {
        let config = Registrar::new(quickstart_settings()).expect("defaults are valid");
        assert!(config.waits_for_pod(Some(&sleep_pod())));
    }
}
