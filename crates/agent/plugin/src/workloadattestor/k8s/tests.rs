use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::*;

const UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
const INTERVAL: Duration = Duration::from_millis(500);

/// PIDs of the fake /proc.
const IN_POD: i32 = 100;
const NOT_IN_POD: i32 = 200;
const NO_POD_UID: i32 = 300;

// === a fake kubelet and /proc ===

/// Answers from a script (the last answer repeats); counts requests; optionally holds
/// every request until the test lets one through.
#[derive(Debug, Default)]
struct FakeKubelet {
    script: Mutex<VecDeque<Result<String, String>>>,
    requests: AtomicUsize,
    started: Notify,
    gate: Option<Semaphore>,
}

impl FakeKubelet {
    fn answering(answers: impl IntoIterator<Item = Result<String, String>>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(answers.into_iter().collect()),
            ..Self::default()
        })
    }

    fn gated(answer: Result<String, String>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new([answer].into()),
            gate: Some(Semaphore::new(0)),
            ..Self::default()
        })
    }

    fn set(&self, answer: Result<String, String>) {
        *self.script.lock().unwrap() = [answer].into();
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl PodListSource for FakeKubelet {
    async fn fetch_pods(&self) -> Result<Bytes, FetchError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let mut script = self.script.lock().unwrap();
        let answer = if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap()
        };
        answer.map(Bytes::from).map_err(Into::into)
    }
}

fn pod_list(label: &str, container_id: Option<&str>) -> Result<String, String> {
    let statuses: Vec<_> = container_id
        .map(|id| {
            json!({"name": "app", "containerID": format!("containerd://{id}"),
                   "image": "app:1", "imageID": "app@sha256:1"})
        })
        .into_iter()
        .collect();
    Ok(
        json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [{
            "metadata": {"name": "app-0", "namespace": "ns1", "uid": UID, "labels": {"v": label}},
            "spec": {"serviceAccountName": "sa1", "nodeName": "node-1"},
            "status": {"containerStatuses": statuses}
        }]})
        .to_string(),
    )
}

fn with_container(label: &str) -> Result<String, String> {
    pod_list(label, Some(CID))
}

fn without_container() -> Result<String, String> {
    pod_list("x", None)
}

fn fake_proc() -> tempfile::TempDir {
    let proc = tempfile::tempdir().unwrap();
    let write = |pid: i32, text: String| {
        let dir = proc.path().join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup"), text).unwrap();
    };
    write(IN_POD, format!("0::/kubepods/burstable/pod{UID}/{CID}\n"));
    write(
        NOT_IN_POD,
        "0::/user.slice/user-1000.slice/session-2.scope\n".into(),
    );
    write(NO_POD_UID, format!("0::/../crio-{CID}.scope\n"));
    proc
}

fn test_config() -> K8sConfig {
    K8sConfig {
        max_poll_attempts: 5,
        poll_retry_interval: INTERVAL,
        ..K8sConfig::default()
    }
}

fn attestor(proc: &tempfile::TempDir, kubelet: &Arc<FakeKubelet>) -> K8sAttestor {
    K8sAttestor::with_source(test_config(), proc.path(), kubelet.clone())
}

fn values(selectors: &[Selector]) -> Vec<String> {
    selectors.iter().map(ToString::to_string).collect()
}

// === attestation and the shared poller ===

#[tokio::test(start_paused = true)]
async fn selectors_come_from_the_pod_list_and_non_pods_get_none() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let attestor = attestor(&proc, &kubelet);
    assert_eq!(attestor.name(), "k8s");

    let want = [
        "k8s:sa:sa1",
        "k8s:ns:ns1",
        "k8s:node-name:node-1",
        &format!("k8s:pod-uid:{UID}"),
        "k8s:pod-name:app-0",
        "k8s:pod-image-count:1",
        "k8s:pod-init-image-count:0",
        "k8s:pod-image:app:1",
        "k8s:pod-image:app@sha256:1",
        "k8s:pod-label:v:a",
        "k8s:container-name:app",
        "k8s:container-image:app:1",
        "k8s:container-image:app@sha256:1",
    ];
    assert_eq!(values(&attestor.attest(IN_POD).await.unwrap()), want);
    assert_eq!(
        values(&attestor.attest(NO_POD_UID).await.unwrap()),
        want,
        "found by container ID"
    );
    assert_eq!(
        kubelet.requests(),
        1,
        "the second attestation reused the list"
    );

    assert!(attestor.attest(NOT_IN_POD).await.unwrap().is_empty());
    assert!(
        attestor.attest(999).await.unwrap().is_empty(),
        "no such process"
    );
    assert_eq!(kubelet.requests(), 1, "non-pods never reach the kubelet");
}

#[tokio::test(start_paused = true)]
async fn concurrent_attestations_share_one_kubelet_request() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::gated(with_container("a"));
    let attestor = attestor(&proc, &kubelet);

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let attestor = attestor.clone();
            tokio::spawn(async move { attestor.attest(IN_POD).await })
        })
        .collect();
    // The first request is in flight and held; everyone else piles up behind it.
    kubelet.started.notified().await;
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    kubelet.gate.as_ref().unwrap().add_permits(1);

    let mut results = Vec::new();
    for task in tasks {
        results.push(values(&task.await.unwrap().unwrap()));
    }
    assert!(results.iter().all(|r| *r == results[0]));
    assert!(results[0].contains(&"k8s:pod-label:v:a".to_owned()));
    assert_eq!(kubelet.requests(), 1);
    assert_eq!(attestor.kubelet_requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pod_list_is_reused_only_within_the_retry_interval() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("old")]);
    let attestor = attestor(&proc, &kubelet);
    let label = |selectors: Vec<Selector>| {
        values(&selectors)
            .into_iter()
            .find(|v| v.starts_with("k8s:pod-label:"))
            .unwrap()
    };

    assert_eq!(
        label(attestor.attest(IN_POD).await.unwrap()),
        "k8s:pod-label:v:old"
    );
    kubelet.set(with_container("new"));
    tokio::time::advance(INTERVAL - Duration::from_millis(1)).await;
    assert_eq!(
        label(attestor.attest(IN_POD).await.unwrap()),
        "k8s:pod-label:v:old"
    );
    assert_eq!(kubelet.requests(), 1);

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        label(attestor.attest(IN_POD).await.unwrap()),
        "k8s:pod-label:v:new",
        "a label change is seen once the list is one interval old"
    );
    assert_eq!(kubelet.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn polls_one_interval_apart_until_the_container_appears() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([
        without_container(),
        without_container(),
        with_container("a"),
    ]);
    let attestor = attestor(&proc, &kubelet);
    let start = Instant::now();
    let selectors = attestor.attest(IN_POD).await.unwrap();
    assert!(values(&selectors).contains(&"k8s:container-name:app".to_owned()));
    assert_eq!(kubelet.requests(), 3);
    assert_eq!(
        start.elapsed(),
        2 * INTERVAL,
        "virtual time: two waits between three requests"
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_poll_attempts() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([without_container()]);
    let attestor = attestor(&proc, &kubelet);
    let start = Instant::now();
    let error = attestor.attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert_eq!(
        error.to_string(),
        "no selectors found after max poll attempts"
    );
    assert_eq!(kubelet.requests(), 5);
    assert_eq!(start.elapsed(), 4 * INTERVAL);
}

#[tokio::test(start_paused = true)]
async fn gives_up_with_the_last_kubelet_error() {
    let proc = fake_proc();
    let down = || Err("unexpected status code on pods response: 503 kubelet down".to_owned());
    let kubelet = FakeKubelet::answering([down()]);
    let error = attestor(&proc, &kubelet).attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(
        error.to_string(),
        "unexpected status code on pods response: 503 kubelet down"
    );
    assert_eq!(kubelet.requests(), 5);

    // A list that parses after errors resets the verdict to "not found".
    let kubelet = FakeKubelet::answering([down(), Ok("garbage".into()), without_container()]);
    let error = attestor(&proc, &kubelet).attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);

    // A body that is not a pod list counts as a failed request.
    let kubelet = FakeKubelet::answering([Ok("[]".into())]);
    let error = attestor(&proc, &kubelet).attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(
        error.to_string(),
        "invalid kubelet response: expected an object"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_in_the_found_pod_are_not_retried() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([Ok(json!({"items": [
        {"metadata": {"uid": UID}, "status": {"containerStatuses": 5}}
    ]})
    .to_string())]);
    let error = attestor(&proc, &kubelet).attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error.to_string().starts_with("unable to decode pod info"),
        "{error}"
    );
    assert_eq!(kubelet.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn nobody_attesting_means_no_requests() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let attestor = attestor(&proc, &kubelet);
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(kubelet.requests(), 0);

    attestor.attest(IN_POD).await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(
        kubelet.requests(),
        1,
        "no background polling after an attestation"
    );
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_wait_sends_no_request() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([without_container()]);
    let attestor = attestor(&proc, &kubelet);
    // The first list lacks the container; the next request is due one interval later, but
    // the caller goes away before that.
    let abandoned = tokio::time::timeout(INTERVAL / 5, attestor.attest(IN_POD)).await;
    assert!(abandoned.is_err());
    assert_eq!(kubelet.requests(), 1);
    tokio::time::advance(10 * INTERVAL).await;
    tokio::task::yield_now().await;
    assert_eq!(kubelet.requests(), 1, "the scheduled request was dropped");

    kubelet.set(with_container("a"));
    attestor.attest(IN_POD).await.unwrap();
    assert_eq!(
        kubelet.requests(),
        2,
        "and the next caller schedules a new one"
    );
}

// === namespace labels ===

/// One scripted answer: the labels, or the error message.
type LabelsAnswer = Result<Vec<(&'static str, &'static str)>, String>;

/// Namespace labels from a script (the last answer repeats), counting requests, optionally
/// holding every request until the test lets one through.
#[derive(Debug, Default)]
struct FakeNamespaces {
    script: Mutex<VecDeque<LabelsAnswer>>,
    asked: Mutex<Vec<String>>,
    started: Notify,
    gate: Option<Semaphore>,
}

impl FakeNamespaces {
    fn answering(answers: impl IntoIterator<Item = LabelsAnswer>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(answers.into_iter().collect()),
            ..Self::default()
        })
    }

    fn set(&self, answer: LabelsAnswer) {
        *self.script.lock().unwrap() = [answer].into();
    }

    fn requests(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl NamespaceSource for FakeNamespaces {
    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, FetchError> {
        self.asked.lock().unwrap().push(name.to_owned());
        self.started.notify_one();
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let answer = {
            let mut script = self.script.lock().unwrap();
            if script.len() > 1 {
                script.pop_front().unwrap()
            } else {
                script.front().cloned().unwrap()
            }
        };
        answer
            .map(|labels| {
                labels
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .map_err(Into::into)
    }
}

fn labelled_attestor(
    proc: &tempfile::TempDir,
    kubelet: &Arc<FakeKubelet>,
    namespaces: &Arc<FakeNamespaces>,
) -> K8sAttestor {
    let config = K8sConfig {
        enable_namespace_labels: true,
        ..test_config()
    };
    K8sAttestor::with_sources(
        config,
        proc.path(),
        kubelet.clone(),
        Some(namespaces.clone()),
    )
}

fn ns_labels(selectors: &[Selector]) -> Vec<String> {
    values(selectors)
        .into_iter()
        .filter(|v| v.starts_with("k8s:ns-label:"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn namespace_labels_come_last_sorted_by_key() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let namespaces = FakeNamespaces::answering([Ok(vec![
        ("team", "payments"),
        ("kubernetes.io/metadata.name", "ns1"),
        ("env", "prod:eu"),
    ])]);
    let plain = values(&attestor(&proc, &kubelet).attest(IN_POD).await.unwrap());

    let attestor = labelled_attestor(&proc, &kubelet, &namespaces);
    let selectors = values(&attestor.attest(IN_POD).await.unwrap());
    let mut want = plain.clone();
    want.extend([
        "k8s:ns-label:env:prod:eu".to_owned(),
        "k8s:ns-label:kubernetes.io/metadata.name:ns1".to_owned(),
        "k8s:ns-label:team:payments".to_owned(),
    ]);
    assert_eq!(selectors, want);
    assert_eq!(*namespaces.asked.lock().unwrap(), ["ns1"]);

    // Pod selectors only (container not yet listed) get them too, as in SPIRE.
    let kubelet = FakeKubelet::answering([without_container()]);
    let config = K8sConfig {
        enable_namespace_labels: true,
        disable_container_selectors: true,
        ..test_config()
    };
    let attestor = K8sAttestor::with_sources(
        config,
        proc.path(),
        kubelet.clone(),
        Some(namespaces.clone()),
    );
    let selectors = attestor.attest(IN_POD).await.unwrap();
    assert_eq!(ns_labels(&selectors).len(), 3);
    assert!(
        !values(&selectors)
            .iter()
            .any(|v| v.starts_with("k8s:container-"))
    );

    // Off (the default): no request, no ns-label selectors; processes outside pods never
    // reach the apiserver either.
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let requests = namespaces.requests();
    let off = K8sAttestor::with_sources(
        test_config(),
        proc.path(),
        kubelet.clone(),
        Some(namespaces.clone()),
    );
    assert!(ns_labels(&off.attest(IN_POD).await.unwrap()).is_empty());
    let on = labelled_attestor(&proc, &kubelet, &namespaces);
    assert!(on.attest(NOT_IN_POD).await.unwrap().is_empty());
    assert_eq!(namespaces.requests(), requests);
}

#[tokio::test(start_paused = true)]
async fn namespace_labels_are_reused_for_five_seconds() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let namespaces = FakeNamespaces::answering([Ok(vec![("tier", "old")])]);
    let attestor = labelled_attestor(&proc, &kubelet, &namespaces);

    assert_eq!(
        ns_labels(&attestor.attest(IN_POD).await.unwrap()),
        ["k8s:ns-label:tier:old"]
    );
    namespaces.set(Ok(vec![("tier", "new")]));
    // Many attestations (each a fresh pod list every interval) inside the TTL: one GET.
    for _ in 0..9 {
        tokio::time::advance(INTERVAL).await;
        assert_eq!(
            ns_labels(&attestor.attest(IN_POD).await.unwrap()),
            ["k8s:ns-label:tier:old"]
        );
    }
    tokio::time::advance(NAMESPACE_LABELS_TTL - 9 * INTERVAL - Duration::from_millis(1)).await;
    attestor.attest(IN_POD).await.unwrap();
    assert_eq!(namespaces.requests(), 1);
    assert!(
        kubelet.requests() > 1,
        "the pod list was fetched again meanwhile"
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        ns_labels(&attestor.attest(IN_POD).await.unwrap()),
        ["k8s:ns-label:tier:new"],
        "a label change is seen once the labels are 5 s old"
    );
    assert_eq!(namespaces.requests(), 2);

    namespaces.set(Ok(vec![]));
    tokio::time::advance(NAMESPACE_LABELS_TTL).await;
    assert!(
        ns_labels(&attestor.attest(IN_POD).await.unwrap()).is_empty(),
        "a removed label is gone too"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_attestations_share_one_namespace_request() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let namespaces = Arc::new(FakeNamespaces {
        script: Mutex::new([Ok(vec![("team", "a")])].into()),
        gate: Some(Semaphore::new(0)),
        ..FakeNamespaces::default()
    });
    let attestor = labelled_attestor(&proc, &kubelet, &namespaces);

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let attestor = attestor.clone();
            tokio::spawn(async move { attestor.attest(IN_POD).await })
        })
        .collect();
    namespaces.started.notified().await;
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    namespaces.gate.as_ref().unwrap().add_permits(1);
    for task in tasks {
        assert_eq!(
            ns_labels(&task.await.unwrap().unwrap()),
            ["k8s:ns-label:team:a"]
        );
    }
    assert_eq!(namespaces.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn namespace_failures_fail_the_attestation_like_spire() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let namespaces = FakeNamespaces::answering([
        Ok(vec![("team", "a")]),
        Err(r#"unable to get namespace "ns1": namespaces "ns1" is forbidden"#.to_owned()),
        Ok(vec![("team", "b")]),
    ]);
    let attestor = labelled_attestor(&proc, &kubelet, &namespaces);
    attestor.attest(IN_POD).await.unwrap();

    // Expired labels are not used when the apiserver fails: the attestation fails at once
    // (no polling), Internal, with SPIRE's message.
    tokio::time::advance(NAMESPACE_LABELS_TTL).await;
    let kubelet_requests = kubelet.requests();
    let error = attestor.attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert_eq!(
        error.to_string(),
        r#"unable to get namespace labels for "ns1": unable to get namespace "ns1": namespaces "ns1" is forbidden"#
    );
    assert_eq!(kubelet.requests(), kubelet_requests + 1);

    // The failure is reused for one poll_retry_interval, then the apiserver is asked again.
    tokio::time::advance(INTERVAL - Duration::from_millis(1)).await;
    assert_eq!(
        attestor.attest(IN_POD).await.unwrap_err().code(),
        Code::Internal
    );
    assert_eq!(namespaces.requests(), 2);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        ns_labels(&attestor.attest(IN_POD).await.unwrap()),
        ["k8s:ns-label:team:b"]
    );
    assert_eq!(namespaces.requests(), 3);
}

#[tokio::test]
async fn an_unusable_apiserver_configuration_fails_attestations_not_configuration() {
    let proc = fake_proc();
    let kubelet = FakeKubelet::answering([with_container("a")]);
    let config = K8sConfig {
        enable_namespace_labels: true,
        ..test_config()
    };
    let source = ApiNamespaces::new(Some(spire_k8s::ClientConfig::new("ftp://apiserver")));
    let attestor = K8sAttestor::with_sources(config, proc.path(), kubelet, Some(Arc::new(source)));
    let error = attestor.attest(IN_POD).await.unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert!(
        error.to_string().starts_with(
            r#"unable to get namespace labels for "ns1": unable to set up kube client: "#
        ),
        "{error}"
    );
}

// === configuration ===

fn parse(data: serde_json::Value) -> Result<K8sConfig> {
    K8sConfig::from_plugin_data(&data)
}

fn config_error(data: serde_json::Value) -> String {
    parse(data).unwrap_err().to_string()
}

#[test]
fn empty_plugin_data_gives_spire_defaults() {
    let config = parse(json!({})).unwrap();
    assert_eq!(config, K8sConfig::default());
    assert_eq!(config.port, KubeletPort::Secure(10250));
    assert_eq!(
        config.credentials,
        KubeletCredentials::Token("/var/run/secrets/kubernetes.io/serviceaccount/token".into())
    );
    assert_eq!(
        config.kubelet_ca_path,
        Path::new("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    );
    assert_eq!(config.max_poll_attempts, 60);
    assert_eq!(config.poll_retry_interval, Duration::from_millis(500));
    assert_eq!(config.reload_interval, Duration::from_secs(60));
}

#[test]
fn every_key_is_read_with_lenient_values() {
    let config = parse(json!({
        "kubelet_secure_port": "10443",
        "max_poll_attempts": "3",
        "poll_retry_interval": "1s",
        "reload_interval": "1m30s",
        "kubelet_ca_path": "/ca.pem",
        "skip_kubelet_verification": "true",
        "token_path": "/token",
        "certificate_path": "",
        "private_key_path": "",
        "use_anonymous_authentication": false,
        "node_name_env": "NODE",
        "node_name": "node-1",
        "disable_container_selectors": 1,
        "use_new_container_locator": true,
        "verbose_container_locator_logs": "true",
        "enable_namespace_labels": "true",
        "experimental": {},
        "max_pod_list_bytes": "134217728",
    }))
    .unwrap();
    assert_eq!(
        config,
        K8sConfig {
            port: KubeletPort::Secure(10443),
            credentials: KubeletCredentials::Token("/token".into()),
            skip_kubelet_verification: true,
            kubelet_ca_path: "/ca.pem".into(),
            node_name: Some("node-1".into()),
            node_name_env: Some("NODE".into()),
            max_poll_attempts: 3,
            poll_retry_interval: Duration::from_secs(1),
            reload_interval: Duration::from_secs(90),
            disable_container_selectors: true,
            verbose_container_locator_logs: true,
            enable_namespace_labels: true,
            max_pod_list_bytes: Some(128 * 1024 * 1024),
        }
    );

    let read_only = parse(json!({"kubelet_read_only_port": 10255})).unwrap();
    assert_eq!(read_only.port, KubeletPort::ReadOnly(10255));
    assert_eq!(read_only.credentials, KubeletCredentials::Anonymous);

    let cert =
        parse(json!({"certificate_path": "/c", "private_key_path": "/k", "token_path": "/t"}))
            .unwrap();
    assert_eq!(
        cert.credentials,
        KubeletCredentials::ClientCert {
            certificate_path: "/c".into(),
            private_key_path: "/k".into()
        }
    );
    let anonymous =
        parse(json!({"use_anonymous_authentication": true, "certificate_path": "/c"})).unwrap();
    assert_eq!(
        anonymous.credentials,
        KubeletCredentials::Anonymous,
        "anonymous wins; the pairing is not checked then"
    );
}

#[test]
fn zero_and_negative_values_mean_the_default() {
    let config = parse(json!({
        "kubelet_secure_port": 0,
        "kubelet_read_only_port": -1,
        "max_poll_attempts": -5,
        "poll_retry_interval": "0s",
        "reload_interval": "-1m",
    }))
    .unwrap();
    assert_eq!(config, K8sConfig::default());
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let error = config_error(json!({"kubelet_secure_prot": 1, "experimental": {"sigstor": {}}}));
    assert!(error.contains("kubelet_secure_prot"), "{error}");
    assert!(error.contains("sigstor"), "{error}");
    assert!(matches!(
        parse(json!({"x": 1})),
        Err(crate::Error::PluginData(_))
    ));
    let error = config_error(json!({"max_poll_attempts": "many"}));
    assert!(error.contains("not a number"), "{error}");
}

#[test]
fn spire_configuration_errors() {
    assert_eq!(
        config_error(json!({"kubelet_secure_port": 10250, "kubelet_read_only_port": 10255})),
        "invalid configuration: cannot use both the read-only and secure port"
    );
    assert_eq!(
        config_error(json!({"certificate_path": "/c"})),
        "invalid configuration: the private key path is required with the certificate path"
    );
    assert_eq!(
        config_error(json!({"private_key_path": "/k"})),
        "invalid configuration: the certificate path is required with the private key path"
    );
    assert!(
        parse(json!({"kubelet_read_only_port": 10255, "certificate_path": "/c"})).is_ok(),
        "the read-only port ignores credentials"
    );
    let error = config_error(json!({"poll_retry_interval": "soon"}));
    assert!(
        error.starts_with("invalid configuration: unable to parse poll retry interval"),
        "{error}"
    );
    let error = config_error(json!({"reload_interval": "1 fortnight"}));
    assert!(
        error.starts_with("invalid configuration: unable to parse reload interval"),
        "{error}"
    );
    let error = config_error(json!({"kubelet_secure_port": 70000}));
    assert!(error.contains("out of range"), "{error}");
}

#[test]
fn unsupported_features_are_refused_by_name() {
    for (data, name) in [
        (
            json!({"experimental": {"sigstore": {"allowed_identities": {}}}}),
            "experimental.sigstore",
        ),
        (
            json!({"use_new_container_locator": false}),
            "use_new_container_locator",
        ),
    ] {
        let error = parse(data.clone()).unwrap_err();
        assert!(matches!(error, crate::Error::Config(_)), "{data}");
        assert!(error.to_string().contains(name), "{data}: {error}");
        assert!(error.to_string().contains("not supported"), "{error}");
    }
}

#[test]
fn max_pod_list_bytes_is_a_lenient_integer_of_at_least_one_mib() {
    assert_eq!(parse(json!({})).unwrap().max_pod_list_bytes, None);
    assert_eq!(
        parse(json!({"max_pod_list_bytes": 1_048_576}))
            .unwrap()
            .max_pod_list_bytes,
        Some(1024 * 1024)
    );
    assert_eq!(
        parse(json!({"max_pod_list_bytes": "268435456"}))
            .unwrap()
            .max_pod_list_bytes,
        Some(256 * 1024 * 1024)
    );
    for too_small in [json!(1_048_575), json!("4096"), json!(0), json!(-1)] {
        let error = parse(json!({"max_pod_list_bytes": too_small})).unwrap_err();
        assert!(matches!(error, crate::Error::Config(_)), "{too_small}");
        assert_eq!(
            error.to_string(),
            format!(
                "invalid configuration: max_pod_list_bytes must be at least 1048576 bytes \
                 (1 MiB), got {}",
                too_small
                    .as_i64()
                    .unwrap_or_else(|| too_small.as_str().unwrap().parse().unwrap())
            )
        );
    }
    let error = config_error(json!({"max_pod_list_bytes": "64MiB"}));
    assert!(error.contains("not a number"), "{error}");
}

#[test]
fn enable_namespace_labels_is_accepted() {
    assert!(!parse(json!({})).unwrap().enable_namespace_labels);
    for on in [json!(true), json!("true")] {
        assert!(
            parse(json!({"enable_namespace_labels": on}))
                .unwrap()
                .enable_namespace_labels
        );
    }
}

#[test]
fn node_name_resolution() {
    let env = |name: &str| match name {
        "MY_NODE_NAME" => Some("from-default-env".to_owned()),
        "OTHER" => Some("from-other-env".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let resolve = |data| parse(data).unwrap().resolve_node_name(env);
    assert_eq!(resolve(json!({})).as_deref(), Some("from-default-env"));
    assert_eq!(
        resolve(json!({"node_name_env": "OTHER"})).as_deref(),
        Some("from-other-env")
    );
    assert_eq!(
        resolve(json!({"node_name_env": "UNSET"})),
        None,
        "no fallback"
    );
    assert_eq!(resolve(json!({"node_name_env": "EMPTY"})), None);
    assert_eq!(
        resolve(json!({"node_name": "n1", "node_name_env": "OTHER"})).as_deref(),
        Some("n1")
    );
    assert_eq!(
        K8sConfig::default().resolve_node_name(|_| None),
        None,
        "127.0.0.1 is used then"
    );
}

#[test]
fn plugin_data_from_an_hcl_agent_config() {
    let doc = spire_config::Document::parse(
        r#"
        plugins {
            WorkloadAttestor "k8s" {
                plugin_data {
                    skip_kubelet_verification = true
                    max_poll_attempts = "10"
                    poll_retry_interval = "250ms"
                }
            }
        }
        "#,
    )
    .unwrap();
    let plugins = spire_config::Plugins::parse(doc.raw("plugins"), &["WorkloadAttestor"]).unwrap();
    let block = plugins.of_type("WorkloadAttestor").next().unwrap();
    let config = K8sConfig::from_plugin_data(&block.plugin_data).unwrap();
    assert!(config.skip_kubelet_verification);
    assert_eq!(config.max_poll_attempts, 10);
    assert_eq!(config.poll_retry_interval, Duration::from_millis(250));
}

#[test]
fn construction_reads_the_credentials_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, " t0ken \n").unwrap();
    let options = || K8sOptions {
        env: Arc::new(|_| None),
        ..K8sOptions::default()
    };
    let build = |data: serde_json::Value| {
        K8sAttestor::new(K8sConfig::from_plugin_data(&data).unwrap(), options())
    };

    let missing = dir.path().join("missing");
    let error = build(json!({"skip_kubelet_verification": true, "token_path": missing}))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "invalid configuration: unable to load token: open {}",
            missing.display()
        )),
        "{error}"
    );
    let error = build(json!({"token_path": token, "kubelet_ca_path": missing}))
        .unwrap_err()
        .to_string();
    assert!(error.contains("unable to load kubelet CA"), "{error}");
    let error = build(json!({"certificate_path": missing, "private_key_path": missing}))
        .unwrap_err()
        .to_string();
    assert!(error.contains("unable to load"), "{error}");

    build(json!({"skip_kubelet_verification": true, "token_path": token}))
        .expect("the CA is not read when verification is skipped");
    build(json!({"kubelet_read_only_port": 10255, "token_path": missing}))
        .expect("the read-only port reads nothing");
    build(json!({"skip_kubelet_verification": true, "use_anonymous_authentication": true, "token_path": missing}))
        .expect("anonymous reads no token");
}

#[test]
fn kubelet_urls() {
    let url = |data: serde_json::Value, node: Option<&str>| {
        let config = K8sConfig::from_plugin_data(&data).unwrap();
        KubeletSource::new(
            &config,
            node.map(str::to_owned),
            Duration::from_secs(1),
            1024,
        )
        .unwrap()
        .url()
        .to_owned()
    };
    let anonymous =
        json!({"use_anonymous_authentication": true, "skip_kubelet_verification": true});
    assert_eq!(url(anonymous.clone(), None), "https://127.0.0.1:10250");
    assert_eq!(
        url(anonymous.clone(), Some("node-1")),
        "https://node-1:10250"
    );
    assert_eq!(url(anonymous, Some("fd00::1")), "https://[fd00::1]:10250");
    assert_eq!(
        url(json!({"kubelet_read_only_port": 10255}), Some("node-1")),
        "http://127.0.0.1:10255",
        "the read-only port is always loopback"
    );
}
