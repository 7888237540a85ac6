//! Server-side field validation: with `?fieldValidation=Strict` (what kubectl sends by default
//! once the OpenAPI documents advertise the parameter) a write whose body repeats a field, or
//! whose object has a field its kind does not have, is refused with `400 BadRequest` worded
//! as the apiserver words it:
//! `<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding error: duplicate
//! field "x", unknown field "spec.y"` (a PATCH: `strict decoding error: …` alone).
//!
//! Which fields a kind has:
//! - built-in kinds: Kubernetes' own types, as generated from its OpenAPI document by
//!   `k8s-openapi` (the workspace's Kubernetes version). The object is decoded into the typed
//!   struct and encoded again; a field of the request that did not survive the round trip is
//!   unknown. A field that only carries `null`, `[]` or `{}` is never reported (the types
//!   drop some empty values), and a value of the wrong type is refused with the decoder's
//!   message.
//! - custom resources: the structural schema of the CRD version (`openAPIV3Schema`):
//!   `properties`, `additionalProperties`, `items`, `x-kubernetes-preserve-unknown-fields`
//!   and `x-kubernetes-embedded-resource`; their `metadata` is checked as a built-in
//!   `ObjectMeta`.
//! - resources without either (a test's registration, SPIRE's presets before their CRD is
//!   stored): not checked.
//!
//! `Warn` and `Ignore` (and no directive) accept the write as it is: no warnings are sent,
//! and custom resources are not pruned.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::Value;

use super::path::query_param;
use super::resources::ResourceInfo;
use super::status::Status;

/// How a write is being made: the whole object, or a patch (worded differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Object,
    Patch,
}

/// Refuses the write when the request asks for strict validation and `object` (or the raw
/// `body`) has duplicate or unknown fields.
pub(crate) fn check(
    query: &str,
    info: Option<&ResourceInfo>,
    version: &str,
    body: &[u8],
    object: &Value,
    write: Write,
) -> Result<(), Status> {
    if query_param(query, "fieldValidation").as_deref() != Some("Strict") {
        return Ok(());
    }
    let Some(info) = info else {
        return Ok(());
    };
    let refuse = |detail: String| {
        Status::bad_request(match write {
            Write::Object => format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: {detail}",
                kind = info.kind
            ),
            Write::Patch => detail,
        })
    };
    let mut errors = duplicates(body);
    match unknown_fields(info, version, object) {
        Ok(unknown) => errors.extend(unknown),
        Err(decode) => return Err(refuse(decode)),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(refuse(format!(
            "strict decoding error: {}",
            errors.join(", ")
        )))
    }
}

// --- duplicates ---

/// `duplicate field "<key>"` for every key repeated within one JSON object of `body`
/// (nothing when the body is not JSON, e.g. an apply patch in YAML).
fn duplicates(body: &[u8]) -> Vec<String> {
    let found = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let scan = DuplicateScan { found: &found };
    if scan.deserialize(&mut deserializer).is_err() {
        return Vec::new();
    }
    found.into_inner()
}

struct DuplicateScan<'a> {
    found: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for DuplicateScan<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DuplicateScan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                self.found
                    .borrow_mut()
                    .push(format!("duplicate field {key:?}"));
            }
            map.next_value_seed(DuplicateScan { found: self.found })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(DuplicateScan { found: self.found })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

// --- unknown fields ---

/// `unknown field "<path>"` for each field `object` has and its kind does not; `Err` with
/// the decoder's message when a built-in object does not decode at all.
fn unknown_fields(
    info: &ResourceInfo,
    version: &str,
    object: &Value,
) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    if !info.custom {
        let Some(typed) = builtin_round_trip(&info.kind, object) else {
            return Ok(unknown);
        };
        missing_after_round_trip(object, &typed?, "", &mut unknown);
        return Ok(unknown);
    }
    let Some(schema) = info
        .versions
        .iter()
        .find(|v| v.name == version)
        .and_then(|v| v.schema.as_ref())
    else {
        return Ok(unknown);
    };
    let Value::Object(fields) = object else {
        return Ok(unknown);
    };
    for (key, value) in fields {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let typed = round_trip::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                    value,
                )?;
                missing_after_round_trip(value, &typed, "metadata", &mut unknown);
            }
            _ => walk_schema(schema, key, value, "", &mut unknown),
        }
    }
    Ok(unknown)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Values a typed round trip may drop although their field is known.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Reports the fields of `input` that are absent from its round-tripped `output`.
fn missing_after_round_trip(input: &Value, output: &Value, path: &str, unknown: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(fields), Value::Object(kept)) => {
            for (key, value) in fields {
                let here = join(path, key);
                match kept.get(key) {
                    Some(kept_value) => missing_after_round_trip(value, kept_value, &here, unknown),
                    None if is_empty(value) => {}
                    None => unknown.push(format!("unknown field {here:?}")),
                }
            }
        }
        (Value::Array(items), Value::Array(kept)) if items.len() == kept.len() => {
            for (index, (item, kept_item)) in items.iter().zip(kept).enumerate() {
                missing_after_round_trip(item, kept_item, &format!("{path}[{index}]"), unknown);
            }
        }
        _ => {}
    }
}

/// Field `key` (with `value`) of an object whose schema is `schema`, at `path`.
fn walk_schema(schema: &Value, key: &str, value: &Value, path: &str, unknown: &mut Vec<String>) {
    let here = join(path, key);
    let additional = schema.get("additionalProperties");
    if let Some(property) = schema["properties"].get(key) {
        walk_value(property, value, &here, unknown);
    } else if let Some(additional) = additional.filter(|a| a.is_object()) {
        walk_value(additional, value, &here, unknown);
    } else if additional == Some(&Value::Bool(true))
        || schema["x-kubernetes-preserve-unknown-fields"] == true
        || (schema["x-kubernetes-embedded-resource"] == true
            && matches!(key, "apiVersion" | "kind" | "metadata"))
    {
    } else {
        unknown.push(format!("unknown field {here:?}"));
    }
}

fn walk_value(schema: &Value, value: &Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                walk_schema(schema, key, field, path, unknown);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for (index, item) in items.iter().enumerate() {
                    walk_value(item_schema, item, &format!("{path}[{index}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Decodes `object` into the `k8s-openapi` type of a built-in kind and encodes it again;
/// `None` for a kind without one here.
fn builtin_round_trip(kind: &str, object: &Value) -> Option<Result<Value, String>> {
    use k8s_openapi::api::{
        admissionregistration::v1 as admission, apps::v1 as apps, batch::v1 as batch,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;

    let api_version = object["apiVersion"].as_str().unwrap_or("");
    Some(match (api_version, kind) {
        ("v1", "Pod") => round_trip::<core::Pod>(object),
        ("v1", "Node") => round_trip::<core::Node>(object),
        ("v1", "Namespace") => round_trip::<core::Namespace>(object),
        ("v1", "ConfigMap") => round_trip::<core::ConfigMap>(object),
        ("v1", "Secret") => round_trip::<core::Secret>(object),
        ("v1", "ServiceAccount") => round_trip::<core::ServiceAccount>(object),
        ("v1", "Service") => round_trip::<core::Service>(object),
        ("v1", "Endpoints") => round_trip::<core::Endpoints>(object),
        ("v1", "Event") => round_trip::<core::Event>(object),
        ("v1", "PersistentVolumeClaim") => round_trip::<core::PersistentVolumeClaim>(object),
        ("v1", "PersistentVolume") => round_trip::<core::PersistentVolume>(object),
        ("apps/v1", "Deployment") => round_trip::<apps::Deployment>(object),
        ("apps/v1", "DaemonSet") => round_trip::<apps::DaemonSet>(object),
        ("apps/v1", "ReplicaSet") => round_trip::<apps::ReplicaSet>(object),
        ("apps/v1", "StatefulSet") => round_trip::<apps::StatefulSet>(object),
        ("batch/v1", "Job") => round_trip::<batch::Job>(object),
        ("batch/v1", "CronJob") => round_trip::<batch::CronJob>(object),
        ("coordination.k8s.io/v1", "Lease") => round_trip::<coordination::Lease>(object),
        ("events.k8s.io/v1", "Event") => round_trip::<events::Event>(object),
        ("discovery.k8s.io/v1", "EndpointSlice") => round_trip::<discovery::EndpointSlice>(object),
        ("storage.k8s.io/v1", "CSIDriver") => round_trip::<storage::CSIDriver>(object),
        ("storage.k8s.io/v1", "StorageClass") => round_trip::<storage::StorageClass>(object),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<rbac::Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<rbac::RoleBinding>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<rbac::ClusterRole>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<rbac::ClusterRoleBinding>(object)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            round_trip::<networking::NetworkPolicy>(object)
        }
        ("networking.k8s.io/v1", "Ingress") => round_trip::<networking::Ingress>(object),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<policy::PodDisruptionBudget>(object),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<apiextensions::CustomResourceDefinition>(object)
        }
        ("apiregistration.k8s.io/v1", "APIService") => {
            round_trip::<apiregistration::APIService>(object)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            round_trip::<admission::ValidatingWebhookConfiguration>(object)
        }
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            round_trip::<admission::MutatingWebhookConfiguration>(object)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources::Resources;

    const STRICT: &str = "fieldManager=kubectl&fieldValidation=Strict";

    fn message(result: Result<(), Status>) -> String {
        let status = result.unwrap_err();
        assert_eq!(status.http_code(), 400);
        status.message
    }

    #[test]
    fn builtins_refuse_unknown_and_duplicate_fields_when_strict() {
        let resources = Resources::new();
        let info = resources.get("apps", "daemonsets");
        let body = br#"{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"a","labels":{"x":"y"}},
            "spec":{"selector":{"matchLabels":{"x":"y"}},"paused":true,"template":{"metadata":{"labels":{"x":"y"}},
            "spec":{"containers":[{"name":"c","image":"i","imagePullPolicy":"Never","nested":1,
            "resources":{"limits":{"memory":"64Mi","cpu":1}}}]}}}}"#;
        let object: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            message(check(STRICT, info, "v1", body, &object, Write::Object)),
            "DaemonSet in version \"v1\" cannot be handled as a DaemonSet: strict decoding \
             error: unknown field \"spec.paused\", unknown field \
             \"spec.template.spec.containers[0].nested\""
        );
        // Not strict: accepted.
        check(
            "fieldValidation=Warn",
            info,
            "v1",
            body,
            &object,
            Write::Object,
        )
        .unwrap();
        check("", info, "v1", body, &object, Write::Object).unwrap();

        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"},"data":{}}"#;
        let object: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            message(check(
                STRICT,
                resources.get("", "configmaps"),
                "v1",
                body,
                &object,
                Write::Patch
            )),
            "strict decoding error: duplicate field \"name\""
        );
        let good = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "creationTimestamp": null, "finalizers": []},
            "data": {"k": "v"}});
        check(
            STRICT,
            resources.get("", "configmaps"),
            "v1",
            good.to_string().as_bytes(),
            &good,
            Write::Object,
        )
        .unwrap();
    }

    #[test]
    fn custom_resources_follow_their_structural_schema() {
        let mut resources = Resources::new();
        let mut crd = json!({"spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer"},
                        "parts": {"type": "array", "items": {"type": "object",
                            "properties": {"name": {"type": "string"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    }},
                },
            }}}],
        }});
        resources.observe_crd(&mut crd, "t");
        let info = resources.get("example.com", "widgets");
        let object = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "colour": "red"},
            "spec": {"size": 1, "parts": [{"name": "a"}, {"name": "b", "weight": 2}],
                     "labels": {"any": "thing"}, "free": {"x": {"y": 1}}, "extra": true}});
        assert_eq!(
            message(check(
                STRICT,
                info,
                "v1",
                object.to_string().as_bytes(),
                &object,
                Write::Object
            )),
            "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: \
             unknown field \"metadata.colour\", unknown field \"spec.extra\", unknown field \
             \"spec.parts[1].weight\""
        );
        // SPIRE's presets (no CRD stored) have no schema: not checked.
        check(
            STRICT,
            resources.get("spiffeid.spiffe.io", "spiffeids"),
            "v1beta1",
            b"{}",
            &json!({"spec": {"anything": 1}}),
            Write::Object,
        )
        .unwrap();
    }
}
