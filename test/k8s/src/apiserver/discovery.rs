//! What kubectl reads before it touches an object: legacy discovery (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>[/<version>]`) and the OpenAPI v3 documents (`/openapi/v3` and one
//! per group/version), both computed from the resources the server knows now, so a stored
//! CRD's group shows up at once and goes with it.
//!
//! Discovery is the legacy (unaggregated) kind: kubectl asks for aggregated discovery first,
//! sees `application/json` and falls back to one request per group/version. The OpenAPI
//! documents hold, per resource, the item and collection paths with their operations and the
//! `x-kubernetes-group-version-kind` extension; every write operation declares the
//! `fieldValidation` query parameter, so kubectl leaves validation to the server (it then
//! sends `fieldValidation=Strict`, see `fields`) instead of downloading OpenAPI v2 to
//! validate on its side. PATCH bodies are declared as JSON, merge and apply patches only:
//! for built-in kinds kubectl computes its strategic merge patches from its compiled-in types
//! then, and the schemas here can stay small (a CRD version's own schema; an open object for
//! built-in kinds).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};

use serde_json::{Value, json};

use super::resources::{ResourceInfo, Resources};
use super::status::Status;
use super::store::Reply;

/// The kinds that are not stored but answered (TokenReview), listed in discovery.
const VIRTUAL: &[(&str, &str, &str, &str)] =
    &[("authentication.k8s.io", "v1", "tokenreviews", "TokenReview")];

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One discoverable resource of a group/version.
struct Entry<'a> {
    plural: &'a str,
    info: Option<&'a ResourceInfo>,
    kind: &'a str,
    schema: Option<&'a Value>,
}

/// The discoverable resources by (group, version), groups and versions sorted.
fn served(resources: &Resources) -> BTreeMap<(String, String), Vec<Entry<'_>>> {
    let mut by_gv: BTreeMap<(String, String), Vec<Entry<'_>>> = BTreeMap::new();
    for ((group, plural), info) in resources.iter() {
        for version in &info.versions {
            by_gv
                .entry((group.clone(), version.name.clone()))
                .or_default()
                .push(Entry {
                    plural,
                    info: Some(info),
                    kind: &info.kind,
                    schema: version.schema.as_ref(),
                });
        }
    }
    for (group, version, plural, kind) in VIRTUAL {
        by_gv
            .entry(((*group).to_owned(), (*version).to_owned()))
            .or_default()
            .push(Entry {
                plural,
                info: None,
                kind,
                schema: None,
            });
    }
    for entries in by_gv.values_mut() {
        entries.sort_by(|a, b| a.plural.cmp(b.plural));
    }
    by_gv
}

/// `group/version`, or `v1` for the core group.
fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Answers a discovery or OpenAPI path; `None` for any other path.
pub(crate) fn answer(resources: &Resources, path: &str) -> Option<Result<Reply, Status>> {
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let served = || served(resources);
    Some(match segments.as_slice() {
        ["api"] => Ok(Reply::new(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [],
            }),
        )),
        ["apis"] => Ok(Reply::new(200, &group_list(&served()))),
        ["apis", group] => {
            let groups = group_list(&served());
            groups["groups"]
                .as_array()
                .and_then(|groups| groups.iter().find(|g| g["name"] == *group))
                .map(|found| {
                    let mut found = found.clone();
                    found["kind"] = "APIGroup".into();
                    found["apiVersion"] = "v1".into();
                    Reply::new(200, &found)
                })
                .ok_or_else(Status::no_such_resource)
        }
        ["api", version] => resource_list(&served(), "", version),
        ["apis", group, version] => resource_list(&served(), group, version),
        ["openapi", "v3"] => Ok(Reply::new(200, &openapi_root(&served()))),
        ["openapi", "v3", "api", version] => openapi_document(&served(), "", version),
        ["openapi", "v3", "apis", group, version] => openapi_document(&served(), group, version),
        _ => return None,
    })
}

/// `APIGroupList`: every named group with its versions (the first is preferred).
fn group_list(served: &BTreeMap<(String, String), Vec<Entry<'_>>>) -> Value {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (group, version) in served.keys() {
        if !group.is_empty() {
            groups.entry(group).or_default().push(version);
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
                .collect();
            json!({
                "name": group,
                "versions": versions,
                "preferredVersion": versions[0],
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `APIResourceList` of one group/version (404 when nothing is served there).
fn resource_list(
    served: &BTreeMap<(String, String), Vec<Entry<'_>>>,
    group: &str,
    version: &str,
) -> Result<Reply, Status> {
    let entries = served
        .get(&(group.to_owned(), version.to_owned()))
        .ok_or_else(Status::no_such_resource)?;
    let mut resources = Vec::new();
    for entry in entries {
        let Some(info) = entry.info else {
            resources.push(json!({
                "name": entry.plural,
                "singularName": entry.kind.to_lowercase(),
                "namespaced": false,
                "kind": entry.kind,
                "verbs": ["create"],
            }));
            continue;
        };
        let mut resource = json!({
            "name": entry.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": VERBS,
        });
        if !info.short_names.is_empty() {
            resource["shortNames"] = json!(info.short_names);
        }
        resources.push(resource);
        if info.status {
            resources.push(json!({
                "name": format!("{}/status", entry.plural),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    Ok(Reply::new(
        200,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": resources,
        }),
    ))
}

/// `api/v1` or `apis/<group>/<version>`.
fn openapi_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 root: one document per group/version, addressed with a hash of its
/// content (clients cache by it, so a CRD change gives a new address).
fn openapi_root(served: &BTreeMap<(String, String), Vec<Entry<'_>>>) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, version) in served.keys() {
        let Ok(document) = openapi_document(served, group, version) else {
            continue;
        };
        let mut hasher = DefaultHasher::new();
        document.body.hash(&mut hasher);
        let key = openapi_key(group, version);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={:016X}", hasher.finish())}),
        );
    }
    json!({"paths": paths})
}

/// The schema name of a kind (`io.spiffe.spiffeid.v1beta1.SpiffeID`, `io.k8s.api.core.v1.Pod`).
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed = if group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else if let Some(short) = group.strip_suffix(".k8s.io") {
        format!("io.k8s.api.{short}")
    } else if !group.contains('.') {
        format!("io.k8s.api.{group}")
    } else {
        group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{reversed}.{version}.{kind}")
}

fn parameter(name: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": true}})
}

/// One operation on `kind` with its parameters, body and response schemas.
fn operation(gvk: &Value, action: &str, schema_ref: &Value, write: bool) -> Value {
    let mut parameters = vec![parameter("pretty", "string")];
    if write {
        parameters.extend([
            parameter("dryRun", "string"),
            parameter("fieldManager", "string"),
            parameter("fieldValidation", "string"),
        ]);
    }
    if action == "patch" {
        parameters.push(parameter("force", "boolean"));
    }
    let mut op = json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
    });
    let body = match action {
        "patch" => Some(json!({
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
        })),
        "post" | "put" => Some(json!({"application/json": {"schema": schema_ref}})),
        _ => None,
    };
    if let Some(content) = body {
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

/// The OpenAPI v3 document of one group/version.
fn openapi_document(
    served: &BTreeMap<(String, String), Vec<Entry<'_>>>,
    group: &str,
    version: &str,
) -> Result<Reply, Status> {
    let entries = served
        .get(&(group.to_owned(), version.to_owned()))
        .ok_or_else(Status::no_such_resource)?;
    let prefix = format!("/{}", openapi_key(group, version));
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for entry in entries {
        let gvk = json!({"group": group, "version": version, "kind": entry.kind});
        let name = schema_name(group, version, entry.kind);
        let mut schema = entry
            .schema
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(name.clone(), schema);
        let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let Some(info) = entry.info else {
            paths.insert(
                format!("{prefix}/{}", entry.plural),
                json!({"post": operation(&gvk, "post", &schema_ref, true)}),
            );
            continue;
        };
        let collection = if info.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", entry.plural)
        } else {
            format!("{prefix}/{}", entry.plural)
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(&gvk, "list", &schema_ref, false),
                "post": operation(&gvk, "post", &schema_ref, true),
                "delete": operation(&gvk, "deletecollection", &schema_ref, false),
            }),
        );
        let mut items = vec![format!("{collection}/{{name}}")];
        if info.status {
            items.push(format!("{collection}/{{name}}/status"));
        }
        for item in items {
            paths.insert(
                item,
                json!({
                    "get": operation(&gvk, "get", &schema_ref, false),
                    "put": operation(&gvk, "put", &schema_ref, true),
                    "patch": operation(&gvk, "patch", &schema_ref, true),
                    "delete": operation(&gvk, "delete", &schema_ref, false),
                }),
            );
        }
    }
    Ok(Reply::new(
        200,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": super::state::KUBERNETES_VERSION},
            "paths": paths,
            "components": {"schemas": schemas},
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: Result<Reply, Status>) -> Value {
        let reply = reply.unwrap();
        assert_eq!(reply.code, 200);
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn discovery_lists_builtins_and_crd_groups() {
        let mut resources = Resources::new();
        let apis = body(answer(&resources, "/apis").unwrap());
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"authentication.k8s.io"));
        // SPIRE's presets are served but not discoverable before their CRD is stored.
        assert!(!names.contains(&"spiffeid.spiffe.io"), "{names:?}");
        let apps = body(answer(&resources, "/apis/apps/v1").unwrap());
        let ds = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "daemonsets")
            .unwrap();
        assert_eq!(ds["kind"], "DaemonSet");
        assert_eq!(ds["shortNames"], json!(["ds"]));

        let mut crd = json!({"spec": {
            "group": "spiffeid.spiffe.io", "scope": "Namespaced",
            "names": {"plural": "spiffeids", "singular": "spiffeid", "kind": "SpiffeID"},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object"}},
                          "subresources": {"status": {}}}],
        }});
        resources.observe_crd(&mut crd, "t");
        let list = body(answer(&resources, "/apis/spiffeid.spiffe.io/v1beta1").unwrap());
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["spiffeids", "spiffeids/status"]);
        let root = body(answer(&resources, "/openapi/v3").unwrap());
        let url = root["paths"]["apis/spiffeid.spiffe.io/v1beta1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        let (path, _) = url.split_once('?').unwrap();
        let doc = body(answer(&resources, path).unwrap());
        let patch = &doc["paths"]["/apis/spiffeid.spiffe.io/v1beta1/namespaces/{namespace}/spiffeids/{name}"]
            ["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "SpiffeID");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );

        resources.forget_crd(&crd);
        assert!(
            answer(&resources, "/apis/spiffeid.spiffe.io/v1beta1")
                .unwrap()
                .is_err()
        );
        assert!(answer(&resources, "/api/v1/pods").is_none());
    }
}
