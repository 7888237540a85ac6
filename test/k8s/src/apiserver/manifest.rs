//! Multi-document YAML manifests (what users `kubectl apply`) stored as test objects.

use serde_json::Value;

use super::path::Target;
use super::resources::guess_plural;
use super::store::Store;

/// Why a manifest could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not (multi-document) YAML.
    #[error("unable to parse the manifest: {0}")]
    Parse(String),
    /// A document is not an object the server can store.
    #[error("document {index} of the manifest: {reason}")]
    Invalid {
        /// The document's position, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The objects of a manifest: each document, `kind: List` documents expanded, empty
/// documents skipped.
pub(crate) fn documents(yaml: &str) -> Result<Vec<Value>, ManifestError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| ManifestError::Parse(e.to_string()))?;
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        match document {
            Value::Null => {}
            Value::Object(_) if document["kind"] == "List" => {
                let Some(items) = document["items"].as_array() else {
                    return Err(invalid(index, "a List without items"));
                };
                objects.extend(items.iter().cloned());
            }
            Value::Object(_) => objects.push(document),
            _ => return Err(invalid(index, "not an object")),
        }
    }
    Ok(objects)
}

fn invalid(index: usize, reason: &str) -> ManifestError {
    ManifestError::Invalid {
        index,
        reason: reason.to_owned(),
    }
}

// === impl Store ===

impl Store {
    /// Where `object` (the `index`th of a manifest) is stored: its resource from `apiVersion`
    /// and `kind` (known, declared by a CRD, else the plural guessed), its namespace or
    /// `default` for namespaced resources.
    pub(crate) fn manifest_target(
        &self,
        index: usize,
        object: &Value,
    ) -> Result<Target, ManifestError> {
        let (Some(api_version), Some(kind)) =
            (object["apiVersion"].as_str(), object["kind"].as_str())
        else {
            return Err(invalid(index, "apiVersion and kind are required"));
        };
        let Some(name) = object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
        else {
            return Err(invalid(index, "metadata.name is required"));
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let given_namespace = object["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty());
        let (resource, namespaced) = match self.resources.by_kind(group, kind) {
            Some((resource, info)) => (resource, info.namespaced),
            None => (guess_plural(kind), given_namespace.is_some()),
        };
        Ok(Target {
            group: group.to_owned(),
            version: version.to_owned(),
            resource,
            namespace: namespaced.then(|| given_namespace.unwrap_or("default").to_owned()),
            name: Some(name.to_owned()),
            subresource: None,
        })
    }
}
