//! JSON helpers of the store: metadata access, merge patch, body parsing.

use serde_json::{Map, Value};

use super::status::Status;

/// `metadata.<field>` as a string.
pub(super) fn str_at<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// `metadata`, created when absent.
pub(super) fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    let fields = object.as_object_mut().expect("objects are JSON objects");
    let meta = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

pub(super) fn check_name(object: &Value, name: &str) -> Result<(), Status> {
    match str_at(object, "name") {
        Some(n) if n == name => Ok(()),
        other => Err(Status::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            other.unwrap_or("")
        ))),
    }
}

/// Restores on `new` what a client cannot change on `old`.
pub(super) fn carry_over(old: &Value, new: &mut Value) {
    for field in ["kind", "apiVersion"] {
        if new.get(field).is_none_or(Value::is_null)
            && let Some(value) = old.get(field)
        {
            new[field] = value.clone();
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let meta = metadata_mut(new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(value) => meta.insert(field.into(), value.clone()),
            None => meta.remove(field),
        };
    }
    if !meta.contains_key("managedFields")
        && let Some(managed) = old_meta.get("managedFields")
    {
        meta.insert("managedFields".into(), managed.clone());
    }
}

/// RFC 7386 JSON merge patch.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let fields = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if value.is_null() {
            fields.remove(key);
        } else {
            merge_patch(fields.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

pub(super) fn parse_json(body: &[u8]) -> Result<Value, Status> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(Status::bad_request("the request body is not a JSON object")),
        Err(error) => Err(Status::bad_request(format!(
            "unable to decode the request body: {error}"
        ))),
    }
}

/// An apply body: YAML, of which JSON is a subset.
pub(super) fn parse_yaml(body: &[u8]) -> Result<Value, Status> {
    if let Ok(value) = parse_json(body) {
        return Ok(value);
    }
    match serde_saphyr::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(Status::bad_request(
            "the applied configuration is not an object",
        )),
        Err(error) => Err(Status::bad_request(format!(
            "unable to decode the applied configuration: {error}"
        ))),
    }
}

pub(super) fn escape_pointer(part: &str) -> String {
    part.replace('~', "~0").replace('/', "~1")
}

/// Five lower-case alphanumerics, as `generateName` appends.
pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}
