use serde_json::{Value, json};

use super::*;

const UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const OTHER_UID: &str = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
const SLEEP: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
const PROXY: &str = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
const INIT: &str = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";
const DEBUG: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn status(name: &str, id: &str, image: &str, image_id: &str) -> Value {
    json!({
        "name": name,
        "containerID": id,
        "image": image,
        "imageID": image_id,
        "ready": true,
        "restartCount": 0,
        "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}
    })
}

/// The sleep pod of the Istio sample: two containers (the proxy still pulling, so its
/// `imageID` is empty), an init container, labels, a ReplicaSet owner, an ephemeral debug
/// container.
fn sleep_pod(uid: &str) -> Value {
    json!({
        "metadata": {
            "name": "sleep-5f4d47c948-njvpk",
            "namespace": "default",
            "uid": uid,
            "labels": {"app": "sleep", "spiffe.io/spire-managed-identity": "true"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "sleep-5f4d47c948",
                "uid": "6f1f1c2a-0000-4000-8000-000000000001", "controller": true
            }]
        },
        "spec": {
            "serviceAccountName": "sleep",
            "nodeName": "node-1",
            "containers": [{"name": "sleep", "image": "curlimages/curl"}]
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.5",
            "initContainerStatuses": [status(
                "istio-init",
                &format!("containerd://{INIT}"),
                "docker.io/istio/proxyv2:1.20.0",
                "docker.io/istio/proxyv2@sha256:aaaa"
            )],
            "containerStatuses": [
                status(
                    "sleep",
                    &format!("containerd://{SLEEP}"),
                    "docker.io/curlimages/curl:latest",
                    "docker.io/curlimages/curl@sha256:bbbb"
                ),
                status(
                    "istio-proxy",
                    &format!("containerd://{PROXY}"),
                    "docker.io/istio/proxyv2:1.20.0",
                    ""
                )
            ],
            "ephemeralContainerStatuses": [status(
                "debugger",
                &format!("containerd://{DEBUG}"),
                "busybox",
                "busybox@sha256:cccc"
            )]
        }
    })
}

fn list(items: Vec<Value>) -> PodList {
    let body = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    PodList::parse(body.to_string().as_bytes()).unwrap()
}

fn pod_values() -> Vec<&'static str> {
    vec![
        "sa:sleep",
        "ns:default",
        "node-name:node-1",
        "pod-uid:2c48913c-b29f-11e7-9350-020968147796",
        "pod-name:sleep-5f4d47c948-njvpk",
        "pod-image-count:2",
        "pod-init-image-count:1",
        // The proxy's empty imageID is a selector too (SPIRE adds both fields as they are).
        "pod-image:",
        "pod-image:docker.io/curlimages/curl:latest",
        "pod-image:docker.io/curlimages/curl@sha256:bbbb",
        "pod-image:docker.io/istio/proxyv2:1.20.0",
        "pod-init-image:docker.io/istio/proxyv2:1.20.0",
        "pod-init-image:docker.io/istio/proxyv2@sha256:aaaa",
        "pod-label:app:sleep",
        "pod-label:spiffe.io/spire-managed-identity:true",
        "pod-owner:ReplicaSet:sleep-5f4d47c948",
        "pod-owner-uid:ReplicaSet:6f1f1c2a-0000-4000-8000-000000000001",
    ]
}

fn with(base: Vec<&'static str>, extra: &[&'static str]) -> Vec<String> {
    base.into_iter()
        .chain(extra.iter().copied())
        .map(String::from)
        .collect()
}

#[test]
fn every_selector_in_order_for_a_container() {
    let pods = list(vec![sleep_pod(UID)]);
    let want = with(
        pod_values(),
        &[
            "container-name:sleep",
            "container-image:docker.io/curlimages/curl:latest",
            "container-image:docker.io/curlimages/curl@sha256:bbbb",
        ],
    );
    assert_eq!(
        pods.selector_values(UID, SLEEP, false).unwrap(),
        Some(want.clone())
    );
    assert_eq!(
        pods.selector_values("", SLEEP, false).unwrap(),
        Some(want),
        "found by container ID alone"
    );
    let proxy = pods.selector_values(UID, PROXY, false).unwrap().unwrap();
    assert_eq!(
        proxy[proxy.len() - 3..],
        [
            "container-name:istio-proxy",
            "container-image:",
            "container-image:docker.io/istio/proxyv2:1.20.0"
        ]
    );

    let selectors = pods.selectors(UID, SLEEP, false).unwrap().unwrap();
    assert!(selectors.iter().all(|s| s.selector_type() == "k8s"));
    assert_eq!(selectors[0].to_string(), "k8s:sa:sleep");
}

#[test]
fn init_containers_are_searched_ephemeral_ones_are_not() {
    let pods = list(vec![sleep_pod(UID)]);
    let init = pods.selector_values(UID, INIT, false).unwrap().unwrap();
    assert_eq!(
        init[init.len() - 3..],
        [
            "container-name:istio-init",
            "container-image:docker.io/istio/proxyv2:1.20.0",
            "container-image:docker.io/istio/proxyv2@sha256:aaaa"
        ]
    );
    assert_eq!(pods.selector_values(UID, DEBUG, false).unwrap(), None);
    assert_eq!(pods.selector_values("", DEBUG, false).unwrap(), None);
}

#[test]
fn container_ids_match_on_the_url_host_for_any_runtime() {
    for scheme in ["containerd", "cri-o", "docker", "anything+else.v2"] {
        let mut pod = sleep_pod(UID);
        pod["status"]["containerStatuses"][0]["containerID"] = json!(format!("{scheme}://{SLEEP}"));
        let pods = list(vec![pod]);
        assert!(
            pods.selector_values("", SLEEP, false).unwrap().is_some(),
            "{scheme}"
        );
    }
    for unmatched in [
        SLEEP.to_owned(),                           // no scheme: a path, no host
        format!("containerd:{SLEEP}"),              // opaque
        format!("containerd:///{SLEEP}"),           // empty host
        format!("containerd://{SLEEP}x"),           // a different host
        format!("containerd://%39{}", &SLEEP[1..]), // escaped ASCII: Go refuses the URL
    ] {
        let mut pod = sleep_pod(UID);
        pod["status"]["containerStatuses"][0]["containerID"] = json!(unmatched);
        let pods = list(vec![pod]);
        assert_eq!(
            pods.selector_values(UID, SLEEP, false).unwrap(),
            None,
            "{unmatched}"
        );
    }
}

#[test]
fn url_hosts_follow_go_url_parse() {
    let host = container_url_host;
    assert_eq!(host("containerd://abc"), Some("abc"));
    assert_eq!(host("containerd://abc/path?q#f"), Some("abc"));
    assert_eq!(host("docker://user:pw@abc"), Some("abc"));
    assert_eq!(host("docker://abc:1234"), Some("abc:1234"));
    assert_eq!(host("docker://abc:x"), None, "invalid port");
    assert_eq!(
        host("//abc"),
        Some("abc"),
        "no scheme, network-path reference"
    );
    assert_eq!(host("///abc"), None);
    assert_eq!(host("://abc"), None, "missing protocol scheme");
    assert_eq!(host("1docker://abc"), None, "schemes start with a letter");
    assert_eq!(host("docker:abc"), None, "opaque");
    assert_eq!(host("docker://a\tb"), None, "control characters");
    assert_eq!(host(""), None);
}

#[test]
fn statuses_without_a_container_id_are_skipped() {
    let mut pod = sleep_pod(UID);
    pod["status"]["containerStatuses"][0]["containerID"] = json!("");
    let pods = list(vec![pod]);
    assert_eq!(pods.selector_values(UID, SLEEP, false).unwrap(), None);
}

#[test]
fn one_container_in_two_pods_is_an_error_unless_the_pod_is_known() {
    let pods = list(vec![sleep_pod(UID), sleep_pod(OTHER_UID)]);
    let error = pods.selector_values("", SLEEP, false).unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(error.to_string(), "two pods found with same container Id");
    let known = pods
        .selector_values(OTHER_UID, SLEEP, false)
        .unwrap()
        .unwrap();
    assert!(known.contains(&format!("pod-uid:{OTHER_UID}")));
}

#[test]
fn known_pod_without_the_container_attests_only_with_container_selectors_disabled() {
    let pods = list(vec![sleep_pod(UID)]);
    let missing = "2222222222222222222222222222222222222222222222222222222222222222";
    assert_eq!(pods.selector_values(UID, missing, false).unwrap(), None);
    assert_eq!(
        pods.selector_values(UID, missing, true).unwrap(),
        Some(with(pod_values(), &[]))
    );
    // Without a pod UID there is no pod to fall back to.
    assert_eq!(pods.selector_values("", missing, true).unwrap(), None);
    // A found container with container selectors disabled: pod selectors only.
    assert_eq!(
        pods.selector_values(UID, SLEEP, true).unwrap(),
        Some(with(pod_values(), &[]))
    );
    // An unknown pod UID is "not yet".
    assert_eq!(pods.selector_values(OTHER_UID, SLEEP, true).unwrap(), None);
}

#[test]
fn pod_lists_are_keyed_by_uid() {
    let mut no_uid = sleep_pod("");
    no_uid["metadata"].as_object_mut().unwrap().remove("uid");
    let mut renamed = sleep_pod(UID);
    renamed["metadata"]["name"] = json!("second");
    let pods = list(vec![no_uid, sleep_pod(UID), renamed, json!(7), json!({})]);
    assert_eq!(pods.len(), 1, "pods without a UID are skipped");
    let values = pods.selector_values(UID, SLEEP, false).unwrap().unwrap();
    assert!(
        values.contains(&"pod-name:second".to_owned()),
        "the last duplicate wins"
    );
}

#[test]
fn pods_that_do_not_decode_fail_only_lookups_that_touch_them() {
    let mut bad = sleep_pod(OTHER_UID);
    bad["status"]["containerStatuses"] = json!("not a list");
    let pods = list(vec![sleep_pod(UID), bad]);

    assert!(pods.selector_values(UID, SLEEP, false).unwrap().is_some());
    for pod_uid in [OTHER_UID, ""] {
        let error = pods.selector_values(pod_uid, SLEEP, false).unwrap_err();
        assert_eq!(error.code(), Code::Unavailable);
        assert!(
            error
                .to_string()
                .starts_with("unable to decode pod info from kubelet response: "),
            "{error}"
        );
    }
}

#[test]
fn bodies_must_be_an_object_with_items() {
    assert!(PodList::parse(br#"{"items": null}"#).unwrap().is_empty());
    assert!(
        PodList::parse(br#" {"kind":"List","items":[]} "#)
            .unwrap()
            .is_empty()
    );
    let error = |body: &[u8]| PodList::parse(body).unwrap_err().to_string();
    assert_eq!(
        error(br#"{"kind": "PodList"}"#),
        "invalid kubelet response: expected an items array"
    );
    assert_eq!(
        error(br#"{"items": {}}"#),
        "invalid kubelet response: expected an items array"
    );
    assert_eq!(error(b"[]"), "invalid kubelet response: expected an object");
    assert_eq!(
        error(b"null"),
        "invalid kubelet response: expected an object"
    );
    assert!(error(b"<html>").starts_with("unable to parse kubelet response: "));
    assert!(error(br#"{"items": [}"#).starts_with("unable to parse kubelet response: "));
    assert!(error(b"").starts_with("unable to parse kubelet response: "));
}
