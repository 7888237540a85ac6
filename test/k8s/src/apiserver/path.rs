//! Request paths and query strings of the apiserver's REST API.

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// API group (`""` for the core group under `/api`).
    pub(crate) group: String,
    /// API version (`v1`, ...).
    pub(crate) version: String,
    /// Resource, plural and lower case (`configmaps`).
    pub(crate) resource: String,
    /// Namespace for namespaced paths.
    pub(crate) namespace: Option<String>,
    /// Object name for item paths (none for collections).
    pub(crate) name: Option<String>,
    /// Subresource (`status`, ...).
    pub(crate) subresource: Option<String>,
}

// === impl Target ===

impl Target {
    /// Parses `/api/v1/...` and `/apis/<group>/<version>/...` paths, namespaced
    /// (`namespaces/<ns>/<resource>[/<name>[/<sub>]]`) or cluster-scoped
    /// (`<resource>[/<name>[/<sub>]]`, including `namespaces[/<name>]` itself).
    pub(crate) fn parse(path: &str) -> Option<Self> {
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect::<Option<_>>()?;
        if segments.iter().any(String::is_empty) {
            return None;
        }
        let (group, version, rest) = match segments.as_slice() {
            [api, version, rest @ ..] if api == "api" => (String::new(), version.clone(), rest),
            [apis, group, version, rest @ ..] if apis == "apis" => {
                (group.clone(), version.clone(), rest)
            }
            _ => return None,
        };
        let (namespace, rest) = match rest {
            // A namespace's own subresources, not a resource in it.
            [ns, _, sub] if ns == "namespaces" && (sub == "status" || sub == "finalize") => {
                (None, rest)
            }
            [ns, namespace, rest @ ..] if ns == "namespaces" && !rest.is_empty() => {
                (Some(namespace.clone()), rest)
            }
            _ => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [resource] => (resource, None, None),
            [resource, name] => (resource, Some(name.clone()), None),
            [resource, name, sub] => (resource, Some(name.clone()), Some(sub.clone())),
            _ => return None,
        };
        Some(Self {
            group,
            version,
            resource: resource.clone(),
            namespace,
            name,
            subresource,
        })
    }

    /// `v1` or `<group>/<version>`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The first value of `key` in a query string (`+` and `%XX` decoded).
pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " "))?;
        (k == key).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A boolean query parameter as Go's `strconv.ParseBool` reads it (`true`, `1`, `t`, ...).
pub(crate) fn query_flag(query: &str, key: &str) -> Option<bool> {
    match query_param(query, key)?.as_str() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
