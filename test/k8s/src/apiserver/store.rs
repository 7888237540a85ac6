//! The generic object store: any group/resource, namespaced or cluster-scoped, one
//! resourceVersion counter for the whole server, and a bounded history of changes.
//!
//! Every change goes through [`Store::commit`] or [`Store::remove_now`]: each records an
//! [`Event`] in the history (the watch cache), hands it to the open watches and fires the
//! change notification tests await. The REST verbs are in `verbs`, lists in `list`, watches
//! in `watch`, deletion, finalizers and garbage collection in `lifecycle`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::json::{metadata_mut, str_at};
use super::path::Target;
use super::resources::{ResourceInfo, Resources, guess_kind};
use super::status::Status;
use super::watch::{WatchStart, Watchers};

/// (group, resource, namespace or "", name): the iteration order is the apiserver's list order.
pub(crate) type Key = (String, String, String, String);

/// Events kept for watches and consistent paged lists, by default.
const DEFAULT_HISTORY: usize = 10_000;

/// How often watches with `allowWatchBookmarks` get a BOOKMARK, by default.
const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// What a change did to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as the watch cache keeps it.
#[derive(Debug)]
pub(crate) struct Event {
    /// The resourceVersion of the change.
    pub(crate) revision: u64,
    pub(crate) key: Key,
    pub(crate) kind: EventType,
    /// The object after the change (for a deletion: its last state, with `revision`).
    pub(crate) object: Value,
    /// The object before the change (none when added).
    pub(crate) previous: Option<Value>,
}

/// The changes after `floor`, oldest first, at most `limit` of them.
#[derive(Debug)]
pub(crate) struct History {
    events: VecDeque<Arc<Event>>,
    floor: u64,
    limit: usize,
}

/// A response: HTTP code and JSON body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) body: Vec<u8>,
}

/// What the store answers: a complete response, or a watch to stream.
#[derive(Debug)]
pub(crate) enum Answer {
    Reply(Reply),
    Watch(Box<WatchStart>),
}

/// The objects of the server.
#[derive(Debug)]
pub(crate) struct Store {
    pub(super) revision: u64,
    pub(super) objects: BTreeMap<Key, Value>,
    pub(super) resources: Resources,
    pub(super) history: History,
    pub(super) watchers: Watchers,
    /// The revision after each change, for tests awaiting a state.
    pub(super) changes: watch::Sender<u64>,
    /// The serial number of the last continue token issued.
    pub(super) continue_serial: u64,
    /// Continue tokens with a serial number below this are expired.
    pub(super) continue_floor: u64,
    pub(super) bookmark_interval: Duration,
}

// === impl Reply ===

impl Reply {
    /// `code` with `body` as JSON.
    pub(crate) fn new(code: u16, body: &impl serde::Serialize) -> Self {
        Self {
            code,
            body: serde_json::to_vec(body).expect("JSON values serialize"),
        }
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

// === impl History ===

impl History {
    fn new(limit: usize) -> Self {
        Self {
            events: VecDeque::new(),
            floor: 0,
            limit,
        }
    }

    fn push(&mut self, event: Arc<Event>) {
        self.events.push_back(event);
        self.trim();
    }

    fn trim(&mut self) {
        while self.events.len() > self.limit {
            if let Some(oldest) = self.events.pop_front() {
                self.floor = oldest.revision;
            }
        }
    }

    /// The oldest resourceVersion a watch can start from.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Forgets every change up to `revision`.
    pub(crate) fn expire(&mut self, revision: u64) {
        self.events.clear();
        self.floor = revision;
    }

    /// Keeps at most `limit` changes.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.trim();
    }

    /// The changes after `revision`, oldest first; `Err(floor)` when some were forgotten.
    pub(crate) fn since(
        &self,
        revision: u64,
    ) -> Result<impl DoubleEndedIterator<Item = &Arc<Event>>, u64> {
        if revision < self.floor {
            return Err(self.floor);
        }
        Ok(self.events.iter().filter(move |e| e.revision > revision))
    }
}

// === impl Store ===

impl Store {
    pub(crate) fn new() -> Self {
        Self {
            revision: 0,
            objects: BTreeMap::new(),
            resources: Resources::new(),
            history: History::new(DEFAULT_HISTORY),
            watchers: Watchers::default(),
            changes: watch::channel(0).0,
            continue_serial: 0,
            continue_floor: 0,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
        }
    }

    /// The current (last written) resourceVersion.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// Declares the kind, scope and subresources of a resource (e.g. a CRD's).
    pub(crate) fn register(&mut self, group: &str, resource: &str, info: ResourceInfo) {
        self.resources.insert(group, resource, info);
    }

    pub(crate) fn resources(&self) -> &Resources {
        &self.resources
    }

    pub(crate) fn resources_mut(&mut self) -> &mut Resources {
        &mut self.resources
    }

    pub(crate) fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    pub(crate) fn watchers_mut(&mut self) -> &mut Watchers {
        &mut self.watchers
    }

    /// Notified with the revision after every change.
    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Expires the continue tokens of every list answered so far.
    pub(crate) fn expire_continue_tokens(&mut self) {
        self.continue_floor = self.continue_serial + 1;
    }

    pub(crate) fn set_bookmark_interval(&mut self, interval: Duration) {
        self.bookmark_interval = interval;
    }

    /// Stores `object` at `target` as is (test seeding): creates or replaces. A given uid and
    /// creationTimestamp are kept, else the replaced object's, else new ones.
    pub(crate) fn put(&mut self, target: &Target, mut object: Value, now: &str) -> Value {
        assert!(object.is_object(), "objects are JSON objects");
        let name = target
            .name
            .clone()
            .or_else(|| str_at(&object, "name").map(str::to_owned))
            .expect("put_object needs a name in the path or in metadata.name");
        let namespace = target
            .namespace
            .clone()
            .or_else(|| str_at(&object, "namespace").map(str::to_owned))
            .unwrap_or_default();
        let kind = self.kind_for(target, &object);
        let fields = object.as_object_mut().expect("checked above");
        fields.entry("kind").or_insert_with(|| Value::from(kind));
        fields
            .entry("apiVersion")
            .or_insert_with(|| Value::from(target.api_version()));
        let key = key(target, &namespace, &name);
        let old_meta = self.objects.get(&key).map(|old| old["metadata"].clone());
        let tracks_generation = self.info(target).is_some_and(|i| i.generation);
        let meta = metadata_mut(&mut object);
        meta.insert("name".into(), name.clone().into());
        if namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), namespace.clone().into());
        }
        for field in ["uid", "creationTimestamp", "generation"] {
            if !meta.contains_key(field)
                && let Some(value) = old_meta.as_ref().and_then(|m| m.get(field))
            {
                meta.insert(field.into(), value.clone());
            }
        }
        meta.entry("uid")
            .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
        meta.entry("creationTimestamp")
            .or_insert_with(|| now.into());
        if tracks_generation {
            meta.entry("generation").or_insert_with(|| 1.into());
        }
        let stored = self.commit(key, object, now);
        self.settle(now);
        stored
    }

    /// The object at `target` (an item path).
    pub(crate) fn object(&self, target: &Target) -> Option<Value> {
        let name = target.name.as_deref()?;
        let namespace = target.namespace.as_deref().unwrap_or("");
        self.objects.get(&key(target, namespace, name)).cloned()
    }

    /// Removes the object at `target` (an item path) at once, whatever its finalizers,
    /// returning it; its dependents are garbage-collected.
    pub(crate) fn take(&mut self, target: &Target, now: &str) -> Option<Value> {
        let name = target.name.as_deref()?;
        let namespace = target.namespace.as_deref().unwrap_or("");
        let removed = self.remove_now(&key(target, namespace, name), None, now);
        self.settle(now);
        removed
    }

    /// The objects under a collection path (all namespaces for a cluster-wide path).
    pub(crate) fn objects(&self, target: &Target) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((group, resource, namespace, _), _)| {
                group == &target.group
                    && resource == &target.resource
                    && target.namespace.as_ref().is_none_or(|ns| ns == namespace)
            })
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Every stored object as `<resource>[.<group>] [<namespace>/]<name>`.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.objects
            .keys()
            .map(|(group, resource, namespace, name)| {
                let resource = super::status::qualified(group, resource);
                if namespace.is_empty() {
                    format!("{resource} {name}")
                } else {
                    format!("{resource} {namespace}/{name}")
                }
            })
            .collect()
    }

    // --- the write path ---

    /// Stores `object` under `key` with the next resourceVersion, recording the change.
    pub(super) fn commit(&mut self, key: Key, mut object: Value, now: &str) -> Value {
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            self.resources.observe_crd(&mut object, now);
        }
        self.revision += 1;
        metadata_mut(&mut object)
            .insert("resourceVersion".into(), self.revision.to_string().into());
        let previous = self.objects.insert(key.clone(), object.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(key, kind, object.clone(), previous);
        object
    }

    /// Removes the object under `key` (in `last` state when given, e.g. an update that
    /// cleared its finalizers) with the next resourceVersion, recording the change; its
    /// dependents are garbage-collected.
    pub(super) fn remove_now(
        &mut self,
        key: &Key,
        last: Option<Value>,
        now: &str,
    ) -> Option<Value> {
        let previous = self.objects.remove(key)?;
        let mut removed = last.unwrap_or_else(|| previous.clone());
        self.revision += 1;
        metadata_mut(&mut removed)
            .insert("resourceVersion".into(), self.revision.to_string().into());
        self.record(
            key.clone(),
            EventType::Deleted,
            removed.clone(),
            Some(previous),
        );
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            self.resources.forget_crd(&removed);
        }
        if let Some(uid) = str_at(&removed, "uid") {
            let uid = uid.to_owned();
            self.collect_dependents(&uid, now);
        }
        Some(removed)
    }

    fn record(&mut self, key: Key, kind: EventType, object: Value, previous: Option<Value>) {
        let event = Arc::new(Event {
            revision: self.revision,
            key,
            kind,
            object,
            previous,
        });
        self.watchers.dispatch(&event);
        self.history.push(event);
        self.changes.send_replace(self.revision);
    }

    // --- helpers ---

    pub(super) fn info(&self, target: &Target) -> Option<&ResourceInfo> {
        self.resources.get(&target.group, &target.resource)
    }

    pub(super) fn existing(&self, target: &Target, name: &str) -> Result<&Value, Status> {
        let namespace = target.namespace.as_deref().unwrap_or("");
        self.objects
            .get(&key(target, namespace, name))
            .ok_or_else(|| Status::not_found(&target.group, &target.resource, name))
    }

    /// The kind of objects of `target`'s resource: registered, else the body's, else a guess.
    pub(super) fn kind_for(&self, target: &Target, object: &Value) -> String {
        if let Some(info) = self.info(target) {
            return info.kind.clone();
        }
        match object["kind"].as_str() {
            Some(kind) => kind.to_owned(),
            None => guess_kind(&target.resource),
        }
    }
}

/// The key of `namespace/name` in `target`'s resource.
pub(crate) fn key(target: &Target, namespace: &str, name: &str) -> Key {
    (
        target.group.clone(),
        target.resource.clone(),
        namespace.to_owned(),
        name.to_owned(),
    )
}
