//! The kubelet's pod list: parsed once per fetch, then matched against a container.
//!
//! The body must be a JSON object whose `items` is an array or `null`; pods are keyed by
//! `metadata.uid` (pods without one are skipped, a later duplicate replaces an earlier one)
//! and decoded as `v1.Pod` (the fields SPIRE reads). A pod that does not decode fails only the
//! attestations that look at it, as in SPIRE, with `Unavailable`.
//!
//! A container matches a status of `status.containerStatuses`, then of
//! `status.initContainerStatuses`, whose `containerID` URL has the container ID as its host
//! (`containerd://…`, `cri-o://…`, `docker://…`: any scheme); statuses without an ID are
//! skipped and `ephemeralContainerStatuses` are never searched.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;
use spire_id::Selector;
use spire_k8s::types::{ContainerStatus, Pod};

use crate::{Code, Error, Result};

/// The selector type of the `k8s` attestor.
pub const SELECTOR_TYPE: &str = "k8s";

/// One parsed `/pods` response.
#[derive(Debug, Default)]
pub struct PodList {
    /// Each pod once, by `metadata.uid` (the last of duplicates).
    pods: HashMap<String, Entry>,
    /// Container ID (the `containerID` URL host) → UIDs of the pods reporting it.
    containers: HashMap<String, Vec<String>>,
    /// The first pod that did not decode: searching every pod fails on it.
    undecodable: Option<String>,
}

/// The pod a container was found in: its selectors and its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// `metadata.namespace` of the pod (for `ns-label` selectors).
    pub namespace: String,
    /// The pod's (and container's) `k8s` selectors, in SPIRE's order.
    pub selectors: Vec<Selector>,
}

#[derive(Debug)]
enum Entry {
    Pod(Box<Pod>),
    /// The decoder's message.
    Undecodable(String),
}

/// Why a `/pods` body is not a pod list; the message is SPIRE's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not JSON.
    #[error("unable to parse kubelet response: {0}")]
    Json(String),
    /// JSON, but not an object with an `items` array (or `null`).
    #[error("invalid kubelet response: {0}")]
    Shape(&'static str),
}

#[derive(Deserialize)]
struct Top<'a> {
    /// `None` when absent; a present `null` is kept (as raw `null`).
    #[serde(default, borrow, deserialize_with = "present")]
    items: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct UidOnly {
    metadata: Option<UidMeta>,
}

#[derive(Deserialize)]
struct UidMeta {
    uid: Option<String>,
}

// === impl PodList ===

impl PodList {
    /// Parses a `/pods` body.
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
        if first != Some(b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => ParseError::Shape("expected an object"),
                    Err(e) => ParseError::Json(e.to_string()),
                },
            );
        }
        let top: Top<'_> =
            serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
        let items = top
            .items
            .ok_or(ParseError::Shape("expected an items array"))?;
        let items: Vec<&RawValue> = match items.get().as_bytes().first() {
            Some(b'[') => {
                serde_json::from_str(items.get()).map_err(|e| ParseError::Json(e.to_string()))?
            }
            // A Go client marshals a nil item slice as null.
            Some(b'n') => Vec::new(),
            _ => return Err(ParseError::Shape("expected an items array")),
        };

        let mut pods = HashMap::with_capacity(items.len());
        for item in items {
            let (uid, entry) = match serde_json::from_str::<Pod>(item.get()) {
                Ok(pod) => (pod.metadata.uid.clone(), Entry::Pod(Box::new(pod))),
                Err(e) => (
                    serde_json::from_str::<UidOnly>(item.get())
                        .ok()
                        .and_then(|p| p.metadata?.uid)
                        .unwrap_or_default(),
                    Entry::Undecodable(e.to_string()),
                ),
            };
            if uid.is_empty() {
                tracing::warn!("Pod has no UID");
                continue;
            }
            pods.insert(uid, entry);
        }

        let mut containers: HashMap<String, Vec<String>> = HashMap::new();
        let mut undecodable = None;
        for (uid, entry) in &pods {
            match entry {
                Entry::Pod(pod) => {
                    let ids: BTreeSet<&str> = statuses(pod)
                        .filter_map(|s| container_url_host(&s.container_id))
                        .collect();
                    for id in ids {
                        containers
                            .entry(id.to_owned())
                            .or_default()
                            .push(uid.clone());
                    }
                }
                Entry::Undecodable(message) => {
                    undecodable.get_or_insert_with(|| message.clone());
                }
            }
        }
        Ok(Self {
            pods,
            containers,
            undecodable,
        })
    }

    /// How many pods the list holds.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the list holds no pod.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The selector values (`sa:…`, `ns:…`, … without the `k8s:` type) for the container
    /// `container_id` of pod `pod_uid` (empty: search every pod). `Ok(None)`: not in this list
    /// (yet); the caller polls again.
    pub fn selector_values(
        &self,
        pod_uid: &str,
        container_id: &str,
        disable_container_selectors: bool,
    ) -> Result<Option<Vec<String>>> {
        Ok(self
            .find(pod_uid, container_id, disable_container_selectors)?
            .map(|(_, values)| values))
    }

    /// The pod and selector values of [`PodList::selector_values`].
    fn find(
        &self,
        pod_uid: &str,
        container_id: &str,
        disable_container_selectors: bool,
    ) -> Result<Option<(&Pod, Vec<String>)>> {
        if !pod_uid.is_empty() {
            // The pod is known: unrelated pods are not looked at.
            let Some(entry) = self.pods.get(pod_uid) else {
                return Ok(None);
            };
            let pod = decoded(entry)?;
            return Ok(match find_container(pod, container_id) {
                Some(status) => Some((pod, values(pod, Some(status), disable_container_selectors))),
                None if disable_container_selectors => Some((pod, values(pod, None, true))),
                None => None,
            });
        }

        if let Some(message) = &self.undecodable {
            return Err(undecodable(message));
        }
        let Some(uids) = self.containers.get(container_id) else {
            return Ok(None);
        };
        if uids.len() > 1 {
            tracing::warn!(container_id, "Two pods found with same container Id");
            return Err(Error::status(
                Code::Internal,
                "two pods found with same container Id",
            ));
        }
        let pod = decoded(&self.pods[&uids[0]])?;
        let status = find_container(pod, container_id);
        Ok(status.map(|s| (pod, values(pod, Some(s), disable_container_selectors))))
    }

    /// [`PodList::selector_values`] as `k8s` selectors.
    pub fn selectors(
        &self,
        pod_uid: &str,
        container_id: &str,
        disable_container_selectors: bool,
    ) -> Result<Option<Vec<Selector>>> {
        Ok(self
            .matched(pod_uid, container_id, disable_container_selectors)?
            .map(|m| m.selectors))
    }

    /// [`PodList::selectors`] with the namespace of the pod they describe.
    pub fn matched(
        &self,
        pod_uid: &str,
        container_id: &str,
        disable_container_selectors: bool,
    ) -> Result<Option<Matched>> {
        let Some((pod, values)) = self.find(pod_uid, container_id, disable_container_selectors)?
        else {
            return Ok(None);
        };
        Ok(Some(Matched {
            namespace: pod.metadata.namespace.clone(),
            selectors: values
                .iter()
                .map(|value| selector(value))
                .collect::<Result<_>>()?,
        }))
    }
}

/// The host of a `containerID` URL as Go's `url.Parse` reads it (`scheme://host/...`, user
/// info dropped, port kept); `None` when the URL has no authority or does not parse.
pub fn container_url_host(container_id: &str) -> Option<&str> {
    let url = container_id.split('#').next().unwrap_or_default();
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let end = url
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .unwrap_or(url.len());
    let (has_scheme, rest) = match url[end..].starts_with(':') {
        // `:` first: "missing protocol scheme".
        true if end == 0 => return None,
        true if url.as_bytes()[0].is_ascii_alphabetic() => (true, &url[end + 1..]),
        // No scheme: the whole text is the reference.
        _ => (false, url),
    };
    let rest = rest.split('?').next().unwrap_or_default();
    if !has_scheme && rest.starts_with("///") {
        return None;
    }
    let authority = rest.strip_prefix("//")?;
    let authority = authority.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.starts_with('[') {
        // IPv6 literals never equal a container ID.
        return None;
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !port.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Go refuses escaped ASCII in a host, and escaped non-ASCII is never a hex digit: a host
    // with escapes never equals a container ID.
    (!host.contains('%')).then_some(host)
}

// === helpers ===

/// A `k8s` selector with `value`.
pub(crate) fn selector(value: &str) -> Result<Selector> {
    Selector::new(SELECTOR_TYPE, value).map_err(|e| Error::status(Code::Internal, e.to_string()))
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

fn decoded(entry: &Entry) -> Result<&Pod> {
    match entry {
        Entry::Pod(pod) => Ok(pod),
        Entry::Undecodable(message) => Err(undecodable(message)),
    }
}

fn undecodable(message: &str) -> Error {
    Error::status(
        Code::Unavailable,
        format!("unable to decode pod info from kubelet response: {message}"),
    )
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status
        .container_statuses
        .iter()
        .chain(&pod.status.init_container_statuses)
}

fn find_container<'a>(pod: &'a Pod, container_id: &str) -> Option<&'a ContainerStatus> {
    statuses(pod).find(|s| {
        !s.container_id.is_empty() && container_url_host(&s.container_id) == Some(container_id)
    })
}

/// SPIRE's selector values in SPIRE's order. Sets SPIRE builds from Go maps (images, labels)
/// come sorted here.
fn values(pod: &Pod, container: Option<&ContainerStatus>, disable_container: bool) -> Vec<String> {
    let meta = &pod.metadata;
    let status = &pod.status;
    let images = |list: &[ContainerStatus]| -> BTreeSet<String> {
        list.iter()
            .flat_map(|s| [s.image.clone(), s.image_id.clone()])
            .collect()
    };
    let mut values = vec![
        format!("sa:{}", pod.spec.service_account_name),
        format!("ns:{}", meta.namespace),
        format!("node-name:{}", pod.spec.node_name),
        format!("pod-uid:{}", meta.uid),
        format!("pod-name:{}", meta.name),
        format!("pod-image-count:{}", status.container_statuses.len()),
        format!(
            "pod-init-image-count:{}",
            status.init_container_statuses.len()
        ),
    ];
    values.extend(
        images(&status.container_statuses)
            .into_iter()
            .map(|i| format!("pod-image:{i}")),
    );
    values.extend(
        images(&status.init_container_statuses)
            .into_iter()
            .map(|i| format!("pod-init-image:{i}")),
    );
    values.extend(
        meta.labels
            .iter()
            .map(|(k, v)| format!("pod-label:{k}:{v}")),
    );
    for owner in &meta.owner_references {
        values.push(format!("pod-owner:{}:{}", owner.kind, owner.name));
        values.push(format!("pod-owner-uid:{}:{}", owner.kind, owner.uid));
    }
    if let Some(container) = container.filter(|_| !disable_container) {
        values.push(format!("container-name:{}", container.name));
        values.extend(
            images(std::slice::from_ref(container))
                .into_iter()
                .map(|i| format!("container-image:{i}")),
        );
    }
    values
}

#[cfg(test)]
mod tests;
