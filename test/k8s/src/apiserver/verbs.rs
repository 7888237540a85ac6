//! The REST verbs over the store: get, create, update, the patch flavours, delete, and the
//! `status` subresource.

use http::Method;
use serde_json::{Value, json};

use super::fields::{self, Write};
use super::json::{
    carry_over, check_name, merge_patch, metadata_mut, parse_json, parse_yaml, random_suffix,
    str_at,
};
use super::lifecycle::{Deletion, Propagation, finalizers};
use super::patch::{self, JsonPatchError};
use super::path::{Target, query_flag, query_param};
use super::status::Status;
use super::store::{Answer, Reply, Store, key};
use super::strategic;

pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
pub(crate) const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub(crate) const APPLY_PATCH: &str = "application/apply-patch+yaml";
pub(crate) const JSON_PATCH: &str = "application/json-patch+json";

/// What a write addresses: the object itself or its `status` subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Object,
    Status,
}

// === impl Store ===

impl Store {
    /// Answers one REST request on `target`.
    pub(crate) fn handle(
        &mut self,
        method: &Method,
        target: &Target,
        query: &str,
        content_type: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Answer, Status> {
        self.check_scope(method, target)?;
        let part = match target.subresource.as_deref() {
            None => Part::Object,
            Some("status") if self.info(target).is_some_and(|i| i.status) => Part::Status,
            Some(_) => return Err(Status::no_such_resource()),
        };
        let answer = match (method, target.name.as_deref()) {
            (&Method::GET, Some(name)) => Reply::new(200, self.existing(target, name)?).into(),
            (&Method::GET, None) if query_flag(query, "watch") == Some(true) => {
                Answer::Watch(Box::new(self.watch(target, query)?))
            }
            (&Method::GET, None) => self.list(target, query)?.into(),
            (&Method::POST, None) => {
                let object = parse_json(body)?;
                self.check_fields(target, query, body, &object, Write::Object)?;
                self.create(target, object, now)?.into()
            }
            (&Method::PUT, Some(name)) => {
                let object = parse_json(body)?;
                self.check_fields(target, query, body, &object, Write::Object)?;
                self.update(target, part, name, object, now)?.into()
            }
            (&Method::PATCH, Some(name)) => self
                .patch(target, part, name, query, content_type, body, now)?
                .into(),
            (&Method::DELETE, Some(name)) if part == Part::Object => {
                self.delete(target, name, query, body, now)?.into()
            }
            (&Method::DELETE, None) => self.delete_collection(target, query, body, now)?.into(),
            (method, _) => {
                return Err(Status::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({method})"
                )));
            }
        };
        self.settle(now);
        Ok(answer)
    }

    fn create(&mut self, target: &Target, mut object: Value, now: &str) -> Result<Reply, Status> {
        let kind = self.kind_for(target, &object);
        let name = match (str_at(&object, "name"), str_at(&object, "generateName")) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(Status::invalid(
                    &kind,
                    &target.group,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        let namespace = namespace_for(target, &object)?;
        let key = key(target, &namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(Status::already_exists(
                &target.group,
                &target.resource,
                &name,
            ));
        }
        self.check_namespace_open(target, &namespace, &name)?;
        self.check_crd_open(target)?;
        let info = self.info(target).cloned();
        let fields = object.as_object_mut().expect("parse_json returns objects");
        fields.insert("kind".into(), kind.into());
        fields.insert("apiVersion".into(), target.api_version().into());
        if info.as_ref().is_some_and(|i| i.custom && i.status) {
            fields.remove("status");
        }
        let meta = metadata_mut(&mut object);
        meta.insert("name".into(), name.into());
        if !namespace.is_empty() {
            meta.insert("namespace".into(), namespace.into());
        }
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("creationTimestamp".into(), now.into());
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            meta.remove(field);
        }
        if info.as_ref().is_some_and(|i| i.generation) {
            meta.insert("generation".into(), 1.into());
        }
        Ok(Reply::new(201, &self.commit(key, object, now)))
    }

    fn update(
        &mut self,
        target: &Target,
        part: Part,
        name: &str,
        object: Value,
        now: &str,
    ) -> Result<Reply, Status> {
        let old = self.existing(target, name)?.clone();
        check_name(&object, name)?;
        if self.info(target).is_some_and(|i| i.custom)
            && str_at(&object, "resourceVersion").is_none_or(str::is_empty)
        {
            return Err(Status::invalid(
                &self.kind_for(target, &old),
                &target.group,
                name,
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
            ));
        }
        check_resource_version(target, name, &old, &object)?;
        self.replace(target, part, name, old, object, now)
    }

    #[expect(clippy::too_many_arguments, reason = "one request's parts")]
    fn patch(
        &mut self,
        target: &Target,
        part: Part,
        name: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Reply, Status> {
        let old = match (self.existing(target, name), content_type, part) {
            (Ok(old), _, _) => old.clone(),
            // Server-side apply creates a missing object.
            (Err(_), APPLY_PATCH, Part::Object) => {
                let (applied, managed) = applied_configuration(target, name, query, body, now)?;
                let mut applied = applied;
                metadata_mut(&mut applied).insert("managedFields".into(), managed);
                return self.create(target, applied, now);
            }
            (Err(status), _, _) => return Err(status),
        };
        let custom = self.info(target).is_some_and(|i| i.custom);
        let patched = match content_type {
            MERGE_PATCH | STRATEGIC_MERGE_PATCH => {
                if custom && content_type == STRATEGIC_MERGE_PATCH {
                    return Err(Status::unsupported_media_type(custom));
                }
                let patch = parse_json(body)?;
                if str_at(&patch, "name").is_some_and(|n| n != name) {
                    check_name(&patch, name)?;
                }
                let mut merged = old.clone();
                if content_type == MERGE_PATCH {
                    merge_patch(&mut merged, &patch);
                } else {
                    strategic::merge(&mut merged, &patch);
                }
                merged
            }
            JSON_PATCH => {
                let mut patched = old.clone();
                patch::apply(&mut patched, body).map_err(|error| match error {
                    JsonPatchError::Decode(message) => Status::bad_request(message),
                    JsonPatchError::Apply(_) => Status::unprocessable(),
                })?;
                if !patched.is_object() {
                    return Err(Status::unprocessable());
                }
                patched
            }
            APPLY_PATCH => self.apply(target, name, query, body, now, &old)?,
            _ => return Err(Status::unsupported_media_type(custom)),
        };
        self.check_fields(target, query, body, &patched, Write::Patch)?;
        check_resource_version(target, name, &old, &patched)?;
        self.replace(target, part, name, old, patched, now)
    }

    /// Server-side apply to an existing object, simplified: merges the applied configuration
    /// into it (fields the manager stopped applying are not removed, and no field ownership
    /// conflicts are detected). The manager is recorded in `metadata.managedFields`.
    fn apply(
        &self,
        target: &Target,
        name: &str,
        query: &str,
        body: &[u8],
        now: &str,
        old: &Value,
    ) -> Result<Value, Status> {
        let (applied, managed) = applied_configuration(target, name, query, body, now)?;
        let manager = managed[0]["manager"].clone();
        let mut merged = old.clone();
        merge_patch(&mut merged, &applied);
        let managers = metadata_mut(&mut merged)
            .entry("managedFields")
            .or_insert_with(|| json!([]));
        let known = managers.as_array().is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e["manager"] == manager && e["operation"] == "Apply")
        });
        if !known && let Some(entries) = managers.as_array_mut() {
            entries.push(managed[0].clone());
        }
        Ok(merged)
    }

    fn delete(
        &mut self,
        target: &Target,
        name: &str,
        query: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Reply, Status> {
        let old = self.existing(target, name)?.clone();
        let options = if body.is_empty() {
            Value::Null
        } else {
            parse_json(body)?
        };
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
        let propagation = Propagation::from_request(query, &options)?;
        let namespace = target.namespace.as_deref().unwrap_or("");
        let returns_object = self.info(target).is_some_and(|i| i.returns_deleted_object);
        match self.delete_key(&key(target, namespace, name), propagation, now) {
            Some(Deletion::Pending(object)) => Ok(Reply::new(200, &object)),
            Some(Deletion::Removed(object)) if returns_object => Ok(Reply::new(200, &object)),
            _ => {
                let uid = old["metadata"]["uid"].as_str().unwrap_or("");
                let status = Status::deleted(&target.group, &target.resource, name, uid);
                Ok(Reply::new(200, &status))
            }
        }
    }

    /// `DELETE` on a collection: deletes every selected object, answering with them.
    fn delete_collection(
        &mut self,
        target: &Target,
        query: &str,
        body: &[u8],
        now: &str,
    ) -> Result<Reply, Status> {
        let options = if body.is_empty() {
            Value::Null
        } else {
            parse_json(body)?
        };
        let propagation = Propagation::from_request(query, &options)?;
        let filter = super::selector::Filter::from_request(target, query)?;
        let keys: Vec<_> = self
            .objects
            .iter()
            .filter(|((group, resource, namespace, _), object)| {
                group == &target.group
                    && resource == &target.resource
                    && filter.matches(namespace, object)
            })
            .map(|(key, _)| key.clone())
            .collect();
        let items: Vec<Value> = keys
            .iter()
            .filter_map(|key| match self.delete_key(key, propagation, now)? {
                Deletion::Pending(object) | Deletion::Removed(object) => Some(object),
            })
            .collect();
        Ok(self.list_reply(target, self.revision, None, None, items))
    }

    // --- helpers ---

    /// Strict field validation of a write (see `fields`).
    fn check_fields(
        &self,
        target: &Target,
        query: &str,
        body: &[u8],
        object: &Value,
        write: Write,
    ) -> Result<(), Status> {
        let mut object = object.clone();
        if let Some(fields) = object.as_object_mut() {
            let info = self.info(target);
            if let Some(info) = info {
                fields
                    .entry("kind")
                    .or_insert_with(|| info.kind.clone().into());
            }
            fields
                .entry("apiVersion")
                .or_insert_with(|| target.api_version().into());
        }
        fields::check(
            query,
            self.info(target),
            &target.version,
            body,
            &object,
            write,
        )
    }

    /// Writes `new` over `old` (of the object or its status), keeping what clients cannot
    /// change; a write that changes nothing does not bump the resourceVersion (as the
    /// apiserver does). An object being deleted whose last finalizer goes is removed.
    fn replace(
        &mut self,
        target: &Target,
        part: Part,
        name: &str,
        old: Value,
        mut new: Value,
        now: &str,
    ) -> Result<Reply, Status> {
        let info = self.info(target).cloned();
        let with_status = info.as_ref().is_some_and(|i| i.status);
        if part == Part::Status {
            let status = new.get("status").cloned();
            new = old.clone();
            restore(&mut new, "status", status);
        } else if with_status {
            restore(&mut new, "status", old.get("status").cloned());
        }
        carry_over(&old, &mut new);
        if info.as_ref().is_some_and(|i| i.generation) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
            let bump = i64::from(spec_changed(&old, &new, with_status));
            metadata_mut(&mut new).insert("generation".into(), (generation + bump).into());
        }
        if new == old {
            return Ok(Reply::new(200, &old));
        }
        let namespace = target.namespace.as_deref().unwrap_or("");
        let key = key(target, namespace, name);
        if old["metadata"].get("deletionTimestamp").is_some() {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(Status::invalid(
                    &self.kind_for(target, &old),
                    &target.group,
                    name,
                    &format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the \
                         object is being deleted, found new finalizers {}",
                        go_strings(&added)
                    ),
                ));
            }
            if finalizers(&new).is_empty() {
                let removed = self
                    .remove_now(&key, Some(new), now)
                    .expect("the object exists");
                return Ok(Reply::new(200, &removed));
            }
        }
        Ok(Reply::new(200, &self.commit(key, new, now)))
    }

    /// Known resources are served in their scope only; cluster-wide lists and watches of
    /// namespaced resources are allowed.
    fn check_scope(&self, method: &Method, target: &Target) -> Result<(), Status> {
        if self.resources.is_withdrawn(&target.group, &target.resource) {
            return Err(Status::no_such_resource());
        }
        let Some(info) = self.info(target) else {
            return Ok(());
        };
        let cluster_wide_list = method == Method::GET && target.name.is_none();
        match (info.namespaced, target.namespace.is_some()) {
            (true, false) if !cluster_wide_list => Err(Status::no_such_resource()),
            (false, true) => Err(Status::no_such_resource()),
            _ => Ok(()),
        }
    }

    /// New custom objects cannot be created while their CRD is being deleted (it waits for
    /// the existing ones to go).
    fn check_crd_open(&self, target: &Target) -> Result<(), Status> {
        let terminating = self.objects.iter().any(|((group, resource, _, _), crd)| {
            group == "apiextensions.k8s.io"
                && resource == "customresourcedefinitions"
                && crd["spec"]["group"] == target.group.as_str()
                && crd["spec"]["names"]["plural"] == target.resource.as_str()
                && crd["metadata"].get("deletionTimestamp").is_some()
        });
        if terminating {
            return Err(Status::crd_terminating(&target.group, &target.resource));
        }
        Ok(())
    }

    /// New objects cannot be created in a namespace being deleted.
    fn check_namespace_open(
        &self,
        target: &Target,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        if namespace.is_empty() {
            return Ok(());
        }
        let key = (
            String::new(),
            "namespaces".to_owned(),
            String::new(),
            namespace.to_owned(),
        );
        match self.objects.get(&key) {
            Some(ns) if ns["metadata"].get("deletionTimestamp").is_some() => {
                Err(Status::forbidden(
                    &target.group,
                    &target.resource,
                    name,
                    &format!(
                        "unable to create new content in namespace {namespace} because it is being \
                     terminated"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The applied configuration of a server-side apply request and its `managedFields` entry.
fn applied_configuration(
    target: &Target,
    name: &str,
    query: &str,
    body: &[u8],
    now: &str,
) -> Result<(Value, Value), Status> {
    let Some(manager) = query_param(query, "fieldManager").filter(|m| !m.is_empty()) else {
        return Err(Status::bad_request(
            "PATCH with application/apply-patch+yaml requires the fieldManager query parameter",
        ));
    };
    let applied = parse_yaml(body)?;
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
    Ok((applied, managed))
}

/// A resourceVersion in `body` must be the stored one.
fn check_resource_version(
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

/// The namespace a new object lands in: the path's, which the body may repeat.
fn namespace_for(target: &Target, object: &Value) -> Result<String, Status> {
    match (&target.namespace, str_at(object, "namespace")) {
        (Some(path), Some(body)) if !body.is_empty() && body != path => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the \
             request",
        )),
        (Some(path), _) => Ok(path.clone()),
        (None, _) => Ok(String::new()),
    }
}

/// Sets (or, for `None`, removes) a top-level field.
fn restore(object: &mut Value, field: &str, value: Option<Value>) {
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    match value {
        Some(value) => fields.insert(field.to_owned(), value),
        None => fields.remove(field),
    };
}

/// Whether anything outside `metadata` (and `status`, when it is a subresource) changed.
fn spec_changed(old: &Value, new: &Value, with_status: bool) -> bool {
    let strip = |object: &Value| {
        let mut object = object.clone();
        if let Some(fields) = object.as_object_mut() {
            fields.remove("metadata");
            if with_status {
                fields.remove("status");
            }
        }
        object
    };
    strip(old) != strip(new)
}

/// `[]string{"a", "b"}`, as Go formats a string slice with `%#v`.
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}
