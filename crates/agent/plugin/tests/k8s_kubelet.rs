//! The `k8s` workload attestor against a test kubelet over real HTTP(S): authentication,
//! server verification, the read-only port, credential reload, faults and the shared request.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use spire_agent_plugin::Code;
use spire_test_k8s::{KubeletBehavior, TestCa, TestKubelet, TestKubeletAuth, TestKubeletConfig};
use support::*;

async fn kubelet(node_name: &str, auth: TestKubeletAuth) -> TestKubelet {
    let kubelet = TestKubelet::start(TestKubeletConfig::new(node_name, auth)).await;
    kubelet.set_pods(vec![pod(POD_UID, CONTAINER_ID)]);
    kubelet
}

/// Plugin data for the secure port of `kubelet`, one poll per attestation, plus `extra`.
fn secure(kubelet: &TestKubelet, extra: Value) -> Value {
    let mut data = json!({"kubelet_secure_port": kubelet.port(), "max_poll_attempts": 1});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    data
}

async fn failure(attestor: &spire_agent_plugin::workloadattestor::K8sAttestor) -> (Code, String) {
    let error = attest(attestor, PID).await.unwrap_err();
    (error.code(), error.to_string())
}

#[tokio::test]
async fn bearer_token_is_sent_and_reread_every_reload_interval() {
    let proc = fake_proc();
    let dir = tempfile::tempdir().unwrap();
    let token = file(dir.path(), "token", "s3cret\n");
    let kubelet = kubelet("localhost", TestKubeletAuth::Bearer("s3cret".into())).await;
    let attestor = attestor(
        secure(
            &kubelet,
            json!({"skip_kubelet_verification": true, "token_path": token}),
        ),
        options(proc.path()),
    );

    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
    let sent = kubelet.requests();
    assert_eq!(sent[0].path, "/pods");
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some("Bearer s3cret"),
        "whitespace trimmed"
    );

    // A new token on disk is not used before the reload interval (1 m) has passed...
    file(dir.path(), "token", "rotated");
    jump(Duration::from_secs(1)).await;
    attest(&attestor, PID).await.unwrap();
    assert_eq!(kubelet.request_count(), 2);
    assert_eq!(
        kubelet.requests()[1].authorization.as_deref(),
        Some("Bearer s3cret")
    );

    // ...and is used after it.
    jump(Duration::from_secs(60)).await;
    assert_eq!(
        failure(&attestor).await,
        (
            Code::Unavailable,
            "unexpected status code on pods response: 401 Unauthorized".to_owned()
        )
    );
    assert_eq!(
        kubelet.requests()[2].authorization.as_deref(),
        Some("Bearer rotated")
    );
}

#[tokio::test]
async fn client_certificate_authentication() {
    let proc = fake_proc();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = kubelet("localhost", TestKubeletAuth::ClientCert).await;
    let issued = kubelet.client_ca().issue_client_cert("spire-agent", &[]);
    let cert = file(dir.path(), "cert.pem", &issued.cert_pem);
    let key = file(dir.path(), "key.pem", &issued.key_pem);
    let attestor = attestor(
        secure(
            &kubelet,
            json!({"skip_kubelet_verification": true, "certificate_path": cert, "private_key_path": key}),
        ),
        options(proc.path()),
    );
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
    let sent = &kubelet.requests()[0];
    assert_eq!(sent.client_cert.as_deref(), Some("spire-agent"));
    assert_eq!(sent.authorization, None);

    // Without the certificate the kubelet says no.
    let token = file(dir.path(), "token", "t");
    let without = support::attestor(
        secure(
            &kubelet,
            json!({"skip_kubelet_verification": true, "token_path": token}),
        ),
        options(proc.path()),
    );
    let (code, message) = failure(&without).await;
    assert_eq!(code, Code::Unavailable);
    assert_eq!(
        message,
        "unexpected status code on pods response: 401 Unauthorized"
    );
}

#[tokio::test]
async fn anonymous_authentication_sends_no_credentials() {
    let proc = fake_proc();
    let data = |kubelet: &TestKubelet| {
        secure(
            kubelet,
            json!({"skip_kubelet_verification": true, "use_anonymous_authentication": true}),
        )
    };
    let open = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    let attestor = attestor(data(&open), options(proc.path()));
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
    let sent = &open.requests()[0];
    assert_eq!(
        (sent.authorization.as_deref(), sent.client_cert.as_deref()),
        (None, None)
    );

    let closed = kubelet("localhost", TestKubeletAuth::Bearer("t".into())).await;
    let attestor = support::attestor(data(&closed), options(proc.path()));
    assert_eq!(
        failure(&attestor).await.1,
        "unexpected status code on pods response: 401 Unauthorized"
    );
}

#[tokio::test]
async fn the_read_only_port_needs_no_credentials() {
    let proc = fake_proc();
    let kubelet = TestKubelet::start(TestKubeletConfig::read_only("node-1")).await;
    kubelet.set_pods(vec![pod(POD_UID, CONTAINER_ID)]);
    assert!(kubelet.url().starts_with("http://"));
    let attestor = attestor(
        json!({"kubelet_read_only_port": kubelet.port(), "token_path": "/nonexistent"}),
        options(proc.path()),
    );
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
    assert_eq!(kubelet.requests()[0].authorization, None);
}

#[tokio::test]
async fn the_kubelet_certificate_is_verified_against_the_ca() {
    let proc = fake_proc();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    let ca = file(dir.path(), "ca.pem", kubelet.ca_pem());
    let other_ca = file(
        dir.path(),
        "other.pem",
        TestCa::new("another CA").cert_pem(),
    );
    let data = |ca: &str| {
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "kubelet_ca_path": ca}),
        )
    };
    let with_node = |name: &'static str| {
        let mut options = options(proc.path());
        options.env = Arc::new(move |var| (var == "MY_NODE_NAME").then(|| name.to_owned()));
        options
    };

    // No node name: 127.0.0.1, the chain is verified.
    let attestor = attestor(data(&ca), options(proc.path()));
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
    // A node name the certificate names.
    let attestor = support::attestor(data(&ca), with_node("localhost"));
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );

    // A chain to another CA fails, whatever the name.
    let attestor = support::attestor(data(&other_ca), options(proc.path()));
    let (code, message) = failure(&attestor).await;
    assert_eq!(code, Code::Unavailable);
    assert!(!message.is_empty());
    // A name the certificate does not hold fails once the node name is known.
    let elsewhere = self::kubelet("node-1", TestKubeletAuth::Anonymous).await;
    let ca_1 = file(dir.path(), "ca-1.pem", elsewhere.ca_pem());
    let data_1 = secure(
        &elsewhere,
        json!({"use_anonymous_authentication": true, "kubelet_ca_path": ca_1}),
    );
    let attestor = support::attestor(data_1.clone(), options(proc.path()));
    attest(&attestor, PID)
        .await
        .expect("chain only without a node name");
    let attestor = support::attestor(data_1, with_node("localhost"));
    assert_eq!(failure(&attestor).await.0, Code::Unavailable);
    assert_eq!(
        elsewhere.request_count(),
        1,
        "the mismatched handshake sent no request"
    );

    // skip_kubelet_verification trusts anything.
    let attestor = support::attestor(
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true, "kubelet_ca_path": other_ca}),
        ),
        options(proc.path()),
    );
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
}

async fn faulty(
    behavior: KubeletBehavior,
    tune: impl FnOnce(&mut spire_agent_plugin::workloadattestor::k8s::K8sOptions),
) -> (Code, String) {
    let proc = fake_proc();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    kubelet.set_behavior(behavior).await;
    let mut options = options(proc.path());
    tune(&mut options);
    let attestor = attestor(
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true}),
        ),
        options,
    );
    failure(&attestor).await
}

#[tokio::test]
async fn kubelet_faults_are_unavailable_with_the_cause() {
    let slow = faulty(KubeletBehavior::Slow(Duration::from_secs(3600)), |o| {
        o.kubelet_timeout = Duration::from_millis(200);
    })
    .await;
    assert_eq!(
        slow,
        (
            Code::Unavailable,
            "request timed out after 200ms".to_owned()
        )
    );

    let (code, message) = faulty(KubeletBehavior::Down, |_| {}).await;
    assert_eq!(code, Code::Unavailable);
    assert!(!message.is_empty());

    let (code, message) = faulty(KubeletBehavior::Garbage, |_| {}).await;
    assert_eq!(code, Code::Unavailable);
    assert!(
        message.starts_with("unable to parse kubelet response: "),
        "{message}"
    );

    for content_length in [true, false] {
        let oversized = faulty(
            KubeletBehavior::Oversized {
                bytes: 3 * 1024 * 1024,
                content_length,
            },
            |o| o.max_body_bytes = 1024 * 1024,
        )
        .await;
        assert_eq!(
            oversized,
            (
                Code::Unavailable,
                "response body exceeds 1048576 bytes".to_owned()
            ),
            "content length declared: {content_length}"
        );
    }

    assert_eq!(
        faulty(KubeletBehavior::Status(403), |_| {}).await,
        (
            Code::Unavailable,
            "unexpected status code on pods response: 403 Forbidden (user=system:serviceaccount:spire:spire-agent, verb=get, resource=nodes, subresource=proxy)".to_owned()
        )
    );
    assert_eq!(
        faulty(KubeletBehavior::Status(500), |_| {}).await,
        (
            Code::Unavailable,
            "unexpected status code on pods response: 500 Internal Server Error".to_owned()
        )
    );
}

#[tokio::test]
async fn attestation_recovers_when_the_kubelet_comes_back() {
    let proc = fake_proc();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    kubelet.set_behavior(KubeletBehavior::Down).await;
    let attestor = attestor(
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true}),
        ),
        options(proc.path()),
    );
    assert_eq!(failure(&attestor).await.0, Code::Unavailable);
    kubelet.set_behavior(KubeletBehavior::Normal).await;
    jump(Duration::from_secs(1)).await;
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
}

/// 110 pods (the kubelet's default maximum) carrying ~30 KB of annotations each, as pods
/// with last-applied-configuration and sidecar annotations do; the workload's is one of them.
fn full_node_pods() -> Vec<Value> {
    let filler = "x".repeat(30 * 1024);
    let mut pods: Vec<Value> = (0..110)
        .map(|i| {
            let mut pod = pod(
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("{i:064x}"),
            );
            pod["metadata"]["annotations"] =
                json!({"kubectl.kubernetes.io/last-applied-configuration": filler});
            pod
        })
        .collect();
    pods[73] = pod(POD_UID, CONTAINER_ID);
    let size = serde_json::to_vec(&pods).unwrap().len();
    assert!((2_000_000..5_000_000).contains(&size), "{size} bytes");
    pods
}

#[tokio::test]
async fn a_full_node_pod_list_passes_the_default_body_cap() {
    let proc = fake_proc();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    kubelet.set_pods(full_node_pods());

    let attestor = attestor(
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true}),
        ),
        options(proc.path()),
    );
    assert_eq!(
        attest(&attestor, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
}

#[tokio::test]
async fn max_pod_list_bytes_in_plugin_data_sets_the_body_cap() {
    let proc = fake_proc();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    kubelet.set_pods(full_node_pods());
    let plugin_data = |extra: Value| {
        let mut data = secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true}),
        );
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        data
    };
    // A host whose default cap is too small for this node...
    let small_host = || spire_agent_plugin::workloadattestor::k8s::K8sOptions {
        max_body_bytes: 1024 * 1024,
        ..options(proc.path())
    };
    let capped = attestor(plugin_data(json!({})), small_host());
    assert_eq!(
        failure(&capped).await,
        (
            Code::Unavailable,
            "response body exceeds 1048576 bytes".to_owned()
        )
    );
    // ...is fixed by raising the cap in plugin_data.
    let raised = attestor(
        plugin_data(json!({"max_pod_list_bytes": 8 * 1024 * 1024})),
        small_host(),
    );
    assert_eq!(
        attest(&raised, PID).await.unwrap(),
        expected_selectors(POD_UID)
    );
    // And plugin_data lowers the 64 MiB default just as well.
    let lowered = attestor(
        plugin_data(json!({"max_pod_list_bytes": "1048576"})),
        options(proc.path()),
    );
    assert_eq!(
        failure(&lowered).await,
        (
            Code::Unavailable,
            "response body exceeds 1048576 bytes".to_owned()
        )
    );
}

#[tokio::test]
async fn concurrent_attestations_make_one_kubelet_request() {
    let proc = fake_proc();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    // The request stays in flight for a while; every caller must join it.
    kubelet
        .set_behavior(KubeletBehavior::Slow(Duration::from_millis(200)))
        .await;
    let attestor = attestor(
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true, "poll_retry_interval": "1h"}),
        ),
        options(proc.path()),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let attestor = attestor.clone();
            tokio::spawn(async move { attest(&attestor, PID).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), expected_selectors(POD_UID));
    }
    assert_eq!(kubelet.request_count(), 1);
}

#[tokio::test]
async fn a_container_that_shows_up_later_is_found_by_polling() {
    let proc = fake_proc();
    let kubelet = kubelet("localhost", TestKubeletAuth::Anonymous).await;
    kubelet.set_pods(Vec::new());
    let attestor = attestor(
        secure(
            &kubelet,
            json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true,
                   "poll_retry_interval": "20ms", "max_poll_attempts": 1000}),
        ),
        options(proc.path()),
    );
    let task = tokio::spawn({
        let attestor = attestor.clone();
        async move { attest(&attestor, PID).await }
    });
    kubelet.wait_for_requests(2).await;
    kubelet.set_pods(vec![pod(POD_UID, CONTAINER_ID)]);
    assert_eq!(task.await.unwrap().unwrap(), expected_selectors(POD_UID));
    assert!(kubelet.request_count() >= 3);
}
