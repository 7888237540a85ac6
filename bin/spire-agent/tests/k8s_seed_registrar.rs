//! The seed's automatic-registration flow (Istio 1.14 "Integrating SPIRE": the quickstart's
//! `k8s-workload-registrar` in CRD mode), end to end, against the real binaries.
//!
//! The cluster, `spire-server` and `spire-agent` are those of `k8s_seed.rs`: the quickstart's
//! `server.conf` and `agent.conf` read from `spire-quickstart.yaml` at test time and changed
//! only where paths and addresses must move, an apiserver and node-1's kubelet in this
//! process, the agent's pod attesting through TokenReview, the bootstrap bundle taken from the
//! ConfigMap `k8sbundle` fills. Nobody runs `entry create`: `k8s-workload-registrar` runs the
//! quickstart's `k8s-workload-registrar.conf` (ConfigMap `spire/k8s-workload-registrar`),
//! changed only where the server socket moved, with `-kubeconfig` where its pod would use its
//! in-cluster configuration and `MY_POD_NAMESPACE=spire` as its pod's environment sets it. It
//! creates a `SpiffeID` object for node-1 (the node alias) and one for every pod outside the
//! disabled namespaces, each with its entry; a real process in the sleep pod's `istio-proxy`
//! cgroup asks SDS for `default` as Envoy does and gets the pod's identity. Deleting the pod
//! removes its entry, then its object.
//!
//! Needs root and a writable cgroup v1 `pids` hierarchy (skips otherwise, fails under
//! `CI=true`), the shared testdata, and `spire-server` and `k8s-workload-registrar` built next
//! to `spire-agent` (`cargo build -p spire-server -p k8s-workload-registrar`; `cargo test
//! --workspace` builds them).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

#[path = "../../../crates/agent/sds/tests/support/envoy_client.rs"]
mod envoy_client;
mod istio_support;
mod k8s_support;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use istio_support::{
    AGENT_BIN, Processes, assert_chain_verifies, ders, require_registrar_bin, require_server_bin,
    sans, spire_server_cli, wait, wait_agent_socket, wait_server_healthy,
};
use k8s_support::{
    Edit, Pod, Quickstart, cgroups_unusable, distinct_ports, edit_config, entry_blocks,
    leaf_subject, seed_agent_edits, seed_server_edits,
};
use serde_json::{Value, json};
use spire_test_k8s::{
    TestApiServer, TestKubelet, TestKubeletAuth, TestKubeletConfig, TokenReviewOutcome, node_json,
    token_review_user,
};
use tokio::time::Instant;

const NODE: &str = "node-1";
/// The registrar's node alias for node-1 (`k8s-workload-registrar/<cluster>/node/<node>`).
const NODE_ALIAS: &str = "spiffe://example.org/k8s-workload-registrar/demo-cluster/node/node-1";
const SERVER_ID: &str = "spiffe://example.org/spire/server";
const SLEEP_ID: &str = "spiffe://example.org/ns/default/sa/sleep";
/// The finalizer that holds a `SpiffeID` until its entry is deleted.
const FINALIZER: &str = "finalizers.spiffeid.spiffe.io";
/// How long the processes in the pods keep asking for `default` while it is refused (Envoy
/// retries until its identity arrives).
const PATIENCE: Duration = Duration::from_secs(60);
/// Bound on the ConfigMap being written once the server is up.
const PUBLISH: Duration = Duration::from_secs(30);
/// Bound on a state the registrar is expected to reach (catches a wedged registrar).
const SETTLE: Duration = Duration::from_secs(60);

/// The registrar config's one change: the server socket, which the registrar's container
/// mounts from the server's pod at the quickstart's path.
fn registrar_edits(server_socket: &Path) -> Vec<Edit> {
    vec![Edit::set("", "server_socket_path", server_socket.display())]
}

/// `/apis/spiffeid.spiffe.io/v1beta1/namespaces/<namespace>/spiffeids/<name>`.
fn spiffe_id_path(namespace: &str, name: &str) -> String {
    format!("/apis/spiffeid.spiffe.io/v1beta1/namespaces/{namespace}/spiffeids/{name}")
}

/// `future`, failing after [`SETTLE`] (the registrar's log is printed then).
async fn settled<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(SETTLE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {SETTLE:?} waiting for {what}"))
}

/// The object at `path` once the registrar wrote its `status.entryId`.
async fn synced_object(apiserver: &TestApiServer, path: &str) -> Value {
    settled(
        &format!("status.entryId of {path}"),
        apiserver.wait_for(path, |o| o["status"]["entryId"].is_string()),
    )
    .await
}

/// An entry as `spire-server entry show` prints it (selectors sorted).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ShownEntry {
    spiffe_id: String,
    parent_id: String,
    selectors: Vec<String>,
    dns: Vec<String>,
    id: String,
}

/// `spire-server entry show -socketPath <socket> [args]`: the number it says it found and
/// the entries, sorted.
fn entry_show(dir: &Path, socket: &str, args: &[&str]) -> (usize, Vec<ShownEntry>) {
    let mut all = vec!["entry", "show", "-socketPath", socket];
    all.extend(args);
    let output = spire_server_cli(dir, &all);
    let found = output
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Found "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `Found N entries` line: {output}"));
    let mut entries: Vec<ShownEntry> = entry_blocks(&output)
        .into_iter()
        .map(|block| {
            let values = |label: &str| -> Vec<String> {
                block
                    .iter()
                    .filter(|(l, _)| l == label)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let one = |label: &str| {
                let mut v = values(label);
                assert_eq!(v.len(), 1, "{label} in {block:?}");
                v.remove(0)
            };
            let mut selectors = values("Selector");
            selectors.sort();
            ShownEntry {
                spiffe_id: one("SPIFFE ID"),
                parent_id: one("Parent ID"),
                selectors,
                dns: values("DNS name"),
                id: one("Entry ID"),
            }
        })
        .collect();
    entries.sort();
    (found, entries)
}

/// The entry the registrar makes for `pod` (`ns/<ns>/sa/<sa>` under the node alias, selected
/// by pod UID, namespace and node; the pod name as DNS name), with `entry_id` (its object's
/// `status.entryId`).
fn pod_entry(pod: &Pod, entry_id: &str) -> ShownEntry {
    let sa = pod.json["spec"]["serviceAccountName"].as_str().unwrap();
    ShownEntry {
        spiffe_id: format!("spiffe://example.org/ns/{}/sa/{sa}", pod.namespace),
        parent_id: NODE_ALIAS.to_owned(),
        selectors: vec![
            format!("k8s:node-name:{NODE}"),
            format!("k8s:ns:{}", pod.namespace),
            format!("k8s:pod-uid:{}", pod.uid),
        ],
        dns: vec![pod.name.clone()],
        id: entry_id.to_owned(),
    }
}

/// Checks the pod's `SpiffeID` object as the registrar writes it (name and namespace of the
/// pod, owned by it, finalizer, spec); its `status.entryId`.
fn assert_pod_object(object: &Value, pod: &Pod) -> String {
    let sa = pod.json["spec"]["serviceAccountName"].as_str().unwrap();
    assert_eq!(object["metadata"]["name"], pod.name.as_str(), "{object}");
    assert_eq!(object["metadata"]["namespace"], pod.namespace.as_str());
    assert_eq!(object["metadata"]["labels"]["podUid"], pod.uid.as_str());
    assert_eq!(
        object["metadata"]["finalizers"],
        json!([FINALIZER]),
        "{object}"
    );
    let owners = object["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(owners.len(), 1, "{object}");
    assert_eq!(owners[0]["kind"], "Pod");
    assert_eq!(owners[0]["uid"], pod.uid.as_str());
    assert_eq!(owners[0]["controller"], true);
    assert_eq!(
        object["spec"],
        json!({
            "spiffeId": format!("spiffe://example.org/ns/{}/sa/{sa}", pod.namespace),
            "parentId": NODE_ALIAS,
            "selector": { "podUid": pod.uid, "namespace": pod.namespace, "nodeName": NODE },
            "dnsNames": [pod.name],
        }),
        "{object}"
    );
    object["status"]["entryId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_registrar_registration_end_to_end() {
    if let Some(reason) = cgroups_unusable() {
        spire_test::skip(&reason);
        return;
    }
    let Some(samples) = spire_test::shared_testdata("istio-1.14-samples") else {
        return;
    };
    let server_bin = require_server_bin();
    let registrar_bin = require_registrar_bin();
    let seed = Quickstart::load(&samples);
    let work = tempfile::Builder::new()
        .prefix("spire-k8s-registrar.")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = work.path();
    for sub in ["conf", "bundle", "tokens", "serviceaccount"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }

    // The cluster: apiserver, node-1 and its kubelet, the agent's pod and the workloads.
    let apiserver = TestApiServer::start().await;
    let kubelet_token = format!("kubelet-sa-token-{}", uuid::Uuid::new_v4().simple());
    let kubelet = TestKubelet::start(TestKubeletConfig::new(
        NODE,
        TestKubeletAuth::Bearer(kubelet_token.clone()),
    ))
    .await;
    let node_uid = uuid::Uuid::new_v4().to_string();
    apiserver.put_node(node_json(
        NODE,
        &node_uid,
        &[("kubernetes.io/hostname", NODE)],
    ));
    apiserver.put_config_map(seed.trust_bundle.clone());
    let on_node = |b: spire_test_k8s::PodBuilder| b.node(NODE).host_ip("10.0.0.5");
    let agent_pod = Pod::create(
        "spire-agent-x7k2p",
        "spire",
        &[("spire-agent", "gcr.io/spiffe-io/spire-agent:1.2.0")],
        |b| on_node(b.service_account("spire-agent").label("app", "spire-agent")),
    )
    .unwrap();
    let ingress_pod = Pod::create(
        "istio-ingressgateway-5b45864fd4-lgrxs",
        "istio-system",
        &[("istio-proxy", "istio/proxyv2:1.14.0")],
        |b| {
            on_node(b.service_account("istio-ingressgateway-service-account"))
                .label("istio", "ingressgateway")
        },
    )
    .unwrap();
    // Envoy is the sidecar: the SDS client joins `istio-proxy`'s cgroup.
    let sleep_containers = [
        ("istio-proxy", "istio/proxyv2:1.14.0"),
        ("sleep", "curlimages/curl"),
    ];
    let sleep_pod = Pod::create(
        "sleep-5f4d47c948-njvpk",
        "default",
        &sleep_containers,
        |b| on_node(b.service_account("sleep")).label("app", "sleep"),
    )
    .unwrap();
    // A second replica: the registrar gives it an entry of its own (its UID, its name).
    let other_pod = Pod::create(
        "sleep-5f4d47c948-q8vnz",
        "default",
        &sleep_containers,
        |b| on_node(b.service_account("sleep")).label("app", "sleep"),
    )
    .unwrap();
    // kube-system is one of the registrar's disabled namespaces.
    let dns_pod = Pod::create(
        "coredns-6d4b75cb6d-xk9qz",
        "kube-system",
        &[("coredns", "coredns/coredns:1.8.6")],
        |b| on_node(b.service_account("coredns")).label("k8s-app", "kube-dns"),
    )
    .unwrap();
    let pods = [&agent_pod, &ingress_pod, &sleep_pod, &other_pod, &dns_pod];
    for pod in pods {
        apiserver.put_pod(pod.json.clone());
    }
    kubelet.set_pods(pods.iter().map(|p| p.json.clone()).collect());
    let psat = format!("projected-psat-{}", uuid::Uuid::new_v4().simple());
    apiserver.set_token_review(
        &psat,
        TokenReviewOutcome::authenticated(token_review_user(
            "spire",
            "spire-agent",
            &agent_pod.name,
            &agent_pod.uid,
            NODE,
            &node_uid,
        )),
    );
    std::fs::write(dir.join("tokens/spire-agent"), &psat).unwrap();
    std::fs::write(dir.join("serviceaccount/token"), &kubelet_token).unwrap();
    let kubeconfig = apiserver.kubeconfig(dir);

    // The quickstart's three configs.
    let [server_port, server_health, agent_health] = distinct_ports();
    let server_socket = dir.join("sockets/server.sock");
    let socket_arg = server_socket.to_str().unwrap();
    let agent_socket = dir.join("run/secrets/workload-spiffe-uds/socket");
    for (file, text, edits) in [
        (
            "server.conf",
            &seed.server_conf,
            seed_server_edits(dir, server_port, server_health, &kubeconfig),
        ),
        (
            "agent.conf",
            &seed.agent_conf,
            seed_agent_edits(dir, server_port, agent_health, kubelet.port()),
        ),
        (
            "k8s-workload-registrar.conf",
            &seed.registrar_conf,
            registrar_edits(&server_socket),
        ),
    ] {
        std::fs::write(dir.join("conf").join(file), edit_config(text, &edits)).unwrap();
    }

    // spire-server; k8sbundle fills the ConfigMap, which the kubelet projects into the
    // agent's pod; spire-agent.
    let mut procs = Processes::new(dir);
    procs.spawn(
        "server",
        &server_bin,
        &["run", "-config", "conf/server.conf"],
    );
    wait_server_healthy(&mut procs, &server_socket).await;
    let published = wait(
        "root-cert.pem in ConfigMap spire/trust-bundle",
        PUBLISH,
        || {
            let pem = apiserver
                .get_object("/api/v1/namespaces/spire/configmaps/trust-bundle")
                .and_then(|cm| cm["data"]["root-cert.pem"].as_str().map(str::to_owned));
            std::future::ready(pem)
        },
    )
    .await;
    std::fs::write(dir.join("bundle/root-cert.pem"), &published).unwrap();
    procs.spawn(
        "agent",
        Path::new(AGENT_BIN),
        &["run", "-config", "conf/agent.conf"],
    );
    wait_agent_socket(&mut procs, &agent_socket).await;
    // Nothing is registered yet.
    assert_eq!(entry_show(dir, socket_arg, &[]).0, 0);

    // The registrar, as its container in the server's pod runs it; Envoy in the sleep pod
    // asks from then on.
    let registrar_started = Instant::now();
    let kubeconfig_arg = kubeconfig.to_str().unwrap();
    procs.spawn_with_env(
        "registrar",
        &registrar_bin,
        &[
            "-config",
            "conf/k8s-workload-registrar.conf",
            "-kubeconfig",
            kubeconfig_arg,
        ],
        &[("MY_POD_NAMESPACE", "spire")],
    );
    let sleep_path = spiffe_id_path("default", &sleep_pod.name);
    let sleep_asks = async {
        let outcome = sleep_pod.ask_sds(&agent_socket, dir, PATIENCE).await;
        (outcome, Instant::now())
    };
    let sleep_synced = async {
        let object = synced_object(&apiserver, &sleep_path).await;
        (object, Instant::now())
    };
    let ((sleep, svid_at), (sleep_object, synced_at)) = tokio::join!(sleep_asks, sleep_synced);
    eprintln!(
        "figure: registrar start → sleep SVID over SDS {:?} (no `entry create`; registrar start \
         → sleep SpiffeID with status.entryId {:?}; {} `default` requests)",
        svid_at - registrar_started,
        synced_at - registrar_started,
        sleep.attempts,
    );

    // The sleep pod's Envoy: its identity, CN = pod name, chain under ROOTCA, and ROOTCA is
    // what k8sbundle wrote into the ConfigMap.
    let chain = sleep.served("sleep pod");
    assert_chain_verifies(chain, sleep.rootca_pem(), SLEEP_ID);
    assert_eq!(
        leaf_subject(chain),
        format!("C=US, O=SPIRE, CN={}", sleep_pod.name)
    );
    assert_eq!(sans(&ders(chain)[0]).dns, [sleep_pod.name.as_str()]);
    assert_eq!(
        ders(sleep.rootca_pem()),
        ders(&published),
        "ROOTCA is the ConfigMap's root-cert.pem"
    );

    // The objects: node-1's alias in the registrar's namespace, one per pod in the pod's.
    let alias_object = synced_object(&apiserver, &spiffe_id_path("spire", NODE)).await;
    assert_eq!(
        alias_object["metadata"]["labels"]["nodeUid"],
        node_uid.as_str()
    );
    assert_eq!(
        alias_object["metadata"]["ownerReferences"][0]["uid"],
        node_uid.as_str()
    );
    assert_eq!(
        alias_object["spec"],
        json!({
            "spiffeId": NODE_ALIAS,
            "parentId": SERVER_ID,
            "selector": { "cluster": "demo-cluster", "agent_node_uid": node_uid },
        }),
        "{alias_object}"
    );
    let alias_entry_id = alias_object["status"]["entryId"].as_str().unwrap();
    let mut expected = vec![ShownEntry {
        spiffe_id: NODE_ALIAS.to_owned(),
        parent_id: SERVER_ID.to_owned(),
        selectors: vec![
            format!("k8s_psat:agent_node_uid:{node_uid}"),
            "k8s_psat:cluster:demo-cluster".to_owned(),
        ],
        dns: Vec::new(),
        id: alias_entry_id.to_owned(),
    }];
    let sleep_entry_id = assert_pod_object(&sleep_object, &sleep_pod);
    expected.push(pod_entry(&sleep_pod, &sleep_entry_id));
    let mut other_entry_id = String::new();
    for pod in [&agent_pod, &ingress_pod, &other_pod] {
        let object = synced_object(&apiserver, &spiffe_id_path(&pod.namespace, &pod.name)).await;
        let id = assert_pod_object(&object, pod);
        expected.push(pod_entry(pod, &id));
        if pod.name == other_pod.name {
            other_entry_id = id;
        }
    }
    expected.sort();
    assert!(
        apiserver
            .list_objects("/apis/spiffeid.spiffe.io/v1beta1/namespaces/kube-system/spiffeids")
            .is_empty(),
        "no SpiffeID in a disabled namespace"
    );

    // The server's entries, as the seed's check lists them: the node alias and one per pod
    // (none for the pod in kube-system), each the one its object names.
    let (found, shown) = entry_show(dir, socket_arg, &[]);
    assert_eq!((found, &shown), (expected.len(), &expected));

    // The second replica gets its own SVID (its pod name as CN).
    let other = other_pod.ask_sds(&agent_socket, dir, PATIENCE).await;
    let chain = other.served("second sleep replica");
    assert_chain_verifies(chain, other.rootca_pem(), SLEEP_ID);
    assert_eq!(
        leaf_subject(chain),
        format!("C=US, O=SPIRE, CN={}", other_pod.name)
    );

    // The pod in kube-system: no identity, asked once after the agent serves the others.
    let dns = dns_pod.ask_sds(&agent_socket, dir, Duration::ZERO).await;
    assert_eq!(
        dns.default.as_ref().unwrap_err(),
        &(
            tonic::Code::InvalidArgument as i32,
            r#"workload is not authorized for the requested identities ["default"]"#.to_owned()
        ),
        "cgroup:\n{}",
        dns.cgroup
    );
    assert_eq!(
        ders(dns.rootca_pem()),
        ders(&published),
        "bundles are not secret"
    );

    // The sleep pod is deleted: the garbage collector deletes its SpiffeID, whose finalizer
    // holds it until the registrar deleted the entry.
    let deleted = apiserver
        .request_deletion(&format!(
            "/api/v1/namespaces/default/pods/{}",
            sleep_pod.name
        ))
        .expect("the sleep pod existed");
    assert_eq!(deleted["metadata"]["uid"], sleep_pod.uid.as_str());
    assert!(
        apiserver
            .get_object(&format!(
                "/api/v1/namespaces/default/pods/{}",
                sleep_pod.name
            ))
            .is_none()
    );
    settled(
        "the sleep pod's SpiffeID to go",
        apiserver.wait_for_absent(&sleep_path),
    )
    .await;
    let (found, shown) = entry_show(dir, socket_arg, &[]);
    expected.retain(|e| e.id != sleep_entry_id);
    assert_eq!((found, &shown), (expected.len(), &expected));
    // The replica keeps its entry, now the only one with the sleep identity.
    let (found, by_id) = entry_show(dir, socket_arg, &["-spiffeID", SLEEP_ID]);
    assert_eq!(found, 1);
    assert_eq!(by_id[0].id, other_entry_id);
    procs.assert_running();
}

/// Not a test of its own: the SDS client that `seed_registrar_registration_end_to_end` runs
/// inside a pod's cgroup (this binary, re-executed on this test alone).
#[tokio::test]
#[ignore = "started by seed_registrar_registration_end_to_end inside a pod's cgroup"]
async fn sds_client_in_pod() {
    if !k8s_support::run_sds_client().await {
        eprintln!(
            "nothing to do: this test runs only inside a pod's cgroup, started by its parent"
        );
    }
}
