use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::crd::{SpiffeIdSelector, SpiffeIdSpec};
use crate::registrar::fixtures::{NODE, SLEEP_POD, SLEEP_POD_UID};

const ENTRY_ID: &str = "6f1b2c3d-0000-4000-8000-00000000abcd";

fn object(finalizer: bool, entry_id: Option<&str>, deleting: bool) -> crd::SpiffeId {
    crd::SpiffeId {
        metadata: ObjectMeta {
            name: Some(SLEEP_POD.to_owned()),
            namespace: Some("default".to_owned()),
            finalizers: finalizer.then(|| vec![FINALIZER.to_owned()]),
            deletion_timestamp: deleting
                .then(|| Time("2022-06-30T10:00:00Z".parse().expect("valid timestamp"))),
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
            dns_names: vec![SLEEP_POD.to_owned()],
            ..SpiffeIdSpec::default()
        },
        status: entry_id.map(|id| SpiffeIdStatus {
            entry_id: id.to_owned(),
        }),
    }
}

fn desired(obj: &crd::SpiffeId) -> Entry {
    spiffe_id_to_entry(&obj.spec).expect("valid spec")
}

fn stored(obj: &crd::SpiffeId) -> Entry {
    Entry {
        id: ENTRY_ID.to_owned(),
        revision_number: 1,
        ..desired(obj)
    }
}

fn stale(obj: &crd::SpiffeId) -> Entry {
    Entry {
        dns_names: Vec::new(),
        ..stored(obj)
    }
}

fn next(obj: &crd::SpiffeId, seen: Observation) -> SyncAction {
    next_action(obj, &seen).expect("valid spec")
}

#[test]
fn finalizer_is_added_before_anything_else() {
    let obj = object(false, None, false);
    assert_eq!(next(&obj, Observation::Start), SyncAction::AddFinalizer);
}

#[test]
fn new_object_creates_its_entry_and_records_the_id() {
    let obj = object(true, None, false);
    assert_eq!(
        next(&obj, Observation::Start),
        SyncAction::CreateEntry(desired(&obj))
    );
    assert_eq!(
        next(&obj, Observation::Created(stored(&obj))),
        SyncAction::SetStatus(Some(ENTRY_ID.to_owned()))
    );
}

#[test]
fn already_existing_equal_entry_is_adopted() {
    let obj = object(true, None, false);
    assert_eq!(
        next(&obj, Observation::AlreadyExists(stored(&obj))),
        SyncAction::SetStatus(Some(ENTRY_ID.to_owned()))
    );
}

#[test]
fn already_existing_different_entry_is_updated_then_adopted() {
    let obj = object(true, None, false);
    let mut update = desired(&obj);
    update.id = ENTRY_ID.to_owned();
    assert_eq!(
        next(&obj, Observation::AlreadyExists(stale(&obj))),
        SyncAction::UpdateEntry(update)
    );
    assert_eq!(
        next(&obj, Observation::Updated(ENTRY_ID.to_owned())),
        SyncAction::SetStatus(Some(ENTRY_ID.to_owned()))
    );
}

#[test]
fn recorded_entry_is_fetched_and_left_alone_when_equal() {
    let obj = object(true, Some(ENTRY_ID), false);
    assert_eq!(
        next(&obj, Observation::Start),
        SyncAction::GetEntry(ENTRY_ID.to_owned())
    );
    assert_eq!(
        next(&obj, Observation::Fetched(stored(&obj))),
        SyncAction::Done
    );
}

#[test]
fn recorded_entry_that_drifted_is_updated_without_touching_status() {
    let obj = object(true, Some(ENTRY_ID), false);
    let mut update = desired(&obj);
    update.id = ENTRY_ID.to_owned();
    assert_eq!(
        next(&obj, Observation::Fetched(stale(&obj))),
        SyncAction::UpdateEntry(update)
    );
    assert_eq!(
        next(&obj, Observation::Updated(ENTRY_ID.to_owned())),
        SyncAction::Done
    );
}

#[test]
fn federation_drift_alone_is_not_pushed() {
    let obj = object(true, Some(ENTRY_ID), false);
    let existing = Entry {
        federates_with: vec!["domain.test".to_owned()],
        ..stored(&obj)
    };
    assert_eq!(next(&obj, Observation::Fetched(existing)), SyncAction::Done);
}

#[test]
fn vanished_entry_clears_the_status_so_the_next_pass_recreates_it() {
    let obj = object(true, Some(ENTRY_ID), false);
    assert_eq!(
        next(&obj, Observation::NotFound),
        SyncAction::SetStatus(None)
    );
    let cleared = object(true, Some(""), false);
    assert_eq!(
        next(&cleared, Observation::Start),
        SyncAction::CreateEntry(desired(&cleared))
    );
}

#[test]
fn deletion_deletes_the_entry_then_releases_the_object() {
    let obj = object(true, Some(ENTRY_ID), true);
    assert_eq!(
        next(&obj, Observation::Start),
        SyncAction::DeleteEntry(ENTRY_ID.to_owned())
    );
    assert_eq!(
        next(&obj, Observation::Deleted),
        SyncAction::RemoveFinalizer
    );
}

#[test]
fn deletion_without_entry_only_releases_the_object() {
    let obj = object(true, None, true);
    assert_eq!(next(&obj, Observation::Start), SyncAction::RemoveFinalizer);
}

#[test]
fn deletion_without_finalizer_does_nothing() {
    let obj = object(false, Some(ENTRY_ID), true);
    assert_eq!(next(&obj, Observation::Start), SyncAction::Done);
}

#[test]
fn deleting_objects_with_bad_specs_still_release() {
    let mut obj = object(true, Some(ENTRY_ID), true);
    obj.spec.spiffe_id = "not an id".to_owned();
    assert_eq!(
        next(&obj, Observation::Start),
        SyncAction::DeleteEntry(ENTRY_ID.to_owned())
    );
}

#[test]
fn bad_spec_fails_the_pass() {
    let mut obj = object(true, None, false);
    obj.spec.parent_id = "spiffe://example.org//bad".to_owned();
    assert_eq!(
        next_action(&obj, &Observation::Start)
            .expect_err("bad parent")
            .to_string(),
        "malformed CRD parent ID: path cannot contain empty segments"
    );
}

#[test]
fn finalizer_helpers_add_once_and_remove_all() {
    let mut obj = object(false, None, false);
    obj.metadata.finalizers = Some(vec!["example.com/other".to_owned()]);
    assert!(add_finalizer(&mut obj));
    assert!(!add_finalizer(&mut obj));
    assert_eq!(
        obj.metadata.finalizers,
        Some(vec!["example.com/other".to_owned(), FINALIZER.to_owned()])
    );
    obj.metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(FINALIZER.to_owned());
    assert!(remove_finalizer(&mut obj));
    assert!(!has_finalizer(&obj));
    assert_eq!(
        obj.metadata.finalizers,
        Some(vec!["example.com/other".to_owned()])
    );
    assert!(!remove_finalizer(&mut obj));
    let mut bare = object(false, None, false);
    assert!(!remove_finalizer(&mut bare));
    assert!(add_finalizer(&mut bare));
    assert_eq!(bare.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));
}

#[test]
fn status_entry_id_ignores_empty_values() {
    let mut obj = object(true, Some(""), false);
    assert_eq!(status_entry_id(&obj), None);
    set_status_entry_id(&mut obj, Some(ENTRY_ID.to_owned()));
    assert_eq!(status_entry_id(&obj), Some(ENTRY_ID));
    set_status_entry_id(&mut obj, None);
    assert_eq!(status_entry_id(&obj), None);
    assert!(!is_deleting(&obj));
    assert!(is_deleting(&object(true, None, true)));
}
