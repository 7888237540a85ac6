//! Object builders shared by the manager's unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointSubset, Endpoints, Namespace, Node, ObjectReference, Pod, PodSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use spire_id::TrustDomain;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use super::RenderContext;
use crate::crd::{
    ClusterSpiffeId, ClusterSpiffeIdSpec, ClusterStaticEntry, ClusterStaticEntrySpec,
};

pub(crate) const TD: &str = "example.org";
pub(crate) const CLUSTER: &str = "demo-cluster";

pub(crate) fn td() -> TrustDomain {
    TrustDomain::new(TD).expect("a valid trust domain")
}

pub(crate) fn ctx() -> RenderContext {
    RenderContext::new(td(), CLUSTER, "cluster.local", None).expect("no parent template")
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    })
}

pub(crate) fn time(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("an in-range timestamp"))
}

pub(crate) fn namespace(name: &str, label_pairs: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: labels(label_pairs),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// A pod `ns/name` with UID `<name>-uid`, service account `<name>-sa`, on `node` ("" =
/// unscheduled).
pub(crate) fn pod(ns: &str, name: &str, node: &str, label_pairs: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            uid: Some(format!("{name}-uid")),
            labels: labels(label_pairs),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.to_owned()),
            service_account_name: Some(format!("{name}-sa")),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// A node `name` with UID `<name>-uid`.
pub(crate) fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(format!("{name}-uid")),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// A ClusterSPIFFEID `name` (UID `<name>-uid`) created at `created` seconds.
pub(crate) fn cluster_spiffe_id(name: &str, template: &str, created: i64) -> ClusterSpiffeId {
    ClusterSpiffeId {
        metadata: meta(name, created),
        spec: ClusterSpiffeIdSpec {
            spiffe_id_template: template.to_owned(),
            ..ClusterSpiffeIdSpec::default()
        },
        status: None,
    }
}

/// A ClusterStaticEntry `name` (UID `<name>-uid`) created at `created` seconds.
pub(crate) fn static_entry(
    name: &str,
    spiffe_id: &str,
    parent_id: &str,
    selectors: &[&str],
    created: i64,
) -> ClusterStaticEntry {
    ClusterStaticEntry {
        metadata: meta(name, created),
        spec: ClusterStaticEntrySpec {
            spiffe_id: spiffe_id.to_owned(),
            parent_id: parent_id.to_owned(),
            selectors: selectors.iter().map(|s| (*s).to_owned()).collect(),
            ..ClusterStaticEntrySpec::default()
        },
        status: None,
    }
}

pub(crate) fn meta(name: &str, created: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        uid: Some(format!("{name}-uid")),
        creation_timestamp: Some(time(created)),
        ..ObjectMeta::default()
    }
}

/// Endpoints `ns/name` whose (ready) addresses target the pods with `pod_uids`.
pub(crate) fn endpoints(ns: &str, name: &str, pod_uids: &[&str]) -> Endpoints {
    let addresses = pod_uids
        .iter()
        .map(|uid| EndpointAddress {
            ip: "10.0.0.1".into(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                uid: Some((*uid).to_owned()),
                ..ObjectReference::default()
            }),
            ..EndpointAddress::default()
        })
        .collect();
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        subsets: Some(vec![EndpointSubset {
            addresses: Some(addresses),
            ..EndpointSubset::default()
        }]),
    }
}

/// `spiffe://…` to the API form.
pub(crate) fn api_id(id: &str) -> Spiffeid {
    let parsed = spire_id::SpiffeId::parse(id).expect("a valid SPIFFE ID");
    super::id_to_proto(&parsed)
}

/// An entry with `type:value` selectors.
pub(crate) fn entry(spiffe_id: &str, parent_id: &str, selectors: &[&str]) -> Entry {
    Entry {
        spiffe_id: Some(api_id(spiffe_id)),
        parent_id: Some(api_id(parent_id)),
        selectors: selectors
            .iter()
            .map(|s| {
                let (t, v) = s.split_once(':').expect("type:value");
                Selector {
                    r#type: t.to_owned(),
                    value: v.to_owned(),
                }
            })
            .collect(),
        ..Entry::default()
    }
}
