//! RFC 6902 JSON patch (`application/json-patch+json`): add, remove, replace, move, copy
//! and test, with the apiserver's leniency that `test` of an absent path against `null`
//! passes (kube-rs's finalizer helper relies on it).

use serde_json::Value;

/// Why a JSON patch was not applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonPatchError {
    /// The body is not a JSON patch document (answered with 400).
    Decode(String),
    /// An operation failed (answered with 422).
    Apply(String),
}

/// One decoded operation.
#[derive(Debug)]
enum Operation {
    Add(Vec<String>, Value),
    Remove(Vec<String>),
    Replace(Vec<String>, Value),
    Move { from: Vec<String>, to: Vec<String> },
    Copy { from: Vec<String>, to: Vec<String> },
    Test(Vec<String>, Value),
}

/// Applies the patch in `body` to `document`; on error `document` may be partly patched.
pub(crate) fn apply(document: &mut Value, body: &[u8]) -> Result<(), JsonPatchError> {
    let operations = decode(body)?;
    for operation in operations {
        run(document, operation).map_err(JsonPatchError::Apply)?;
    }
    Ok(())
}

fn decode(body: &[u8]) -> Result<Vec<Operation>, JsonPatchError> {
    let decode_error = |message: String| JsonPatchError::Decode(message);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| decode_error(format!("unable to decode the JSON patch: {e}")))?;
    let Value::Array(operations) = value else {
        return Err(decode_error(
            "a JSON patch must be an array of operations".to_owned(),
        ));
    };
    operations
        .into_iter()
        .map(|operation| {
            let op = operation["op"].as_str().unwrap_or("");
            let pointer = |field: &str| {
                operation[field]
                    .as_str()
                    .ok_or_else(|| decode_error(format!("operation {op:?} has no {field:?}")))
                    .and_then(|p| tokens(p).map_err(decode_error))
            };
            let value = || {
                operation
                    .get("value")
                    .cloned()
                    .ok_or_else(|| decode_error(format!("operation {op:?} has no \"value\"")))
            };
            Ok(match op {
                "add" => Operation::Add(pointer("path")?, value()?),
                "remove" => Operation::Remove(pointer("path")?),
                "replace" => Operation::Replace(pointer("path")?, value()?),
                "move" => Operation::Move {
                    from: pointer("from")?,
                    to: pointer("path")?,
                },
                "copy" => Operation::Copy {
                    from: pointer("from")?,
                    to: pointer("path")?,
                },
                "test" => Operation::Test(pointer("path")?, value()?),
                other => {
                    return Err(decode_error(format!(
                        "unexpected kind of operation: {other:?}"
                    )));
                }
            })
        })
        .collect()
}

/// The reference tokens of a JSON pointer (`""` is the whole document).
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("JSON pointer {pointer:?} does not start with '/'"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn display(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn run(document: &mut Value, operation: Operation) -> Result<(), String> {
    match operation {
        Operation::Add(path, value) => add(document, &path, value),
        Operation::Remove(path) => remove(document, &path).map(drop),
        Operation::Replace(path, value) => {
            let slot = get_mut(document, &path).ok_or_else(|| {
                format!(
                    "replace operation does not apply: doc is missing key: {}",
                    display(&path)
                )
            })?;
            *slot = value;
            Ok(())
        }
        Operation::Move { from, to } => {
            if to.len() > from.len() && to.starts_with(&from) {
                return Err(format!(
                    "move operation can not move {} into its own child {}",
                    display(&from),
                    display(&to)
                ));
            }
            let value = remove(document, &from)?;
            add(document, &to, value)
        }
        Operation::Copy { from, to } => {
            let value = get_mut(document, &from)
                .ok_or_else(|| {
                    format!(
                        "copy operation does not apply: doc is missing from path: {}",
                        display(&from)
                    )
                })?
                .clone();
            add(document, &to, value)
        }
        Operation::Test(path, expected) => match get_mut(document, &path) {
            Some(actual) if *actual == expected => Ok(()),
            None if expected.is_null() => Ok(()),
            _ => Err(format!(
                "testing value {} failed: test failed",
                display(&path)
            )),
        },
    }
}

fn get_mut<'a>(document: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(document, |value, token| match value {
        Value::Object(fields) => fields.get_mut(token),
        Value::Array(items) => index(token, items.len()).and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// An array index token: digits without a leading zero, below `len`.
fn index(token: &str, len: usize) -> Option<usize> {
    if token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse().ok().filter(|i| *i < len)
}

fn add(document: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *document = value;
        return Ok(());
    };
    let missing = || {
        format!(
            "add operation does not apply: doc is missing path: {}",
            display(path)
        )
    };
    match get_mut(document, parent).ok_or_else(missing)? {
        Value::Object(fields) => {
            fields.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let at = if last == "-" {
                items.len()
            } else {
                index(last, items.len() + 1).ok_or_else(|| {
                    format!(
                        "add operation does not apply: index out of bounds: {}",
                        display(path)
                    )
                })?
            };
            items.insert(at, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(document: &mut Value, path: &[String]) -> Result<Value, String> {
    let missing = || {
        format!(
            "remove operation does not apply: doc is missing path: {}",
            display(path)
        )
    };
    let Some((last, parent)) = path.split_last() else {
        return Ok(std::mem::take(document));
    };
    match get_mut(document, parent).ok_or_else(missing)? {
        Value::Object(fields) => fields.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let at = index(last, items.len()).ok_or_else(missing)?;
            Ok(items.remove(at))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(mut document: Value, patch: Value) -> Result<Value, JsonPatchError> {
        apply(&mut document, patch.to_string().as_bytes()).map(|()| document)
    }

    #[test]
    fn operations_follow_rfc_6902() {
        let doc = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}, "spec": {"k/v": 1}});
        let out = patched(
            doc.clone(),
            json!([
                {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
                {"op": "add", "path": "/metadata/finalizers/0", "value": "z"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
                {"op": "replace", "path": "/spec/k~1v", "value": 2},
                {"op": "copy", "from": "/spec", "path": "/status"},
                {"op": "move", "from": "/status/k~1v", "path": "/status/moved"},
                {"op": "test", "path": "/metadata/name", "value": "x"},
            ]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "b", "c"]));
        assert_eq!(out["spec"], json!({"k/v": 2}));
        assert_eq!(out["status"], json!({"moved": 2}));

        // kube-rs adds a first finalizer after testing that there are none.
        let out = patched(
            json!({"metadata": {}}),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
            ]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn failures_are_reported() {
        let doc = json!({"a": [1]});
        let apply_error = |patch: Value| match patched(doc.clone(), patch) {
            Err(JsonPatchError::Apply(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            apply_error(json!([{"op": "test", "path": "/a/0", "value": 2}])),
            "testing value /a/0 failed: test failed"
        );
        apply_error(json!([{"op": "remove", "path": "/b"}]));
        apply_error(json!([{"op": "replace", "path": "/a/1", "value": 0}]));
        apply_error(json!([{"op": "add", "path": "/a/3", "value": 0}]));
        apply_error(json!([{"op": "add", "path": "/x/y", "value": 0}]));
        apply_error(json!([{"op": "move", "from": "/a", "path": "/a/0"}]));
        apply_error(json!([{"op": "test", "path": "/b", "value": 1}]));
        for bad in [
            json!({}),
            json!([{"op": "jump", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/a"}]),
        ] {
            assert!(matches!(
                patched(doc.clone(), bad),
                Err(JsonPatchError::Decode(_))
            ));
        }
    }
}
