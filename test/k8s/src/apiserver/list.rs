//! Lists: selectors, `limit`/`continue` paging over a consistent snapshot (rebuilt from the
//! history, as etcd serves a paged list at the first page's revision), and exact
//! `resourceVersion` reads.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use super::path::{Target, query_param};
use super::selector::Filter;
use super::status::Status;
use super::store::{Reply, Store};

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
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_item_count: Option<usize>,
}

/// What a continue token carries: its serial number (for expiring the tokens issued so
/// far), the list's revision (0: the current state) and the last (namespace, name) returned.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Continue {
    v: String,
    n: u64,
    rv: u64,
    ns: String,
    name: String,
}

const TOKEN_VERSION: &str = "spire-test-k8s/v1";

/// Objects of one resource by (namespace, name), borrowed from the store and its history (a
/// page clones only the objects it returns).
type Snapshot<'a> = BTreeMap<(&'a str, &'a str), &'a Value>;

// === impl Continue ===

impl Continue {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a continue token serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(token: &str) -> Result<Self, Status> {
        let invalid =
            |why: String| Status::bad_request(format!("continue key is not valid: {why}"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|e| invalid(e.to_string()))?;
        let token: Self = serde_json::from_slice(&json).map_err(|e| invalid(e.to_string()))?;
        if token.v != TOKEN_VERSION {
            return Err(invalid(format!("unknown version {:?}", token.v)));
        }
        Ok(token)
    }
}

// === impl Store ===

impl Store {
    /// `GET` on a collection.
    pub(crate) fn list(&mut self, target: &Target, query: &str) -> Result<Reply, Status> {
        let filter = Filter::from_request(target, query)?;
        let limit = match query_param(query, "limit").filter(|l| !l.is_empty()) {
            Some(limit) => limit
                .parse::<usize>()
                .map_err(|e| Status::bad_request(format!("invalid limit {limit:?}: {e}")))?,
            None => 0,
        };
        let resource_version = query_param(query, "resourceVersion").unwrap_or_default();
        let token = query_param(query, "continue").filter(|c| !c.is_empty());
        let (revision, start) = match token {
            Some(token) => {
                if !resource_version.is_empty() {
                    return Err(Status::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let token = Continue::decode(&token)?;
                if token.n < self.continue_floor
                    || (token.rv != 0 && token.rv < self.history.floor())
                {
                    let inconsistent = Continue {
                        n: self.next_continue_serial(),
                        rv: 0,
                        ..token
                    };
                    return Err(Status::continue_expired(Some(inconsistent.encode())));
                }
                let revision = if token.rv == 0 {
                    self.revision
                } else {
                    token.rv
                };
                (revision, Some((token.ns, token.name)))
            }
            None if query_param(query, "resourceVersionMatch").as_deref() == Some("Exact") => {
                let revision = parse_revision(&resource_version)?;
                if revision < self.history.floor() {
                    return Err(Status::expired(format!(
                        "too old resource version: {revision} ({})",
                        self.history.floor()
                    )));
                }
                (revision.min(self.revision), None)
            }
            None => (self.revision, None),
        };
        let (items, more, remaining) = {
            let snapshot = self.snapshot(target, revision);
            let mut selected = snapshot
                .into_iter()
                .filter(|((namespace, _), object)| filter.matches(namespace, object))
                .filter(|((namespace, name), _)| {
                    start
                        .as_ref()
                        .is_none_or(|(ns, n)| (*namespace, *name) > (ns.as_str(), n.as_str()))
                });
            let mut items = Vec::new();
            let mut more = false;
            for (_, object) in selected.by_ref() {
                if limit > 0 && items.len() == limit {
                    // The first item left out: there are more.
                    more = true;
                    break;
                }
                items.push(object.clone());
            }
            let remaining = (more && !filter.has_selectors()).then(|| 1 + selected.count());
            (items, more, remaining)
        };
        let continue_token = more.then(|| {
            let (ns, name) = object_position(items.last());
            Continue {
                v: TOKEN_VERSION.to_owned(),
                n: self.next_continue_serial(),
                rv: revision,
                ns,
                name,
            }
            .encode()
        });
        Ok(self.list_reply(target, revision, continue_token, remaining, items))
    }

    fn next_continue_serial(&mut self) -> u64 {
        self.continue_serial += 1;
        self.continue_serial
    }

    /// A `<Kind>List` of `items` at `revision`.
    pub(crate) fn list_reply(
        &self,
        target: &Target,
        revision: u64,
        continue_token: Option<String>,
        remaining_item_count: Option<usize>,
        items: Vec<Value>,
    ) -> Reply {
        let kind = self.kind_for(target, &Value::Null);
        Reply::new(
            200,
            &List {
                kind: format!("{kind}List"),
                api_version: target.api_version(),
                metadata: ListMeta {
                    resource_version: revision.to_string(),
                    continue_token,
                    remaining_item_count,
                },
                items,
            },
        )
    }

    /// The objects of `target`'s resource as they were at `revision` (which the history
    /// reaches back to).
    pub(super) fn snapshot(&self, target: &Target, revision: u64) -> Snapshot<'_> {
        let mut objects: Snapshot<'_> = self
            .objects
            .iter()
            .filter(|((group, resource, _, _), _)| {
                group == &target.group && resource == &target.resource
            })
            .map(|((_, _, namespace, name), object)| ((namespace.as_str(), name.as_str()), object))
            .collect();
        if revision >= self.revision {
            return objects;
        }
        let Ok(changes) = self.history.since(revision) else {
            return objects;
        };
        for event in changes.rev() {
            let (group, resource, namespace, name) = &event.key;
            if group != &target.group || resource != &target.resource {
                continue;
            }
            let position = (namespace.as_str(), name.as_str());
            match &event.previous {
                Some(previous) => objects.insert(position, previous),
                None => objects.remove(&position),
            };
        }
        objects
    }
}

fn object_position(object: Option<&Value>) -> (String, String) {
    let field = |name: &str| {
        object
            .and_then(|o| o["metadata"][name].as_str())
            .unwrap_or("")
            .to_owned()
    };
    (field("namespace"), field("name"))
}

/// A numeric resourceVersion.
pub(crate) fn parse_revision(text: &str) -> Result<u64, Status> {
    text.parse().map_err(|_| {
        Status::bad_request(format!(
            "resourceVersion: Invalid value: {text:?}: must be a non-negative integer"
        ))
    })
}
