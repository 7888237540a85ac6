//! Kubernetes label selectors (`metav1.LabelSelector`) as the apiserver evaluates them:
//! `matchLabels` and `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`) all ANDed.
//!
//! A selector with neither part matches everything. spire-controller-manager treats an absent
//! (`nil`) `namespaceSelector`/`podSelector` as "no filter", so [`LabelMatcher::parse`] maps
//! `None` to "everything" too (apimachinery alone would map `nil` to "nothing").

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use spire_id::go_fmt::quote;

use super::Error;

/// A validated label selector, ready to match label sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelMatcher {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// `matchLabels` entry: the label exists with exactly this value.
    Equals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// Label name limit (k8s `validation.LabelValueMaxLength`, also the name part of a key).
const MAX_NAME_LEN: usize = 63;
/// DNS subdomain limit for a key prefix (k8s `DNS1123SubdomainMaxLength`).
const MAX_PREFIX_LEN: usize = 253;

// === impl LabelMatcher ===

impl LabelMatcher {
    /// A matcher that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Validates `selector` as `metav1.LabelSelectorAsSelector` does; `None` matches everything.
    pub fn parse(selector: Option<&LabelSelector>) -> Result<Self, Error> {
        let Some(selector) = selector else {
            return Ok(Self::everything());
        };
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            validate_key(key)?;
            validate_value(value)?;
            requirements.push(Requirement {
                key: key.clone(),
                op: Op::Equals(value.clone()),
            });
        }
        for expr in selector.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            let op = match expr.operator.as_str() {
                "In" => Op::In(values.clone()),
                "NotIn" => Op::NotIn(values.clone()),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(Error::InvalidSpec(format!(
                        "{} is not a valid label selector operator",
                        quote(other)
                    )));
                }
            };
            validate_key(&expr.key)?;
            match op {
                Op::In(_) | Op::NotIn(_) if values.is_empty() => {
                    return Err(invalid_values(
                        &values,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
                Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                    return Err(invalid_values(
                        &values,
                        "values set must be empty for exists and does not exist",
                    ));
                }
                _ => {}
            }
            for value in &values {
                validate_value(value)?;
            }
            requirements.push(Requirement {
                key: expr.key.clone(),
                op,
            });
        }
        Ok(Self { requirements })
    }

    /// True when this matcher matches every label set.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` (absent = no labels) satisfies every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key));
            match &r.op {
                Op::Equals(want) => value == Some(want),
                Op::In(values) => value.is_some_and(|v| values.contains(v)),
                Op::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

fn invalid_values(values: &[String], detail: &str) -> Error {
    let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
    Error::InvalidSpec(format!(
        "values: Invalid value: []string{{{}}}: {detail}",
        list.join(", ")
    ))
}

/// A label key is a qualified name: `[prefix/]name`, the prefix a DNS subdomain.
fn validate_key(key: &str) -> Result<(), Error> {
    let invalid =
        |detail: &str| Error::InvalidSpec(format!("key: Invalid value: {}: {detail}", quote(key)));
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(invalid("prefix part must be non-empty"));
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(invalid("prefix part must be no more than 253 characters"));
        }
        if !is_dns_subdomain(prefix) {
            return Err(invalid(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
    }
    if name.is_empty() {
        return Err(invalid("name part must be non-empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("name part must be no more than 63 characters"));
    }
    if !is_label_name(name) {
        return Err(invalid(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// A label value: empty, or up to 63 characters of the name alphabet.
fn validate_value(value: &str) -> Result<(), Error> {
    let invalid = |detail: &str| {
        Error::InvalidSpec(format!("values: Invalid value: {}: {detail}", quote(value)))
    };
    if value.len() > MAX_NAME_LEN {
        return Err(invalid("must be no more than 63 characters"));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(invalid(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Lowercase RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]`, alphanumeric at both ends.
fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && (last.is_ascii_lowercase() || last.is_ascii_digit())
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests;
