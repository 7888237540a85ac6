//! What a service account may do, as one line per group/resource/verb, so that a test can
//! compare it with exactly what the binaries need.

use std::collections::BTreeSet;

use serde_json::Value;

use super::objects::get;

/// Every permission the service account `namespace/name` is bound to, one line per
/// group/resource/verb: `<cluster|namespace> <group>/<resource> <verb>[ <resourceNames>]`.
pub(crate) fn permissions(objects: &[Value], namespace: &str, name: &str) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let bound = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace
            });
        if !bound {
            continue;
        }
        let scope = binding["metadata"]["namespace"].as_str();
        let role_ns = if binding["roleRef"]["kind"] == "Role" {
            scope
        } else {
            None
        };
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role = get(
            objects,
            role_kind,
            role_ns,
            binding["roleRef"]["name"].as_str().expect("roleRef.name"),
        );
        for rule in role["rules"].as_array().into_iter().flatten() {
            let names: Vec<&str> = rule["resourceNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let names = if names.is_empty() {
                String::new()
            } else {
                format!(" {}", names.join(","))
            };
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        let group = if group.is_empty() { "core" } else { group };
                        lines.insert(format!(
                            "{} {group}/{resource} {verb}{names}",
                            scope.unwrap_or("cluster")
                        ));
                    }
                }
            }
        }
    }
    lines
}

pub(crate) fn strings(list: &Value) -> impl Iterator<Item = &str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// `"<scope> <group>/<resource> <verb> <verb>…[ | names]"` → one line per verb.
pub(crate) fn expected(table: &[&str]) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for row in table {
        let (grant, names) = row
            .split_once(" | ")
            .map_or((*row, String::new()), |(g, n)| (g, format!(" {n}")));
        let mut words = grant.split_whitespace();
        let (scope, resource) = (
            words.next().expect("scope"),
            words.next().expect("resource"),
        );
        for verb in words {
            lines.insert(format!("{scope} {resource} {verb}{names}"));
        }
    }
    lines
}

pub(crate) fn assert_permissions(objects: &[Value], account: &str, want: &[&str]) {
    let got = permissions(objects, "spire", account);
    let want = expected(want);
    let extra: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "spire/{account}: granted but not needed {extra:#?}; needed but not granted {missing:#?}"
    );
}
