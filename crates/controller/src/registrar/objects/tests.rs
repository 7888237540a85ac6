use super::*;
use crate::registrar::fixtures::{
    NODE, NODE_UID, REGISTRAR_NS, SLEEP_POD, SLEEP_POD_UID, annotation_settings, edit, node, pod,
    quickstart_settings, sleep_pod, sleep_pod_json, td,
};
use crate::registrar::{Registrar, RegistrarSettings};

const NODE_ALIAS: &str =
    "spiffe://example.org/k8s-workload-registrar/demo-cluster/node/kind-worker";

fn annotated_sleep_pod() -> Pod {
    pod(edit(sleep_pod_json(), |v| {
        v["metadata"]["annotations"]["spiffe.io/spiffe-id"] = "ns/default/sa/sleep".into();
    }))
}

fn annotation_config() -> Registrar {
    Registrar::new(annotation_settings()).expect("valid settings")
}

#[test]
fn node_alias_object_is_owned_by_the_node_in_the_registrar_namespace() {
    let object = node_spiffe_id(&node(), "demo-cluster", &td(), REGISTRAR_NS);
    let meta = &object.metadata;
    assert_eq!(meta.name.as_deref(), Some(NODE));
    assert_eq!(meta.namespace.as_deref(), Some(REGISTRAR_NS));
    assert_eq!(
        meta.labels,
        Some(BTreeMap::from([(
            "nodeUid".to_owned(),
            NODE_UID.to_owned()
        )]))
    );
    assert_eq!(
        meta.owner_references,
        Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            name: NODE.to_owned(),
            uid: NODE_UID.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }])
    );
    assert_eq!(
        object.spec,
        SpiffeIdSpec {
            spiffe_id: NODE_ALIAS.to_owned(),
            parent_id: "spiffe://example.org/spire/server".to_owned(),
            selector: SpiffeIdSelector {
                cluster: "demo-cluster".to_owned(),
                agent_node_uid: NODE_UID.to_owned(),
                ..SpiffeIdSelector::default()
            },
            ..SpiffeIdSpec::default()
        }
    );
    assert_eq!(object.status, None);
}

#[test]
fn node_objects_are_created_once_and_never_updated() {
    let desired = node_spiffe_id(&node(), "demo-cluster", &td(), REGISTRAR_NS);
    assert_eq!(
        node_object_action(desired.clone(), None),
        Some(desired.clone())
    );
    let mut stale = desired.clone();
    stale.spec.selector.agent_node_uid = "old-uid".to_owned();
    assert_eq!(node_object_action(desired, Some(&stale)), None);
}

#[test]
fn pod_object_is_owned_by_the_pod_without_blocking_its_deletion() {
    let object = pod_spiffe_id(&annotated_sleep_pod(), &annotation_config())
        .expect("no template")
        .expect("pod selected");
    let meta = &object.metadata;
    assert_eq!(meta.name.as_deref(), Some(SLEEP_POD));
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(
        meta.labels,
        Some(BTreeMap::from([(
            "podUid".to_owned(),
            SLEEP_POD_UID.to_owned()
        )]))
    );
    assert_eq!(
        meta.owner_references,
        Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: SLEEP_POD.to_owned(),
            uid: SLEEP_POD_UID.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }])
    );
    assert_eq!(
        object.spec,
        SpiffeIdSpec {
            spiffe_id: "spiffe://example.org/ns/default/sa/sleep".to_owned(),
            parent_id: NODE_ALIAS.to_owned(),
            selector: SpiffeIdSelector {
                pod_uid: SLEEP_POD_UID.to_owned(),
                namespace: "default".to_owned(),
                node_name: NODE.to_owned(),
                ..SpiffeIdSelector::default()
            },
            ..SpiffeIdSpec::default()
        }
    );
}

#[test]
fn federates_with_annotation_is_split_on_commas_without_trimming() {
    let config = annotation_config();
    let with = |value: &str| {
        let p = pod(edit(annotated_sleep_pod_json(), |v| {
            v["metadata"]["annotations"]["spiffe.io/federatesWith"] = value.into();
        }));
        pod_spiffe_id(&p, &config)
            .expect("no template")
            .expect("pod selected")
            .spec
            .federates_with
    };
    assert_eq!(with("domain.test"), vec!["domain.test"]);
    assert_eq!(
        with("domain.test, other.test"),
        vec!["domain.test", " other.test"]
    );
    assert_eq!(with(""), vec![""]);
    let plain = pod_spiffe_id(&annotated_sleep_pod(), &config)
        .expect("no template")
        .expect("pod selected");
    assert!(plain.spec.federates_with.is_empty());
}

fn annotated_sleep_pod_json() -> serde_json::Value {
    edit(sleep_pod_json(), |v| {
        v["metadata"]["annotations"]["spiffe.io/spiffe-id"] = "ns/default/sa/sleep".into();
    })
}

#[test]
fn unscheduled_pods_disabled_namespaces_and_unselected_pods_are_skipped() {
    let config = annotation_config();
    let unscheduled = pod(edit(annotated_sleep_pod_json(), |v| {
        v["spec"]
            .as_object_mut()
            .expect("spec object")
            .remove("nodeName");
    }));
    assert_eq!(pod_spiffe_id(&unscheduled, &config), Ok(None));
    let empty_node = pod(edit(annotated_sleep_pod_json(), |v| {
        v["spec"]["nodeName"] = "".into();
    }));
    assert_eq!(pod_spiffe_id(&empty_node, &config), Ok(None));
    let kube_system = pod(edit(annotated_sleep_pod_json(), |v| {
        v["metadata"]["namespace"] = "kube-system".into();
    }));
    assert_eq!(pod_spiffe_id(&kube_system, &config), Ok(None));
    assert_eq!(pod_spiffe_id(&sleep_pod(), &config), Ok(None));
}

#[test]
fn new_pod_objects_are_created() {
    let desired = pod_spiffe_id(&annotated_sleep_pod(), &annotation_config())
        .expect("no template")
        .expect("pod selected");
    assert_eq!(
        pod_object_action(desired.clone(), None),
        PodObjectAction::Create(desired)
    );
}

#[test]
fn an_object_of_an_earlier_pod_with_the_same_name_requeues() {
    let desired = pod_spiffe_id(&annotated_sleep_pod(), &annotation_config())
        .expect("no template")
        .expect("pod selected");
    let mut earlier = desired.clone();
    earlier.spec.selector.pod_uid = "5e8a1f0c-0000-4000-8000-000000000001".to_owned();
    assert_eq!(
        pod_object_action(desired, Some(&earlier)),
        PodObjectAction::Requeue
    );
}

#[test]
fn only_a_changed_spiffe_id_is_pushed_to_an_existing_object() {
    let desired = pod_spiffe_id(&annotated_sleep_pod(), &annotation_config())
        .expect("no template")
        .expect("pod selected");
    let mut existing = desired.clone();
    existing.spec.spiffe_id = "spiffe://example.org/old".to_owned();
    existing.spec.dns_names = vec!["stale".to_owned(), "sleep.default.svc".to_owned()];
    existing.spec.federates_with = vec!["old.test".to_owned()];
    existing.spec.parent_id = "spiffe://example.org/old-parent".to_owned();
    existing.metadata.resource_version = Some("42".to_owned());

    let mut expected = existing.clone();
    expected.spec.spiffe_id = "spiffe://example.org/ns/default/sa/sleep".to_owned();
    assert_eq!(
        pod_object_action(desired.clone(), Some(&existing)),
        PodObjectAction::Update(expected)
    );

    let mut drifted = desired.clone();
    drifted.spec.dns_names = vec!["other".to_owned()];
    drifted.spec.federates_with = vec!["other.test".to_owned()];
    assert_eq!(
        pod_object_action(desired, Some(&drifted)),
        PodObjectAction::Nothing
    );
}

/// Tests that execute Go templates (need `spire-gotmpl`).
mod templates {
    use super::*;

    #[test]
    fn istio_sleep_pod_gets_ns_sa_identity_under_its_node_alias() {
        let config = Registrar::new(quickstart_settings()).expect("defaults are valid");
        let object = pod_spiffe_id(&sleep_pod(), &config)
            .expect("renders")
            .expect("pod selected");
        assert_eq!(
            object.spec.spiffe_id,
            "spiffe://example.org/ns/default/sa/sleep"
        );
        assert_eq!(object.spec.parent_id, NODE_ALIAS);
        assert_eq!(object.spec.dns_names, vec![SLEEP_POD.to_owned()]);
        assert!(object.spec.federates_with.is_empty());
    }

    #[test]
    fn federation_annotation_from_the_istio_guide_reaches_the_object() {
        let config = Registrar::new(quickstart_settings()).expect("defaults are valid");
        let p = pod(edit(sleep_pod_json(), |v| {
            v["metadata"]["annotations"]["spiffe.io/federatesWith"] = "domain.test".into();
        }));
        let object = pod_spiffe_id(&p, &config)
            .expect("renders")
            .expect("pod selected");
        assert_eq!(object.spec.federates_with, vec!["domain.test".to_owned()]);
    }

    #[test]
    fn gated_template_skips_pods_without_the_label() {
        let settings = RegistrarSettings {
            identity_template_label: "spiffe.io/spire-managed-identity".to_owned(),
            ..quickstart_settings()
        };
        let config = Registrar::new(settings).expect("valid settings");
        assert_eq!(pod_spiffe_id(&sleep_pod(), &config), Ok(None));
    }
}
