//! The seed's manual-registration flow (Istio 1.14 "Integrating SPIRE", option 2), end to
//! end, against the real binaries.
//!
//! `spire-server` runs the quickstart's `server.conf` and `spire-agent` its `agent.conf`, both
//! read from `spire-quickstart.yaml` at test time and changed only where paths and addresses
//! must move (see [`server_edits`] and [`agent_edits`]). The cluster around them runs in this
//! process: a kube-apiserver holding what the quickstart creates (the empty
//! `spire/trust-bundle` ConfigMap), node `node-1`, the agent's pod with its projected token's
//! TokenReview, and the workload pods; and the kubelet of `node-1`. The agent's bootstrap
//! bundle is what `k8sbundle` wrote into the ConfigMap, copied to `trust_bundle_path` as the
//! kubelet's ConfigMap volume would. The seed's three `entry create` commands run as written;
//! then real processes inside the pods' cgroups ask SDS for `default` and `ROOTCA` as Istio's
//! Envoy does.
//!
//! Needs root and a writable cgroup v1 `pids` hierarchy (skips otherwise, fails under
//! `CI=true`), the shared testdata, and `spire-server` built next to `spire-agent`
//! (`cargo build -p spire-server -p spire-agent`).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

#[path = "../../../crates/agent/sds/tests/support/envoy_client.rs"]
mod envoy_client;
mod istio_support;
mod k8s_support;

use std::path::Path;
use std::time::Duration;

use istio_support::{
    AGENT_BIN, Processes, assert_chain_verifies, ders, require_server_bin, sans, spire_server_cli,
    wait, wait_agent_socket, wait_server_healthy,
};
use k8s_support::{
    Pod, Quickstart, cgroups_unusable, distinct_ports, edit_config, entry_blocks, leaf_subject,
    seed_agent_edits, seed_server_edits,
};
use serde_json::Value;
use spire_test_k8s::{
    TestApiServer, TestKubelet, TestKubeletAuth, TestKubeletConfig, TokenReviewOutcome, node_json,
    token_review_user,
};
use tokio::time::Instant;

const NODE: &str = "node-1";
const AGENT_ALIAS: &str = "spiffe://example.org/ns/spire/sa/spire-agent";
const INGRESS_ID: &str =
    "spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account";
const SLEEP_ID: &str = "spiffe://example.org/ns/default/sa/sleep";
/// How long the processes in the pods keep asking for `default` while it is refused (Envoy
/// retries until its identity arrives).
const PATIENCE: Duration = Duration::from_secs(30);
/// Bound on the ConfigMap being written once the server is up.
const PUBLISH: Duration = Duration::from_secs(30);

/// `kubectl get pod -l <label> -n <ns> -o jsonpath='{.items[0].metadata.name}'` and that
/// pod's `{.metadata.uid}`, as the seed looks its pods up.
fn kubectl_pod(
    apiserver: &TestApiServer,
    namespace: &str,
    label: (&str, &str),
) -> (String, String) {
    let pods = apiserver.list_objects(&format!("/api/v1/namespaces/{namespace}/pods"));
    let pod = pods
        .iter()
        .find(|p| p["metadata"]["labels"][label.0] == label.1)
        .unwrap_or_else(|| panic!("no pod {}={} in {namespace}", label.0, label.1));
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    (
        text(&pod["metadata"]["name"]),
        text(&pod["metadata"]["uid"]),
    )
}

/// The seed's `entry create` commands (its steps 3, 4 and 7), as written after
/// `/opt/spire/bin/spire-server`; the `$VARS` are what its `kubectl` steps set.
const SEED_ENTRY_CREATE: [&str; 3] = [
    "entry create \
       -spiffeID spiffe://example.org/ns/spire/sa/spire-agent \
       -selector k8s_psat:cluster:demo-cluster \
       -selector k8s_psat:agent_ns:spire \
       -selector k8s_psat:agent_sa:spire-agent \
       -node -socketPath /run/spire/sockets/server.sock",
    "entry create \
       -spiffeID spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account \
       -parentID spiffe://example.org/ns/spire/sa/spire-agent \
       -selector k8s:sa:istio-ingressgateway-service-account \
       -selector k8s:ns:istio-system \
       -selector k8s:pod-uid:$INGRESS_POD_UID \
       -dns $INGRESS_POD \
       -dns istio-ingressgateway.istio-system.svc \
       -socketPath /run/spire/sockets/server.sock",
    "entry create \
       -spiffeID spiffe://example.org/ns/default/sa/sleep \
       -parentID spiffe://example.org/ns/spire/sa/spire-agent \
       -selector k8s:ns:default \
       -selector k8s:pod-uid:$SLEEP_POD_UID \
       -dns $SLEEP_POD \
       -socketPath /run/spire/sockets/server.sock",
];
/// The server socket of the seed's commands (the quickstart's `socket_path`).
const SEED_SERVER_SOCKET: &str = "/run/spire/sockets/server.sock";

/// A command's words with `$NAME`s replaced from `vars` (longer names first where one name
/// starts another: list `INGRESS_POD_UID` before `INGRESS_POD`).
fn shell_words(command: &str, vars: &[(&str, &str)]) -> Vec<String> {
    command
        .split_whitespace()
        .map(|word| {
            vars.iter().fold(word.to_owned(), |w, (name, value)| {
                w.replace(&format!("${name}"), value)
            })
        })
        .collect()
}

/// What `entry create` prints for one entry, but its ID.
struct ExpectedEntry {
    spiffe_id: &'static str,
    parent_id: &'static str,
    /// Sorted.
    selectors: Vec<String>,
    /// In the order of the command's `-dns` flags.
    dns: Vec<String>,
}

/// The seed's three entries, in the order of [`SEED_ENTRY_CREATE`].
fn seed_entries(vars: &[(&str, &str)]) -> [ExpectedEntry; 3] {
    let var = |name| vars.iter().find(|(n, _)| *n == name).unwrap().1.to_owned();
    let strings = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    [
        ExpectedEntry {
            spiffe_id: AGENT_ALIAS,
            parent_id: "spiffe://example.org/spire/server",
            selectors: strings(&[
                "k8s_psat:agent_ns:spire",
                "k8s_psat:agent_sa:spire-agent",
                "k8s_psat:cluster:demo-cluster",
            ]),
            dns: Vec::new(),
        },
        ExpectedEntry {
            spiffe_id: INGRESS_ID,
            parent_id: AGENT_ALIAS,
            selectors: vec![
                "k8s:ns:istio-system".to_owned(),
                format!("k8s:pod-uid:{}", var("INGRESS_POD_UID")),
                "k8s:sa:istio-ingressgateway-service-account".to_owned(),
            ],
            dns: vec![
                var("INGRESS_POD"),
                "istio-ingressgateway.istio-system.svc".to_owned(),
            ],
        },
        ExpectedEntry {
            spiffe_id: SLEEP_ID,
            parent_id: AGENT_ALIAS,
            selectors: vec![
                "k8s:ns:default".to_owned(),
                format!("k8s:pod-uid:{}", var("SLEEP_POD_UID")),
            ],
            dns: vec![var("SLEEP_POD")],
        },
    ]
}

/// Checks `entry create`'s output (SPIRE's block for the one new entry: fields in SPIRE's
/// order, revision 0, default TTLs; selectors in any order); the entry ID.
fn assert_entry_created(output: &str, expected: &ExpectedEntry) -> String {
    let blocks = entry_blocks(output);
    assert_eq!(blocks.len(), 1, "{output}");
    let block = &blocks[0];
    let values = |label: &str| -> Vec<String> {
        block
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let labels: Vec<&str> = block.iter().map(|(l, _)| l.as_str()).collect();
    let mut want = vec![
        "Entry ID",
        "SPIFFE ID",
        "Parent ID",
        "Revision",
        "X509-SVID TTL",
        "JWT-SVID TTL",
    ];
    want.extend(expected.selectors.iter().map(|_| "Selector"));
    want.extend(expected.dns.iter().map(|_| "DNS name"));
    assert_eq!(labels, want, "{output}");
    assert_eq!(values("SPIFFE ID"), [expected.spiffe_id], "{output}");
    assert_eq!(values("Parent ID"), [expected.parent_id], "{output}");
    assert_eq!(values("Revision"), ["0"], "{output}");
    assert_eq!(values("X509-SVID TTL"), ["default"], "{output}");
    assert_eq!(values("JWT-SVID TTL"), ["default"], "{output}");
    let mut selectors = values("Selector");
    selectors.sort();
    assert_eq!(selectors, expected.selectors, "{output}");
    assert_eq!(values("DNS name"), expected.dns, "{output}");
    let id = values("Entry ID").remove(0);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{output}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_manual_registration_end_to_end() {
    if let Some(reason) = cgroups_unusable() {
        spire_test::skip(&reason);
        return;
    }
    let Some(samples) = spire_test::shared_testdata("istio-1.14-samples") else {
        return;
    };
    require_server_bin();
    let seed = Quickstart::load(&samples);
    let work = tempfile::Builder::new()
        .prefix("spire-k8s-seed.")
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
    // A second replica: same labels, namespace and service account, no entry of its own.
    // The apiserver lists by name, so the seed's `-l app=sleep` `.items[0]` is the first.
    let other_pod = Pod::create(
        "sleep-5f4d47c948-q8vnz",
        "default",
        &sleep_containers,
        |b| on_node(b.service_account("sleep")).label("app", "sleep"),
    )
    .unwrap();
    let pods = [&agent_pod, &ingress_pod, &sleep_pod, &other_pod];
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

    // spire-server with the quickstart's server.conf.
    let [server_port, server_health, agent_health] = distinct_ports();
    let server_conf = edit_config(
        &seed.server_conf,
        &seed_server_edits(dir, server_port, server_health, &kubeconfig),
    );
    std::fs::write(dir.join("conf/server.conf"), server_conf).unwrap();
    let agent_conf = edit_config(
        &seed.agent_conf,
        &seed_agent_edits(dir, server_port, agent_health, kubelet.port()),
    );
    std::fs::write(dir.join("conf/agent.conf"), agent_conf).unwrap();
    let server_socket = dir.join("sockets/server.sock");
    let socket_arg = server_socket.to_str().unwrap();
    let agent_socket = dir.join("run/secrets/workload-spiffe-uds/socket");
    let mut procs = Processes::new(dir);
    procs.spawn(
        "server",
        &require_server_bin(),
        &["run", "-config", "conf/server.conf"],
    );
    wait_server_healthy(&mut procs, &server_socket).await;
    // The 2022 server.conf's `default_svid_ttl` is accepted as SPIRE <= 1.5 did, with its
    // deprecation warning in the log.
    let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(
        server_log
            .lines()
            .any(|l| l.contains("level=warning") && l.contains("default_svid_ttl")),
        "no default_svid_ttl warning in the server log"
    );

    // k8sbundle fills the ConfigMap; the kubelet projects it into the agent's pod.
    let config_map = "/api/v1/namespaces/spire/configmaps/trust-bundle";
    let published = wait(
        "root-cert.pem in ConfigMap spire/trust-bundle",
        PUBLISH,
        || {
            let pem = apiserver
                .get_object(config_map)
                .and_then(|cm| cm["data"]["root-cert.pem"].as_str().map(str::to_owned));
            std::future::ready(pem)
        },
    )
    .await;
    let bundle_show = spire_server_cli(dir, &["bundle", "show", "-socketPath", socket_arg]);
    assert_eq!(
        ders(&published),
        ders(&bundle_show),
        "the ConfigMap holds the server's roots"
    );
    std::fs::write(dir.join("bundle/root-cert.pem"), &published).unwrap();

    // spire-agent with the quickstart's agent.conf.
    let agent_started = Instant::now();
    procs.spawn(
        "agent",
        Path::new(AGENT_BIN),
        &["run", "-config", "conf/agent.conf"],
    );
    wait_agent_socket(&mut procs, &agent_socket).await;

    // Envoy in the sleep pod starts asking while the entries are being created.
    let sleep_asks = async {
        let outcome = sleep_pod.ask_sds(&agent_socket, dir, PATIENCE).await;
        (outcome, Instant::now())
    };
    let register = async {
        let (ingress_name, ingress_uid) =
            kubectl_pod(&apiserver, "istio-system", ("istio", "ingressgateway"));
        let (sleep_name, sleep_uid) = kubectl_pod(&apiserver, "default", ("app", "sleep"));
        assert_eq!(
            (&sleep_name, &ingress_name),
            (&sleep_pod.name, &ingress_pod.name)
        );
        let vars = [
            ("INGRESS_POD_UID", ingress_uid.as_str()),
            ("INGRESS_POD", ingress_name.as_str()),
            ("SLEEP_POD_UID", sleep_uid.as_str()),
            ("SLEEP_POD", sleep_name.as_str()),
        ];
        let mut ids = Vec::new();
        for (command, expected) in SEED_ENTRY_CREATE.iter().zip(seed_entries(&vars)) {
            let mut args = shell_words(command, &vars);
            for arg in &mut args {
                if arg == SEED_SERVER_SOCKET {
                    *arg = socket_arg.to_owned();
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = spire_server_cli(dir, &args);
            ids.push(assert_entry_created(&output, &expected));
        }
        (ids, Instant::now(), ingress_name, sleep_name)
    };
    let ((sleep, svid_at), (entry_ids, created, ingress_name, sleep_name)) =
        tokio::join!(sleep_asks, register);
    eprintln!(
        "figure: agent start → sleep SVID over SDS {:?} (3 `entry create` runs included; \
         last `entry create` → SVID {:?}; {} `default` requests)",
        svid_at - agent_started,
        svid_at.saturating_duration_since(created),
        sleep.attempts,
    );

    // The sleep pod's Envoy: its identity, CN = pod name, chain under ROOTCA, and ROOTCA is
    // what k8sbundle wrote into the ConfigMap.
    let chain = sleep.served("sleep pod");
    assert_chain_verifies(chain, &sleep.rootca.as_ref().unwrap().1[0].1, SLEEP_ID);
    assert_eq!(
        leaf_subject(chain),
        format!("C=US, O=SPIRE, CN={sleep_name}")
    );
    assert_eq!(sans(&ders(chain)[0]).dns, [sleep_name.as_str()]);
    assert_eq!(
        ders(sleep.rootca_pem()),
        ders(&published),
        "ROOTCA is the ConfigMap's root-cert.pem"
    );

    // The ingress gateway: its identity with both DNS names (the first is the CN).
    let ingress = ingress_pod.ask_sds(&agent_socket, dir, PATIENCE).await;
    let chain = ingress.served("ingress gateway pod");
    assert_chain_verifies(chain, &ingress.rootca.as_ref().unwrap().1[0].1, INGRESS_ID);
    assert_eq!(
        sans(&ders(chain)[0]).dns,
        [
            ingress_name.as_str(),
            "istio-ingressgateway.istio-system.svc"
        ]
    );
    assert_eq!(
        leaf_subject(chain),
        format!("C=US, O=SPIRE, CN={ingress_name}")
    );
    assert_eq!(ders(ingress.rootca_pem()), ders(&published));

    // Another pod (same namespace and service account, no entry): no identity, once, after
    // the agent already serves both entries.
    let other = other_pod.ask_sds(&agent_socket, dir, Duration::ZERO).await;
    assert_eq!(
        other.default.as_ref().unwrap_err(),
        &(
            tonic::Code::InvalidArgument as i32,
            r#"workload is not authorized for the requested identities ["default"]"#.to_owned()
        ),
        "cgroup:\n{}",
        other.cgroup
    );
    assert_eq!(
        ders(other.rootca_pem()),
        ders(&published),
        "bundles are not secret"
    );

    // The seed's check: 3 entries.
    let show = spire_server_cli(dir, &["entry", "show", "-socketPath", socket_arg]);
    assert!(show.starts_with("Found 3 entries\n"), "{show}");
    let mut shown: Vec<String> = entry_blocks(&show)
        .iter()
        .flat_map(|b| {
            b.iter()
                .filter(|(l, _)| l == "Entry ID")
                .map(|(_, v)| v.clone())
        })
        .collect();
    let mut entry_ids = entry_ids;
    shown.sort();
    entry_ids.sort();
    assert_eq!(shown, entry_ids);

    // The agent attested through TokenReview as node-1's agent.
    let agents = spire_server_cli(dir, &["agent", "list", "-socketPath", socket_arg]);
    let agent_id = format!("spiffe://example.org/spire/agent/k8s_psat/demo-cluster/{node_uid}");
    assert!(
        agents.contains(&format!("SPIFFE ID         : {agent_id}\n")),
        "{agents}"
    );
    assert!(
        agents.contains("Attestation type  : k8s_psat\n"),
        "{agents}"
    );
    let reviews = apiserver.requests_to("/apis/authentication.k8s.io/v1/tokenreviews");
    let review = reviews.first().expect("a TokenReview").json().unwrap();
    assert_eq!(review["spec"]["token"], psat.as_str());
    assert_eq!(
        review["spec"]["audiences"],
        serde_json::json!(["spire-server"])
    );
    let bearer = format!("Bearer {kubelet_token}");
    let asked = kubelet.requests();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| r.path == "/pods" && r.authorization.as_deref() == Some(&bearer)),
        "{asked:?}"
    );

    // The probes of the seed's manifests: /live and /ready on port 8080 of each pod.
    for (who, port) in [("server", server_health), ("agent", agent_health)] {
        for path in ["/live", "/ready"] {
            let answer = k8s_support::probe_ok(&format!("{who} {path}"), port, path).await;
            assert_eq!(
                answer.content_type.as_deref(),
                Some("application/json"),
                "{who} {path}"
            );
            let body: Value = serde_json::from_str(&answer.body)
                .unwrap_or_else(|e| panic!("{who} {path}: not JSON ({e}): {}", answer.body));
            assert!(body.is_object(), "{who} {path}: {body}");
        }
    }
    procs.assert_running();
}

/// Not a test of its own: the SDS client that `seed_manual_registration_end_to_end` runs
/// inside a pod's cgroup (this binary, re-executed on this test alone).
#[tokio::test]
#[ignore = "started by seed_manual_registration_end_to_end inside a pod's cgroup"]
async fn sds_client_in_pod() {
    if !k8s_support::run_sds_client().await {
        eprintln!(
            "nothing to do: this test runs only inside a pod's cgroup, started by its parent"
        );
    }
}
