//! Deletion as the apiserver and its controllers carry it out: finalizers hold an object
//! (with `deletionTimestamp` set) until updates clear them, the garbage collector deletes
//! dependents whose owners are all gone (or orphans them, or deletes them first), a
//! namespace being deleted empties before it goes, and so does a CustomResourceDefinition
//! (its custom objects are deleted, each gone once its finalizers are cleared; the CRD's own
//! `customresourcecleanup` finalizer is implicit here).

use std::collections::HashSet;

use serde_json::Value;

use super::json::{metadata_mut, str_at};
use super::path::query_param;
use super::status::Status;
use super::store::{Key, Store};

/// The finalizer that holds an owner deleted with `propagationPolicy: Foreground` until its
/// blocking dependents are gone.
pub(crate) const FOREGROUND_DELETION: &str = "foregroundDeletion";

/// What happens to the dependents of a deleted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// Deleted after the owner is gone (the default).
    Background,
    /// Deleted before the owner, which waits for them.
    Foreground,
    /// Kept, without the owner reference.
    Orphan,
}

/// The outcome of a deletion request.
#[derive(Debug)]
pub(crate) enum Deletion {
    /// The object is gone; its last state.
    Removed(Value),
    /// Finalizers hold it; its state, with `deletionTimestamp`.
    Pending(Value),
}

// === impl Propagation ===

impl Propagation {
    /// From the `propagationPolicy` (or deprecated `orphanDependents`) of the DeleteOptions
    /// body or the query.
    pub(crate) fn from_request(query: &str, options: &Value) -> Result<Self, Status> {
        let policy = options["propagationPolicy"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| query_param(query, "propagationPolicy"));
        match policy.as_deref() {
            Some("Background") => Ok(Self::Background),
            Some("Foreground") => Ok(Self::Foreground),
            Some("Orphan") => Ok(Self::Orphan),
            Some(other) => Err(Status::bad_request(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: {other:?}: supported \
                 values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
            None if options["orphanDependents"] == true => Ok(Self::Orphan),
            None => Ok(Self::Background),
        }
    }
}

/// `metadata.finalizers`.
pub(crate) fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// For a CustomResourceDefinition: the (group, plural) of the resource it declares.
fn crd_resource(key: &Key, crd: &Value) -> Option<(String, String)> {
    if key.0 != "apiextensions.k8s.io" || key.1 != "customresourcedefinitions" {
        return None;
    }
    let spec = &crd["spec"];
    Some((
        spec["group"].as_str()?.to_owned(),
        spec["names"]["plural"].as_str()?.to_owned(),
    ))
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"].get("deletionTimestamp").is_some()
}

/// Whether `object` lists an owner with `uid`.
fn owned_by(object: &Value, uid: &str) -> bool {
    owner_uids(object).any(|owner| owner == uid)
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|owner| owner["uid"].as_str())
}

// === impl Store ===

impl Store {
    /// Deletes the object under `key` as a DELETE request does.
    pub(crate) fn delete_key(
        &mut self,
        key: &Key,
        propagation: Propagation,
        now: &str,
    ) -> Option<Deletion> {
        let mut object = self.objects.get(key)?.clone();
        let uid = str_at(&object, "uid").unwrap_or("").to_owned();
        if propagation == Propagation::Orphan && !uid.is_empty() {
            self.orphan_dependents(&uid, now);
        }
        let dependents = if uid.is_empty() {
            Vec::new()
        } else {
            self.dependents(&uid)
        };
        let foreground = propagation == Propagation::Foreground && !dependents.is_empty();
        let is_namespace = key.0.is_empty() && key.1 == "namespaces";
        let crd_resource = crd_resource(key, &object);
        let mut finalizers = finalizers(&object);
        if foreground && !finalizers.iter().any(|f| f == FOREGROUND_DELETION) {
            finalizers.push(FOREGROUND_DELETION.to_owned());
        }
        if finalizers.is_empty() && !is_namespace && crd_resource.is_none() {
            return self.remove_now(key, None, now).map(Deletion::Removed);
        }
        let mut changed = false;
        if finalizers != self::finalizers(&object) {
            metadata_mut(&mut object).insert("finalizers".into(), finalizers.into());
            changed = true;
        }
        if !is_deleting(&object) {
            let tracks_generation = self
                .resources
                .get(&key.0, &key.1)
                .is_some_and(|i| i.generation);
            let meta = metadata_mut(&mut object);
            meta.insert("deletionTimestamp".into(), now.into());
            meta.insert("deletionGracePeriodSeconds".into(), 0.into());
            if tracks_generation {
                let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
                meta.insert("generation".into(), (generation + 1).into());
            }
            if is_namespace {
                object["status"]["phase"] = "Terminating".into();
            }
            changed = true;
        }
        if changed {
            object = self.commit(key.clone(), object, now);
        }
        if foreground {
            for dependent in dependents {
                self.delete_key(&dependent, Propagation::Background, now);
            }
        }
        if is_namespace {
            let content: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, namespace, _)| namespace == &key.3)
                .cloned()
                .collect();
            for item in content {
                self.delete_key(&item, Propagation::Background, now);
            }
        }
        if let Some((group, plural)) = crd_resource {
            let custom_objects: Vec<Key> = self
                .objects
                .keys()
                .filter(|(g, r, _, _)| *g == group && *r == plural)
                .cloned()
                .collect();
            for item in custom_objects {
                self.delete_key(&item, Propagation::Background, now);
            }
        }
        self.settle(now);
        Some(match self.objects.get(key) {
            Some(current) => Deletion::Pending(current.clone()),
            None => Deletion::Removed(object),
        })
    }

    /// The keys of the objects with an owner reference to `uid`.
    fn dependents(&self, uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, object)| owned_by(object, uid))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The garbage collector's answer to the removal of the object with `uid`: each
    /// dependent none of whose owners exists any more is deleted (finalizers respected);
    /// the others lose their reference to it.
    pub(super) fn collect_dependents(&mut self, uid: &str, now: &str) {
        let dependents = self.dependents(uid);
        if dependents.is_empty() {
            return;
        }
        let existing: HashSet<String> = self
            .objects
            .values()
            .filter_map(|o| str_at(o, "uid").map(str::to_owned))
            .collect();
        for key in dependents {
            let Some(object) = self.objects.get(&key) else {
                continue;
            };
            if owner_uids(object).any(|owner| existing.contains(owner)) {
                self.drop_owner_reference(&key, uid, now);
            } else if !is_deleting(object) {
                self.delete_key(&key, Propagation::Background, now);
            }
        }
    }

    /// Drops the owner references to `uid`.
    fn orphan_dependents(&mut self, uid: &str, now: &str) {
        for key in self.dependents(uid) {
            self.drop_owner_reference(&key, uid, now);
        }
    }

    /// Drops the reference of the object under `key` to owner `uid`.
    fn drop_owner_reference(&mut self, key: &Key, uid: &str, now: &str) {
        let Some(mut object) = self.objects.get(key).cloned() else {
            return;
        };
        let meta = metadata_mut(&mut object);
        if let Some(Value::Array(owners)) = meta.get_mut("ownerReferences") {
            owners.retain(|owner| owner["uid"].as_str() != Some(uid));
            if owners.is_empty() {
                meta.remove("ownerReferences");
            }
        }
        self.commit(key.clone(), object, now);
    }

    /// Finishes deletions that nothing holds any more: foreground owners whose blocking
    /// dependents are gone, and emptied namespaces.
    pub(crate) fn settle(&mut self, now: &str) {
        loop {
            let ready: Vec<Key> = self
                .objects
                .iter()
                .filter(|(key, object)| is_deleting(object) && self.ready_to_finish(key, object))
                .map(|(key, _)| key.clone())
                .collect();
            if ready.is_empty() {
                return;
            }
            for key in ready {
                // An earlier removal may have finished (or removed) this one already.
                let Some(mut object) = self
                    .objects
                    .get(&key)
                    .filter(|object| is_deleting(object) && self.ready_to_finish(&key, object))
                    .cloned()
                else {
                    continue;
                };
                let remaining: Vec<String> = finalizers(&object)
                    .into_iter()
                    .filter(|f| f != FOREGROUND_DELETION)
                    .collect();
                if remaining.is_empty() {
                    metadata_mut(&mut object).remove("finalizers");
                    self.remove_now(&key, Some(object), now);
                } else {
                    metadata_mut(&mut object).insert("finalizers".into(), remaining.into());
                    self.commit(key, object, now);
                }
            }
        }
    }

    /// Whether a deleting object only waits for what the server itself resolves.
    fn ready_to_finish(&self, key: &Key, object: &Value) -> bool {
        let finalizers = finalizers(object);
        if key.0.is_empty() && key.1 == "namespaces" {
            return finalizers.is_empty()
                && !self
                    .objects
                    .keys()
                    .any(|(_, _, namespace, _)| namespace == &key.3);
        }
        if let Some((group, plural)) = crd_resource(key, object) {
            return finalizers.is_empty()
                && !self
                    .objects
                    .keys()
                    .any(|(g, r, _, _)| *g == group && *r == plural);
        }
        if !finalizers.iter().any(|f| f == FOREGROUND_DELETION) {
            return false;
        }
        let uid = str_at(object, "uid").unwrap_or("");
        !self.objects.values().any(|dependent| {
            dependent["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|owner| owner["uid"] == uid && owner["blockOwnerDeletion"] == true)
        })
    }
}
