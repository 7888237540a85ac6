//! Strategic merge patch (`application/strategic-merge-patch+json`) for the built-in types,
//! from the merge keys of the lists controllers patch: `webhooks` and `containers` merge by
//! `name`, `ownerReferences` by `uid`, `conditions` by `type`, ...; `finalizers` is a set.
//! Other lists are replaced, as in a JSON merge patch. The `$patch` (`replace`, `delete`)
//! and `$deleteFromPrimitiveList/<field>` directives are understood; `$setElementOrder` and
//! `$retainKeys` are ignored.

use serde_json::{Map, Value};

/// Lists merged by a key field, by the name of the list's field.
const MERGE_KEYS: &[(&str, &str)] = &[
    ("webhooks", "name"),
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("env", "name"),
    ("volumes", "name"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
    ("imagePullSecrets", "name"),
    ("ownerReferences", "uid"),
    ("conditions", "type"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
    ("resourceClaims", "name"),
];

/// Lists of scalars merged as sets.
const SET_LISTS: &[&str] = &["finalizers"];

const PATCH: &str = "$patch";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `target`.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get(PATCH).and_then(Value::as_str) == Some("replace") {
        *target = Value::Object(without_directives(patch));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let fields = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM) {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (fields.get_mut(field), value)
            {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                fields.remove(key);
            }
            Value::Object(inner) if inner.get(PATCH).and_then(Value::as_str) == Some("delete") => {
                fields.remove(key);
            }
            Value::Array(items) => {
                let slot = fields.entry(key.clone()).or_insert(Value::Null);
                merge_list(key, slot, items);
            }
            _ => merge(fields.entry(key.clone()).or_insert(Value::Null), value),
        }
    }
}

fn merge_list(field: &str, target: &mut Value, items: &[Value]) {
    let replace = items
        .iter()
        .any(|item| item.get(PATCH).and_then(Value::as_str) == Some("replace"));
    let patch_items: Vec<&Value> = items
        .iter()
        .filter(|item| item.get(PATCH).and_then(Value::as_str) != Some("replace"))
        .collect();
    let Value::Array(existing) = target else {
        *target = Value::Array(patch_items.into_iter().map(strip).collect());
        return;
    };
    if replace {
        *existing = patch_items.into_iter().map(strip).collect();
        return;
    }
    if SET_LISTS.contains(&field) {
        for item in patch_items {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(field, &patch_items) else {
        *existing = patch_items.into_iter().map(strip).collect();
        return;
    };
    for item in patch_items {
        let id = &item[key];
        let position = existing.iter().position(|e| &e[key] == id);
        let delete = item.get(PATCH).and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(at), true) => {
                existing.remove(at);
            }
            (None, true) => {}
            (Some(at), false) => merge(&mut existing[at], item),
            (None, false) => existing.push(strip(item)),
        }
    }
}

/// The key field of a list of objects, if it merges by key (`ports` by `containerPort` in
/// pod specs, by `port` in Services).
fn merge_key(field: &str, items: &[&Value]) -> Option<&'static str> {
    if !items.iter().all(|item| item.is_object()) {
        return None;
    }
    if field == "ports" {
        let container = items.iter().any(|item| item.get("containerPort").is_some());
        return Some(if container { "containerPort" } else { "port" });
    }
    MERGE_KEYS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, key)| *key)
}

fn strip(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(without_directives(fields)),
        other => other.clone(),
    }
}

fn without_directives(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(key, _)| !key.starts_with('$'))
        .map(|(key, value)| (key.clone(), strip(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(mut target: Value, patch: Value) -> Value {
        merge(&mut target, &patch);
        target
    }

    #[test]
    fn webhooks_merge_by_name() {
        let vwc = json!({"webhooks": [
            {"name": "a", "rules": [1], "clientConfig": {"service": {"name": "s"}}},
            {"name": "b", "rules": [2]},
        ]});
        let out = patched(
            vwc,
            json!({"webhooks": [{"name": "b", "clientConfig": {"caBundle": "Q0E="}}]}),
        );
        assert_eq!(
            out["webhooks"],
            json!([
                {"name": "a", "rules": [1], "clientConfig": {"service": {"name": "s"}}},
                {"name": "b", "rules": [2], "clientConfig": {"caBundle": "Q0E="}},
            ])
        );
    }

    #[test]
    fn directives_and_other_lists() {
        let pod = json!({
            "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d"}],
                     "tolerations": [{"key": "k"}]},
        });
        let out = patched(
            pod,
            json!({
                "metadata": {"finalizers": ["b"], "labels": {"x": null},
                             "$deleteFromPrimitiveList/finalizers": ["a"]},
                "spec": {"containers": [{"name": "d", "$patch": "delete"}, {"name": "e"}],
                         "$setElementOrder/containers": [{"name": "c"}, {"name": "e"}],
                         "tolerations": [{"key": "other"}]},
            }),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "i"}, {"name": "e"}])
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "other"}]));
        let replaced = patched(
            json!({"data": {"a": "1"}}),
            json!({"data": {"$patch": "replace", "b": "2"}}),
        );
        assert_eq!(replaced["data"], json!({"b": "2"}));
    }
}
