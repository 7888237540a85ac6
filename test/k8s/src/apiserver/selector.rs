//! Label and field selectors, and the filter a list or watch request applies to objects.

use serde_json::Value;

use super::json::escape_pointer;
use super::path::{Target, query_param};
use super::status::Status;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LabelRequirement {
    /// `k=v`, `k==v`.
    Equals(String, String),
    /// `k!=v` (also true without the label).
    NotEquals(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)` (also true without the label).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
}

/// One requirement of a field selector (equality only, as the apiserver supports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldRequirement {
    /// `path=v`, `path==v`.
    Equals(String, String),
    /// `path!=v`.
    NotEquals(String, String),
}

/// Parses a label selector: comma-separated `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
/// `k notin (a,b)`, `k` and `!k`; all must hold.
pub(crate) fn parse_labels(text: &str) -> Result<Vec<LabelRequirement>, String> {
    split_requirements(text)?
        .into_iter()
        .map(|part| parse_label(&part))
        .collect()
}

fn parse_label(part: &str) -> Result<LabelRequirement, String> {
    let invalid = || format!("unable to parse requirement: {part:?}");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(
            key_of(key.trim()).ok_or_else(invalid)?,
        ));
    }
    if let Some(open) = part.find('(') {
        let values = part[open + 1..]
            .strip_suffix(')')
            .ok_or_else(invalid)?
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect::<Vec<_>>();
        let head: Vec<&str> = part[..open].split_whitespace().collect();
        return match head.as_slice() {
            [key, "in"] => Ok(LabelRequirement::In(
                key_of(key).ok_or_else(invalid)?,
                values,
            )),
            [key, "notin"] => Ok(LabelRequirement::NotIn(
                key_of(key).ok_or_else(invalid)?,
                values,
            )),
            _ => Err(invalid()),
        };
    }
    if let Some((k, v)) = split_operator(part) {
        let (key, value) = (key_of(k.0).ok_or_else(invalid)?, v.trim().to_owned());
        if value.contains(char::is_whitespace) {
            return Err(invalid());
        }
        return Ok(if k.1 {
            LabelRequirement::NotEquals(key, value)
        } else {
            LabelRequirement::Equals(key, value)
        });
    }
    Ok(LabelRequirement::Exists(key_of(part).ok_or_else(invalid)?))
}

/// `((key, negated), value)` of `k!=v`, `k==v` or `k=v`.
fn split_operator(part: &str) -> Option<((&str, bool), &str)> {
    if let Some((k, v)) = part.split_once("!=") {
        Some(((k, true), v))
    } else if let Some((k, v)) = part.split_once("==") {
        Some(((k, false), v))
    } else {
        part.split_once('=').map(|(k, v)| ((k, false), v))
    }
}

/// A label key: non-empty, no whitespace, no selector syntax.
fn key_of(text: &str) -> Option<String> {
    let key = text.trim();
    (!key.is_empty() && !key.contains(|c: char| c.is_whitespace() || "!=(),".contains(c)))
        .then(|| key.to_owned())
}

/// Splits at commas outside parentheses, dropping empty parts.
fn split_requirements(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("unable to parse requirement: unbalanced ')' in {text:?}")
                })?;
            }
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unbalanced '(' in {text:?}"
        ));
    }
    parts.push(current);
    Ok(parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect())
}

/// Parses a field selector: comma-separated `path=v`, `path==v`, `path!=v` (`\,`, `\=` and
/// `\\` escape those characters in values).
pub(crate) fn parse_fields(text: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut requirements = Vec::new();
    for part in split_escaped(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some(((key, negated), value)) = split_operator(part) else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(format!("invalid selector: '{part}'"));
        }
        let value = unescape(value.trim());
        requirements.push(if negated {
            FieldRequirement::NotEquals(key, value)
        } else {
            FieldRequirement::Equals(key, value)
        });
    }
    Ok(requirements)
}

/// Splits at commas not escaped with a backslash (escapes are kept).
fn split_escaped(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in text.chars() {
        let last = parts.last_mut().expect("never empty");
        if escaped {
            last.push(c);
            escaped = false;
        } else if c == '\\' {
            last.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(String::new());
        } else {
            last.push(c);
        }
    }
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a list or watch request selects: a namespace (or all) and label and field selectors.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub(crate) namespace: Option<String>,
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

// === impl Filter ===

impl Filter {
    /// The filter of a collection request: its path's namespace and the `labelSelector` and
    /// `fieldSelector` query parameters.
    pub(crate) fn from_request(target: &Target, query: &str) -> Result<Self, Status> {
        let labels = parse_labels(&query_param(query, "labelSelector").unwrap_or_default())
            .map_err(Status::bad_request)?;
        let fields = parse_fields(&query_param(query, "fieldSelector").unwrap_or_default())
            .map_err(Status::bad_request)?;
        Ok(Self {
            namespace: target.namespace.clone(),
            labels,
            fields,
        })
    }

    /// Whether the request has label or field selectors.
    pub(crate) fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }

    /// Whether `object` (in `namespace`, `""` when cluster-scoped) is selected.
    pub(crate) fn matches(&self, namespace: &str, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.iter().all(|r| label_matches(r, object))
            && self.fields.iter().all(|r| match r {
                FieldRequirement::Equals(path, value) => field_value(object, path) == *value,
                FieldRequirement::NotEquals(path, value) => field_value(object, path) != *value,
            })
    }
}

fn label_matches(requirement: &LabelRequirement, object: &Value) -> bool {
    let label = |key: &str| {
        object
            .pointer(&format!("/metadata/labels/{}", escape_pointer(key)))
            .and_then(Value::as_str)
    };
    match requirement {
        LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
        LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
        LabelRequirement::In(k, values) => label(k).is_some_and(|l| values.iter().any(|v| v == l)),
        LabelRequirement::NotIn(k, values) => {
            label(k).is_none_or(|l| values.iter().all(|v| v != l))
        }
        LabelRequirement::Exists(k) => label(k).is_some(),
        LabelRequirement::NotExists(k) => label(k).is_none(),
    }
}

/// A field as field selectors see it: a dotted path's string, number or boolean, `""` when
/// absent (so `spec.nodeName=` selects unscheduled pods).
fn field_value(object: &Value, path: &str) -> String {
    let pointer: String = path
        .split('.')
        .map(|part| format!("/{}", escape_pointer(part)))
        .collect();
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors_parse_every_operator() {
        use LabelRequirement::*;
        let parsed =
            parse_labels("app=x, tier==web,env!=prod,zone in (a, b),k notin (c),has,!gone")
                .unwrap();
        assert_eq!(
            parsed,
            [
                Equals("app".into(), "x".into()),
                Equals("tier".into(), "web".into()),
                NotEquals("env".into(), "prod".into()),
                In("zone".into(), vec!["a".into(), "b".into()]),
                NotIn("k".into(), vec!["c".into()]),
                Exists("has".into()),
                NotExists("gone".into()),
            ]
        );
        assert_eq!(parse_labels("").unwrap(), []);
        assert_eq!(
            parse_labels("spiffe.io/spire-managed-identity=true").unwrap(),
            [Equals(
                "spiffe.io/spire-managed-identity".into(),
                "true".into()
            )]
        );
        for bad in ["a in b", "a in (b", "a b", "=x", "a in (b))", "a = b c"] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_apply_labels_fields_and_namespace() {
        let pod = json!({"metadata": {"name": "p", "namespace": "a", "labels": {"app": "x"}},
                         "spec": {"nodeName": "n1", "hostNetwork": true}});
        let filter = |labels: &str, fields: &str| Filter {
            namespace: None,
            labels: parse_labels(labels).unwrap(),
            fields: parse_fields(fields).unwrap(),
        };
        assert!(filter("app in (x,y)", "spec.nodeName=n1").matches("a", &pod));
        assert!(!filter("app notin (x)", "").matches("a", &pod));
        assert!(filter("env notin (x),!env", "").matches("a", &pod));
        assert!(filter("", "spec.hostNetwork=true,metadata.namespace==a").matches("a", &pod));
        assert!(!filter("", "spec.nodeName!=n1").matches("a", &pod));
        assert!(
            filter("", "spec.schedulerName=").matches("a", &pod),
            "absent is empty"
        );
        assert!(
            !filter("", "metadata.name=p\\,q").matches("a", &pod),
            "escaped comma"
        );
        let mut scoped = filter("", "");
        scoped.namespace = Some("b".into());
        assert!(!scoped.matches("a", &pod));
        assert!(parse_fields("spec.nodeName").is_err());
    }
}
