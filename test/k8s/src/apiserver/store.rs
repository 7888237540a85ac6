//! The generic object store: any group/resource, namespaced or cluster-scoped, one
//! resourceVersion counter for the whole server, and the REST verbs over it.
//!
//! Every change goes through [`Store::commit`] or [`Store::remove`]: that is where watch
//! events would be emitted.

use std::collections::{BTreeMap, HashMap};

use http::Method;
use serde_json::{Value, json};

use super::json::{
    carry_over, check_name, escape_pointer, field, merge_patch, metadata_mut, parse_json,
    parse_yaml, random_suffix, str_at,
};
use super::path::{Target, matches, parse_selector, query_param};
use super::status::Status;

/// Resources the store knows the kind and scope of: (group, resource, kind, namespaced).
const BUILTIN_RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("", "pods", "Pod", true),
    ("", "nodes", "Node", false),
    ("", "configmaps", "ConfigMap", true),
    ("", "secrets", "Secret", true),
    ("", "namespaces", "Namespace", false),
    ("", "serviceaccounts", "ServiceAccount", true),
    ("", "services", "Service", true),
    ("", "endpoints", "Endpoints", true),
    ("", "events", "Event", true),
    ("apps", "deployments", "Deployment", true),
    ("apps", "daemonsets", "DaemonSet", true),
    ("apps", "replicasets", "ReplicaSet", true),
    ("apps", "statefulsets", "StatefulSet", true),
    ("batch", "jobs", "Job", true),
    ("coordination.k8s.io", "leases", "Lease", true),
    ("discovery.k8s.io", "endpointslices", "EndpointSlice", true),
    ("storage.k8s.io", "csidrivers", "CSIDriver", false),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    ("apiregistration.k8s.io", "apiservices", "APIService", false),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
    ),
    (
        "spire.spiffe.io",
        "clusterspiffeids",
        "ClusterSPIFFEID",
        false,
    ),
    (
        "spire.spiffe.io",
        "clusterfederatedtrustdomains",
        "ClusterFederatedTrustDomain",
        false,
    ),
    (
        "spire.spiffe.io",
        "clusterstaticentries",
        "ClusterStaticEntry",
        false,
    ),
    ("spiffeid.spiffe.io", "spiffeids", "SpiffeID", true),
];

pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
pub(crate) const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub(crate) const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// (group, resource, namespace or "", name): the iteration order is the apiserver's list order.
type Key = (String, String, String, String);

/// Kind and scope of a resource.
#[derive(Clone, Debug)]
struct ResourceInfo {
    kind: String,
    namespaced: bool,
}

/// A response: HTTP code and JSON body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) body: Vec<u8>,
}

/// A list response, fields in the apiserver's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct List {
    kind: String,
    api_version: String,
    metadata: ListMeta,
    items: Vec<Value>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: String,
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

/// The objects of the server.
#[derive(Debug)]
pub(crate) struct Store {
    revision: u64,
    objects: BTreeMap<Key, Value>,
    resources: HashMap<(String, String), ResourceInfo>,
}

// === impl Store ===

impl Store {
    pub(crate) fn new() -> Self {
        let resources = BUILTIN_RESOURCES
            .iter()
            .map(|(group, resource, kind, namespaced)| {
                (
                    ((*group).to_owned(), (*resource).to_owned()),
                    ResourceInfo {
                        kind: (*kind).to_owned(),
                        namespaced: *namespaced,
                    },
                )
            })
            .collect();
        Self {
            revision: 0,
            objects: BTreeMap::new(),
            resources,
        }
    }

    /// The current (last written) resourceVersion.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// Declares the kind and scope of a resource (e.g. a CRD's).
    pub(crate) fn register(&mut self, group: &str, resource: &str, kind: &str, namespaced: bool) {
        self.resources.insert(
            (group.to_owned(), resource.to_owned()),
            ResourceInfo {
                kind: kind.to_owned(),
                namespaced,
            },
        );
    }

    /// Answers one REST request on `target`.
    pub(crate) fn handle(
        &mut self,
        method: &Method,
        target: &Target,
        query: &str,
        content_type: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Reply, Status> {
        if target.subresource.is_some() {
            // Status and other subresources are not modelled yet.
            return Err(Status::no_such_resource());
        }
        self.check_scope(method, target)?;
        match (method, target.name.as_deref()) {
            (&Method::GET, Some(name)) => self.get(target, name),
            (&Method::GET, None) => self.list(target, query),
            (&Method::POST, None) => self.create(target, parse_json(body)?, now),
            (&Method::PUT, Some(name)) => self.update(target, name, parse_json(body)?),
            (&Method::PATCH, Some(name)) => {
                self.patch(target, name, query, content_type, body, now)
            }
            (&Method::DELETE, Some(name)) => self.delete(target, name, body),
            (method, _) => Err(Status::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            ))),
        }
    }

    /// Stores `object` at `target` as is (test seeding): creates or replaces, keeping a
    /// given uid and creationTimestamp and filling them in when absent.
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
        let meta = metadata_mut(&mut object);
        meta.insert("name".into(), name.clone().into());
        if namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), namespace.clone().into());
        }
        meta.entry("uid")
            .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
        meta.entry("creationTimestamp")
            .or_insert_with(|| now.into());
        self.commit(key(target, &namespace, &name), object)
    }

    /// The object at `target` (an item path).
    pub(crate) fn object(&self, target: &Target) -> Option<Value> {
        let name = target.name.as_deref()?;
        let namespace = target.namespace.as_deref().unwrap_or("");
        self.objects.get(&key(target, namespace, name)).cloned()
    }

    /// Removes the object at `target` (an item path), returning it.
    pub(crate) fn take(&mut self, target: &Target) -> Option<Value> {
        let name = target.name.as_deref()?;
        let namespace = target.namespace.as_deref().unwrap_or("");
        self.remove(&key(target, namespace, name))
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

    // --- the one write path ---

    fn commit(&mut self, key: Key, mut object: Value) -> Value {
        self.revision += 1;
        metadata_mut(&mut object)
            .insert("resourceVersion".into(), self.revision.to_string().into());
        self.objects.insert(key, object.clone());
        object
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let removed = self.objects.remove(key)?;
        self.revision += 1;
        Some(removed)
    }

    // --- verbs ---

    fn get(&self, target: &Target, name: &str) -> Result<Reply, Status> {
        let object = self.existing(target, name)?;
        Ok(Reply::new(200, object))
    }

    fn list(&self, target: &Target, query: &str) -> Result<Reply, Status> {
        if query_param(query, "watch").is_some_and(|w| w == "true" || w == "1") {
            return Err(Status::method_not_allowed(
                "watch is not implemented by the test apiserver",
            ));
        }
        let labels = parse_selector(&query_param(query, "labelSelector").unwrap_or_default())
            .map_err(Status::bad_request)?;
        let fields = parse_selector(&query_param(query, "fieldSelector").unwrap_or_default())
            .map_err(Status::bad_request)?;
        let items: Vec<Value> = self
            .objects(target)
            .into_iter()
            .filter(|object| {
                matches(&labels, |k| {
                    object
                        .pointer(&format!("/metadata/labels/{}", escape_pointer(k)))
                        .and_then(Value::as_str)
                }) && matches(&fields, |k| field(object, k))
            })
            .collect();
        let kind = self.kind_for(target, &Value::Null);
        Ok(Reply::new(
            200,
            &List {
                kind: format!("{kind}List"),
                api_version: target.api_version(),
                metadata: ListMeta {
                    resource_version: self.revision.to_string(),
                },
                items,
            },
        ))
    }

    fn create(&mut self, target: &Target, mut object: Value, now: &str) -> Result<Reply, Status> {
        let kind = self.kind_for(target, &object);
        let name = match (str_at(&object, "name"), str_at(&object, "generateName")) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) => format!("{prefix}{}", random_suffix()),
            (None, None) => {
                return Err(Status::invalid(
                    &kind,
                    &target.group,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        let namespace = self.namespace_for(target, &object)?;
        let key = key(target, &namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(Status::already_exists(
                &target.group,
                &target.resource,
                &name,
            ));
        }
        let fields = object.as_object_mut().expect("parse_json returns objects");
        fields.insert("kind".into(), kind.into());
        fields.insert("apiVersion".into(), target.api_version().into());
        let meta = metadata_mut(&mut object);
        meta.insert("name".into(), name.into());
        if !namespace.is_empty() {
            meta.insert("namespace".into(), namespace.into());
        }
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("creationTimestamp".into(), now.into());
        Ok(Reply::new(201, &self.commit(key, object)))
    }

    fn update(&mut self, target: &Target, name: &str, object: Value) -> Result<Reply, Status> {
        let old = self.existing(target, name)?.clone();
        check_name(&object, name)?;
        self.check_resource_version(target, name, &old, &object)?;
        Ok(self.replace(target, name, old, object))
    }

    fn patch(
        &mut self,
        target: &Target,
        name: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Reply, Status> {
        match content_type {
            MERGE_PATCH | STRATEGIC_MERGE_PATCH => {
                // Strategic merge is treated as a JSON merge patch: lists are replaced, not
                // merged by key, and `$patch` directives are not understood.
                let patch = parse_json(body)?;
                let old = self.existing(target, name)?.clone();
                self.check_resource_version(target, name, &old, &patch)?;
                if str_at(&patch, "name").is_some_and(|n| n != name) {
                    check_name(&patch, name)?;
                }
                let mut merged = old.clone();
                merge_patch(&mut merged, &patch);
                Ok(self.replace(target, name, old, merged))
            }
            APPLY_PATCH => self.apply(target, name, query, body, now),
            other => Err(Status::unsupported_media_type(other)),
        }
    }

    /// Server-side apply, simplified: creates a missing object; otherwise merges the applied
    /// configuration into it (fields the manager stopped applying are not removed, and no
    /// field ownership conflicts are detected). The manager is recorded in
    /// `metadata.managedFields`.
    fn apply(
        &mut self,
        target: &Target,
        name: &str,
        query: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Reply, Status> {
        let Some(manager) = query_param(query, "fieldManager").filter(|m| !m.is_empty()) else {
            return Err(Status::bad_request(
                "PATCH with application/apply-patch+yaml requires the fieldManager query \
                 parameter",
            ));
        };
        let mut applied = parse_yaml(body)?;
        if applied["kind"].as_str().is_none() || applied["apiVersion"].as_str().is_none() {
            return Err(Status::bad_request(
                "an applied configuration must set apiVersion and kind",
            ));
        }
        check_name(&applied, name)?;
        let managed = json!([{
            "manager": manager,
            "operation": "Apply",
            "apiVersion": target.api_version(),
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        }]);
        let Ok(old) = self.existing(target, name).cloned() else {
            metadata_mut(&mut applied).insert("managedFields".into(), managed);
            return self.create(target, applied, now);
        };
        self.check_resource_version(target, name, &old, &applied)?;
        let mut merged = old.clone();
        merge_patch(&mut merged, &applied);
        let managers = metadata_mut(&mut merged)
            .entry("managedFields")
            .or_insert_with(|| json!([]));
        let known = managers.as_array().is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e["manager"] == manager.as_str() && e["operation"] == "Apply")
        });
        if !known && let Some(entries) = managers.as_array_mut() {
            entries.push(managed[0].clone());
        }
        Ok(self.replace(target, name, old, merged))
    }

    fn delete(&mut self, target: &Target, name: &str, body: &[u8]) -> Result<Reply, Status> {
        let old = self.existing(target, name)?.clone();
        if !body.is_empty() {
            let options = parse_json(body)?;
            let preconditions = &options["preconditions"];
            for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
                if let Some(wanted) = preconditions[field].as_str()
                    && Some(wanted) != old["metadata"][field].as_str()
                {
                    return Err(Status::conflict(
                        &target.group,
                        &target.resource,
                        name,
                        &format!(
                            "Precondition failed: {label} in precondition: {wanted}, {label} in \
                             object meta: {}",
                            old["metadata"][field].as_str().unwrap_or("")
                        ),
                    ));
                }
            }
        }
        let namespace = target.namespace.as_deref().unwrap_or("");
        self.remove(&key(target, namespace, name));
        let uid = old["metadata"]["uid"].as_str().unwrap_or("");
        let status = Status::deleted(&target.group, &target.resource, name, uid);
        Ok(Reply::new(200, &status))
    }

    // --- helpers ---

    /// Writes `new` over `old` keeping what clients cannot change; a write that changes
    /// nothing does not bump the resourceVersion (as the apiserver does).
    fn replace(&mut self, target: &Target, name: &str, old: Value, mut new: Value) -> Reply {
        carry_over(&old, &mut new);
        if new == old {
            return Reply::new(200, &old);
        }
        let namespace = target.namespace.as_deref().unwrap_or("");
        Reply::new(200, &self.commit(key(target, namespace, name), new))
    }

    fn existing(&self, target: &Target, name: &str) -> Result<&Value, Status> {
        let namespace = target.namespace.as_deref().unwrap_or("");
        self.objects
            .get(&key(target, namespace, name))
            .ok_or_else(|| Status::not_found(&target.group, &target.resource, name))
    }

    /// A resourceVersion in `body` must be the stored one.
    fn check_resource_version(
        &self,
        target: &Target,
        name: &str,
        stored: &Value,
        body: &Value,
    ) -> Result<(), Status> {
        match str_at(body, "resourceVersion") {
            Some(rv) if !rv.is_empty() && Some(rv) != str_at(stored, "resourceVersion") => Err(
                Status::conflict(&target.group, &target.resource, name, Status::MODIFIED),
            ),
            _ => Ok(()),
        }
    }

    /// Known resources are served in their scope only; cluster-wide lists of namespaced
    /// resources are allowed.
    fn check_scope(&self, method: &Method, target: &Target) -> Result<(), Status> {
        let Some(info) = self
            .resources
            .get(&(target.group.clone(), target.resource.clone()))
        else {
            return Ok(());
        };
        let cluster_wide_list = method == Method::GET && target.name.is_none();
        match (info.namespaced, target.namespace.is_some()) {
            (true, false) if !cluster_wide_list => Err(Status::no_such_resource()),
            (false, true) => Err(Status::no_such_resource()),
            _ => Ok(()),
        }
    }

    /// The namespace a new object lands in: the path's, which the body may repeat.
    fn namespace_for(&self, target: &Target, object: &Value) -> Result<String, Status> {
        match (&target.namespace, str_at(object, "namespace")) {
            (Some(path), Some(body)) if !body.is_empty() && body != path => {
                Err(Status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request",
                ))
            }
            (Some(path), _) => Ok(path.clone()),
            (None, _) => Ok(String::new()),
        }
    }

    /// The kind of objects of `target`'s resource: registered, else the body's, else a guess.
    fn kind_for(&self, target: &Target, object: &Value) -> String {
        if let Some(info) = self
            .resources
            .get(&(target.group.clone(), target.resource.clone()))
        {
            return info.kind.clone();
        }
        if let Some(kind) = object["kind"].as_str() {
            return kind.to_owned();
        }
        let singular = target
            .resource
            .strip_suffix('s')
            .unwrap_or(&target.resource);
        let mut chars = singular.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }
}

fn key(target: &Target, namespace: &str, name: &str) -> Key {
    (
        target.group.clone(),
        target.resource.clone(),
        namespace.to_owned(),
        name.to_owned(),
    )
}
