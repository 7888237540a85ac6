//! The Istio guide's quickstart (its 2022 layout, `deploy/quickstart-2022`) on one machine,
//! from `kubectl apply` to the sleep pod's SVID and back to a clean cluster. Read it as the
//! guide's steps; run it with `cargo test -p spire-agent --test quickstart -- --nocapture` to
//! see what a user would see at each step.
//!
//! What runs: the test kube-apiserver and node-1's kubelet (in this process); the real
//! `kubectl`, validation on, for every cluster change a user makes; `spire-server`,
//! `k8s-workload-registrar`, `spire-agent` and `spiffe-csi-driver` as processes, each
//! configured from the ConfigMaps and container arguments of the applied manifests, changed
//! only where files and addresses must move (see `k8s_support::seed_server_edits` and
//! `seed_agent_edits`). What the cluster's controllers and the kubelet would do, the test does
//! and says so: it creates the workloads' pods, projects the service account token and the
//! bundle ConfigMap, publishes the sleep pod's CSI volume (NodePublishVolume, a real bind
//! mount) and unpublishes it when the pod goes, and stops a workload's processes when its
//! object is deleted. Envoy is a real process in the sleep pod's cgroup that opens
//! `<volume>/socket` and asks SDS for `default` and `ROOTCA`. Then the guide's checks
//! (`entry show`, the certificate's subject `CN = <pod name>`) and its clean-up list, with the
//! one line `deploy/README.md` corrects, after which no object and no mount remains.
//!
//! Needs root and a writable cgroup v1 `pids` hierarchy, `kubectl` and `openssl` (skips
//! without, fails under `CI=true`), and `spire-server`, `k8s-workload-registrar` and
//! `spiffe-csi-driver` built next to `spire-agent` (`cargo test --workspace` builds them).
//! `quickstart_figures` (ignored) is benchmark S21: the same run with its stages timed and
//! every component's peak RSS, beside the join-token floor.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

#[path = "../../../crates/agent/sds/tests/support/envoy_client.rs"]
mod envoy_client;
mod istio_support;
mod k8s_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use istio_support::{
    AGENT_BIN, Processes, assert_chain_verifies, free_port, require_csi_driver_bin,
    require_registrar_bin, require_server_bin, spire_server_cli, wait, wait_agent_socket,
    wait_server_healthy,
};
use k8s_support::{
    Edit, Pod, cgroups_unusable, distinct_ports, edit_config, seed_agent_edits, seed_server_edits,
};
use serde_json::Value;
use spiffe_csi::proto::v1::identity_client::IdentityClient;
use spiffe_csi::proto::v1::node_client::NodeClient;
use spiffe_csi::proto::v1::volume_capability::access_mode::Mode;
use spiffe_csi::proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use spiffe_csi::proto::v1::{
    GetPluginInfoRequest, NodeGetInfoRequest, NodePublishVolumeRequest, NodeUnpublishVolumeRequest,
    VolumeCapability,
};
use spire_test_k8s::{
    Kubectl, TestApiServer, TestKubelet, TestKubeletAuth, TestKubeletConfig, TokenReviewOutcome,
    node_json, token_review_user,
};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

const NODE: &str = "node-1";
const SLEEP_ID: &str = "spiffe://example.org/ns/default/sa/sleep";
/// How long Envoy keeps asking for `default` while it is refused.
const PATIENCE: Duration = Duration::from_secs(60);
/// Bound on a state a component is expected to reach.
const SETTLE: Duration = Duration::from_secs(60);

/// Prints a step heading, as the guide's sections.
fn step(text: &str) {
    eprintln!("\n=== {text}");
}

/// Says what the test does in place of a cluster component.
fn cluster_does(text: &str) {
    eprintln!("(cluster) {text}");
}

/// `deploy/` in this checkout.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .canonicalize()
        .unwrap()
}

/// Runs blocking kubectl steps off the runtime the apiserver is served on.
async fn kubectl<T: Send + 'static>(
    k: &Arc<Kubectl>,
    f: impl FnOnce(&Kubectl) -> T + Send + 'static,
) -> T {
    let k = k.clone();
    tokio::task::spawn_blocking(move || f(&k)).await.unwrap()
}

/// `kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/<layout>`, as the deploy
/// README renders a layout.
fn render(k: &Kubectl, layout: &str) -> String {
    let dir = deploy_dir().join(layout);
    k.capture(&[
        "kustomize",
        "--load-restrictor",
        "LoadRestrictionsNone",
        dir.to_str().unwrap(),
    ])
}

/// The documents of a rendering, CRDs first (`kubectl apply` them before what uses them).
fn crds_first(rendered: &str) -> (String, String) {
    let (mut crds, mut rest) = (String::new(), String::new());
    for doc in rendered.split("\n---\n") {
        let doc = doc.trim_start_matches("---\n");
        let target = if doc.lines().any(|l| l == "kind: CustomResourceDefinition") {
            &mut crds
        } else {
            &mut rest
        };
        target.push_str("---\n");
        target.push_str(doc);
        target.push('\n');
    }
    (crds, rest)
}

/// The clean-up block of `deploy/README.md` (the guide's list, one line corrected).
fn readme_cleanup() -> Vec<String> {
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    let (_, after) = readme
        .split_once("<!-- clean-up: quickstart-2022 -->")
        .expect("the README marks its clean-up block");
    after
        .split("```")
        .nth(1)
        .expect("a fenced block after the marker")
        .lines()
        .filter(|l| l.starts_with("kubectl "))
        .map(str::to_owned)
        .collect()
}

/// `key` of ConfigMap `spire/<name>` as the apiserver holds it.
fn config_map_key(apiserver: &TestApiServer, name: &str, key: &str) -> String {
    apiserver
        .get_object(&format!("/api/v1/namespaces/spire/configmaps/{name}"))
        .unwrap_or_else(|| panic!("ConfigMap spire/{name}"))["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap spire/{name} has no {key}"))
        .to_owned()
}

/// The container `name` of a stored workload (`<group path>/<kind plural>/<name>`).
fn container(apiserver: &TestApiServer, workload: &str, name: &str) -> Value {
    let object = apiserver
        .get_object(workload)
        .unwrap_or_else(|| panic!("{workload}"));
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("container {name} in {workload}"))
        .clone()
}

/// `metadata.uid` of a stored object.
fn uid(apiserver: &TestApiServer, path: &str) -> String {
    apiserver
        .get_object(path)
        .unwrap_or_else(|| panic!("{path}"))["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `VmHWM` of a process, in KiB: its peak resident set so far.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Whether `path` is a mount point now (field 5 of `/proc/self/mountinfo`).
fn is_mount_point(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount| Path::new(&mount.replace("\\040", " ")) == path)
}

/// A gRPC channel on a Unix socket (as the kubelet and the registrar dial the CSI socket).
async fn unix_channel(socket: &Path) -> Channel {
    Endpoint::try_from(format!("unix://{}", socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// NodePublishVolume as the kubelet sends it for an inline `csi` volume of `pod` (with
/// `podInfoOnMount`): the volume's attributes, the pod's identity, `ephemeral`, a mount
/// capability, and `readonly` from the volume's `readOnly`.
fn kubelet_publish(pod: &Pod, csi: &Value, target: &Path) -> NodePublishVolumeRequest {
    let mut context: BTreeMap<String, String> = csi["volumeAttributes"]
        .as_object()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let service_account = pod.json["spec"]["serviceAccountName"].as_str().unwrap();
    for (key, value) in [
        ("csi.storage.k8s.io/pod.name", pod.name.as_str()),
        ("csi.storage.k8s.io/pod.namespace", pod.namespace.as_str()),
        ("csi.storage.k8s.io/pod.uid", pod.uid.as_str()),
        ("csi.storage.k8s.io/serviceAccount.name", service_account),
        ("csi.storage.k8s.io/ephemeral", "true"),
    ] {
        context.insert(key.to_owned(), value.to_owned());
    }
    NodePublishVolumeRequest {
        volume_id: format!("csi-{}", pod.uid.replace('-', "")),
        target_path: target.to_str().unwrap().to_owned(),
        volume_capability: Some(VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume::default())),
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
        }),
        readonly: csi["readOnly"] == true,
        volume_context: context.into_iter().collect(),
        ..Default::default()
    }
}

/// The `spire` sidecar template of `deploy/istio/istio-spire-config.yaml` (what `istioctl
/// kube-inject` adds to the sleep pod): its `workload-socket` volume.
fn spire_template_volume() -> Value {
    let text = std::fs::read_to_string(deploy_dir().join("istio/istio-spire-config.yaml")).unwrap();
    let operator: Value = serde_saphyr::from_str(&text).unwrap();
    let template = operator["spec"]["values"]["sidecarInjectorWebhook"]["templates"]["spire"]
        .as_str()
        .unwrap();
    let template: Value = serde_saphyr::from_str(template).unwrap();
    template["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "workload-socket")
        .unwrap()
        .clone()
}

/// A component binary: from `$SPIRE_BENCH_BIN_DIR` when set (S21 runs release builds that
/// way), else next to the `spire-agent` under test.
fn component(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SPIRE_BENCH_BIN_DIR") {
        let bin = Path::new(&dir).join(name);
        assert!(bin.is_file(), "{} is missing", bin.display());
        return bin;
    }
    match name {
        "spire-server" => require_server_bin(),
        "k8s-workload-registrar" => require_registrar_bin(),
        "spiffe-csi-driver" => require_csi_driver_bin(),
        _ => PathBuf::from(AGENT_BIN),
    }
}

/// Why the quickstart cannot run here, if it cannot: root and cgroups, kubectl, openssl.
fn unusable() -> Option<String> {
    cgroups_unusable()
        .or_else(Kubectl::unavailable)
        .or_else(|| {
            let openssl = Command::new("openssl").arg("version").output();
            (!openssl.is_ok_and(|o| o.status.success())).then(|| {
                "openssl is not installed (the guide checks the certificate with it)".into()
            })
        })
}

/// S21's figures of one run.
#[derive(Debug, Default)]
struct Figures {
    /// (stage, seconds), in order.
    stages: Vec<(&'static str, f64)>,
    /// (component, peak RSS in KiB) when the sleep pod got its SVID.
    peak_rss: Vec<(&'static str, u64)>,
}

impl Figures {
    fn stage(&mut self, name: &'static str, since: &mut Instant) {
        let now = Instant::now();
        self.stages.push((name, (now - *since).as_secs_f64()));
        *since = now;
    }

    fn total(&self) -> f64 {
        self.stages.iter().map(|(_, s)| s).sum()
    }
}

/// The quickstart, start to clean-up; its figures.
async fn quickstart(dir: &Path) -> Figures {
    let server_bin = component("spire-server");
    let registrar_bin = component("k8s-workload-registrar");
    let csi_bin = component("spiffe-csi-driver");
    let agent_bin = component("spire-agent");
    let mut figures = Figures::default();
    for sub in ["tokens", "serviceaccount", "bundle", "csi"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }

    step("A cluster: the test kube-apiserver and node-1's kubelet");
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
    let k = Arc::new(Kubectl::new(&apiserver, dir));
    eprintln!(
        "kube-apiserver {} (KUBECONFIG={})",
        apiserver.url(),
        k.kubeconfig().display()
    );

    step("Install SPIRE: kubectl apply the 2022 quickstart layout, CRDs first");
    let mut clock = Instant::now();
    let (crds, rest) = kubectl(&k, |k| crds_first(&render(k, "quickstart-2022"))).await;
    kubectl(&k, move |k| {
        let out = k.ok(&["apply", "-f", "-"], Some(&crds));
        assert!(
            out.contains("spiffeids.spiffeid.spiffe.io created"),
            "{out}"
        );
        let out = k.ok(&["apply", "-f", "-"], Some(&rest));
        assert!(
            out.contains("statefulset.apps/spire-server created"),
            "{out}"
        );
        assert!(out.contains("daemonset.apps/spire-agent created"), "{out}");
    })
    .await;
    figures.stage("kubectl apply (CRDs, then the rest)", &mut clock);

    // The StatefulSet and DaemonSet controllers' pods, on node-1.
    let statefulset = "/apis/apps/v1/namespaces/spire/statefulsets/spire-server";
    let daemonset = "/apis/apps/v1/namespaces/spire/daemonsets/spire-agent";
    let server_pod = Pod::create(
        "spire-server-0",
        "spire",
        &[
            ("spire-server", "ghcr.io/spire-rs/spire-server:0.1.0"),
            (
                "k8s-workload-registrar",
                "ghcr.io/spire-rs/spire-controller-manager:0.1.0",
            ),
        ],
        |b| {
            b.node(NODE)
                .host_ip("10.0.0.5")
                .service_account("spire-server")
                .label("app", "spire-server")
                .owner("StatefulSet", "spire-server", &uid(&apiserver, statefulset))
        },
    )
    .unwrap();
    let agent_pod = Pod::create(
        "spire-agent-x7k2p",
        "spire",
        &[
            ("spire-agent", "ghcr.io/spire-rs/spire-agent:0.1.0"),
            (
                "spiffe-csi-driver",
                "ghcr.io/spire-rs/spiffe-csi-driver:0.1.0",
            ),
        ],
        |b| {
            b.node(NODE)
                .host_ip("10.0.0.5")
                .service_account("spire-agent")
                .label("app", "spire-agent")
                .owner("DaemonSet", "spire-agent", &uid(&apiserver, daemonset))
        },
    )
    .unwrap();
    for pod in [&server_pod, &agent_pod] {
        apiserver.put_pod(pod.json.clone());
        cluster_does(&format!(
            "pod {}/{} scheduled on {NODE}",
            pod.namespace, pod.name
        ));
    }
    kubelet.set_pods(vec![server_pod.json.clone(), agent_pod.json.clone()]);
    // The agent's projected token (audience spire-server) and the kubelet's service account.
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
    cluster_does("projected the spire-agent pod's service account token");

    // The three configs, from the ConfigMaps just applied.
    let kubeconfig = k.kubeconfig().to_owned();
    let [server_port, server_health, agent_health] = distinct_ports();
    let server_socket = dir.join("sockets/server.sock");
    let socket_dir = dir.join("run/secrets/workload-spiffe-uds");
    for (file, text, edits) in [
        (
            "server.conf",
            config_map_key(&apiserver, "spire-server", "server.conf"),
            seed_server_edits(dir, server_port, server_health, &kubeconfig),
        ),
        (
            "agent.conf",
            config_map_key(&apiserver, "spire-agent", "agent.conf"),
            seed_agent_edits(dir, server_port, agent_health, kubelet.port()),
        ),
        (
            "k8s-workload-registrar.conf",
            config_map_key(
                &apiserver,
                "k8s-workload-registrar",
                "k8s-workload-registrar.conf",
            ),
            vec![Edit::set("", "server_socket_path", server_socket.display())],
        ),
    ] {
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        std::fs::write(dir.join("conf").join(file), edit_config(&text, &edits)).unwrap();
    }

    step("spire-server (StatefulSet spire-server, container spire-server)");
    let mut procs = Processes::new(dir);
    procs.spawn(
        "server",
        &server_bin,
        &["run", "-config", "conf/server.conf"],
    );
    wait_server_healthy(&mut procs, &server_socket).await;
    let bundle = wait(
        "root-cert.pem in ConfigMap spire/trust-bundle",
        SETTLE,
        || {
            let pem = apiserver
                .get_object("/api/v1/namespaces/spire/configmaps/trust-bundle")
                .and_then(|cm| cm["data"]["root-cert.pem"].as_str().map(str::to_owned));
            std::future::ready(pem)
        },
    )
    .await;
    std::fs::write(dir.join("bundle/root-cert.pem"), &bundle).unwrap();
    eprintln!("Server is healthy; k8sbundle wrote ConfigMap spire/trust-bundle");
    cluster_does("projected ConfigMap trust-bundle into the spire-agent pod");
    figures.stage("spire-server healthy, bundle in the ConfigMap", &mut clock);

    step("k8s-workload-registrar (StatefulSet spire-server, second container)");
    let kubeconfig_arg = kubeconfig.to_str().unwrap().to_owned();
    procs.spawn_with_env(
        "registrar",
        &registrar_bin,
        &[
            "-config",
            "conf/k8s-workload-registrar.conf",
            "-kubeconfig",
            &kubeconfig_arg,
        ],
        &[("MY_POD_NAMESPACE", "spire")],
    );

    step("spire-agent and spiffe-csi-driver (DaemonSet spire-agent)");
    procs.spawn("agent", &agent_bin, &["run", "-config", "conf/agent.conf"]);
    wait_agent_socket(&mut procs, &socket_dir.join("socket")).await;
    figures.stage("spire-agent attested, socket served", &mut clock);
    let driver = container(&apiserver, daemonset, "spiffe-csi-driver");
    let args: Vec<String> = driver["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        args,
        [
            "-workload-api-socket-dir",
            "/spire-agent-socket",
            "-csi-socket-path",
            "/spiffe-csi/csi.sock"
        ],
        "the DaemonSet's driver arguments"
    );
    // The same flags, with the host paths the DaemonSet's volumes stand for.
    let csi_socket = dir.join("csi/csi.sock");
    procs.spawn_with_env(
        "csi-driver",
        &csi_bin,
        &[
            "-workload-api-socket-dir",
            socket_dir.to_str().unwrap(),
            "-csi-socket-path",
            csi_socket.to_str().unwrap(),
        ],
        &[("MY_NODE_NAME", NODE)],
    );
    wait("the CSI socket", SETTLE, || {
        procs.assert_running();
        std::future::ready(csi_socket.exists().then_some(()))
    })
    .await;
    let csi = unix_channel(&csi_socket).await;
    let plugin = IdentityClient::new(csi.clone())
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let node = NodeClient::new(csi.clone())
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (plugin.name.as_str(), node.node_id.as_str()),
        ("csi.spiffe.io", NODE)
    );
    cluster_does(&format!(
        "node-driver-registrar registered {} {}; the kubelet read node ID {}",
        plugin.name, plugin.vendor_version, node.node_id
    ));

    step("The sleep sample (deploy/istio), injected with the `spire` sidecar template");
    kubectl(&k, |k| {
        let out = k.ok(&["apply", "-f", "-"], Some(&render(k, "istio")));
        assert!(out.contains("deployment.apps/sleep created"), "{out}");
    })
    .await;
    let deployment = "/apis/apps/v1/namespaces/default/deployments/sleep";
    let template = apiserver.get_object(deployment).unwrap()["spec"]["template"].clone();
    let sleep_pod = {
        let mut pod = Pod::create(
            "sleep-5f4d47c948-njvpk",
            "default",
            &[
                ("istio-proxy", "istio/proxyv2:1.14.0"),
                ("sleep", "curlimages/curl"),
            ],
            |mut b| {
                for (key, value) in template["metadata"]["labels"].as_object().unwrap() {
                    b = b.label(key, value.as_str().unwrap());
                }
                b.node(NODE)
                    .host_ip("10.0.0.5")
                    .service_account(template["spec"]["serviceAccountName"].as_str().unwrap())
                    .owner("Deployment", "sleep", &uid(&apiserver, deployment))
            },
        )
        .unwrap();
        let mut volumes = template["spec"]["volumes"].as_array().unwrap().clone();
        volumes.push(spire_template_volume());
        pod.json["spec"]["volumes"] = Value::Array(volumes);
        pod
    };
    apiserver.put_pod(sleep_pod.json.clone());
    kubelet.set_pods(vec![
        server_pod.json.clone(),
        agent_pod.json.clone(),
        sleep_pod.json.clone(),
    ]);
    cluster_does(&format!(
        "pod default/{} scheduled on {NODE}",
        sleep_pod.name
    ));
    let volume = sleep_pod.json["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "workload-socket")
        .unwrap()["csi"]
        .clone();
    let target = dir.join(format!(
        "kubelet/pods/{}/volumes/kubernetes.io~csi/workload-socket/mount",
        sleep_pod.uid
    ));
    // The kubelet makes the volume's directory; the driver makes `mount` in it.
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    NodeClient::new(csi.clone())
        .node_publish_volume(kubelet_publish(&sleep_pod, &volume, &target))
        .await
        .unwrap();
    assert!(is_mount_point(&target));
    cluster_does(&format!(
        "NodePublishVolume: the agent's socket directory is at {}",
        target.display()
    ));
    figures.stage("sleep pod created, its volume published", &mut clock);

    step("Envoy in the sleep pod asks SDS for `default` and `ROOTCA` on <volume>/socket");
    let mount_path = "/run/secrets/workload-spiffe-uds";
    eprintln!("istio-proxy mounts the volume at {mount_path} and dials {mount_path}/socket");
    let envoy = sleep_pod
        .ask_sds_in_container(&target, mount_path, dir, PATIENCE)
        .await;
    figures.stage("the sleep pod's first `default` secret", &mut clock);
    for (name, process) in [
        ("spire-server", "server"),
        ("k8s-workload-registrar", "registrar"),
        ("spire-agent", "agent"),
        ("spiffe-csi-driver", "csi-driver"),
    ] {
        figures
            .peak_rss
            .push((name, peak_rss_kib(procs.pid(process))));
    }
    let chain = envoy.served("sleep pod").to_owned();
    let roots = envoy.rootca_pem().to_owned();
    eprintln!(
        "`default` after {} request(s); ROOTCA holds the trust-bundle ConfigMap's root",
        envoy.attempts
    );
    assert_chain_verifies(&chain, &roots, SLEEP_ID);

    step("Verify that identities were created for workloads");
    eprintln!(
        "$ kubectl exec -i -t spire-server-0 -n spire -c spire-server -- /bin/sh -c \
         \"bin/spire-server entry show -socketPath /run/spire/sockets/server.sock\""
    );
    let shown = spire_server_cli(
        dir,
        &[
            "entry",
            "show",
            "-socketPath",
            server_socket.to_str().unwrap(),
        ],
    );
    eprintln!("{shown}");
    assert!(
        shown.starts_with("Found 4 entries"),
        "node alias + 3 pods:\n{shown}"
    );
    let line = |label: &str, value: &str| format!("{label:<24}: {value}");
    assert!(shown.contains(&line("SPIFFE ID", SLEEP_ID)), "{shown}");
    assert!(
        shown.contains(&line("DNS name", &sleep_pod.name)),
        "{shown}"
    );

    step("Check that the workload identity was issued by SPIRE");
    std::fs::write(dir.join("chain.pem"), &chain).unwrap();
    eprintln!("$ openssl x509 -in chain.pem -text | grep SPIRE");
    let text = Command::new("openssl")
        .args(["x509", "-in", "chain.pem", "-text"])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    let spire_lines: Vec<&str> = text.lines().filter(|l| l.contains("SPIRE")).collect();
    for line in &spire_lines {
        eprintln!("{line}");
    }
    assert_eq!(
        spire_lines.iter().map(|l| l.trim()).collect::<Vec<_>>(),
        [format!(
            "Subject: C = US, O = SPIRE, CN = {}",
            sleep_pod.name
        )]
    );

    step("The sleep sample goes: its pod, its volume, its entry");
    let sleep_object = format!(
        "/apis/spiffeid.spiffe.io/v1beta1/namespaces/default/spiffeids/{}",
        sleep_pod.name
    );
    assert!(apiserver.get_object(&sleep_object).is_some());
    kubectl(&k, |k| {
        k.ok(&["delete", "-f", "-"], Some(&render(k, "istio")));
    })
    .await;
    // The Deployment's garbage collection removed the pod.
    assert!(
        apiserver
            .get_object(&format!(
                "/api/v1/namespaces/default/pods/{}",
                sleep_pod.name
            ))
            .is_none()
    );
    kubelet.set_pods(vec![server_pod.json.clone(), agent_pod.json.clone()]);
    NodeClient::new(csi.clone())
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: format!("csi-{}", sleep_pod.uid.replace('-', "")),
            target_path: target.to_str().unwrap().to_owned(),
        })
        .await
        .unwrap();
    assert!(!is_mount_point(&target) && !target.exists());
    cluster_does("NodeUnpublishVolume: the sleep pod's mount is gone");
    drop(sleep_pod);
    tokio::time::timeout(SETTLE, apiserver.wait_for_absent(&sleep_object))
        .await
        .expect("the registrar releases the sleep pod's SpiffeID");
    let shown = spire_server_cli(
        dir,
        &[
            "entry",
            "show",
            "-socketPath",
            server_socket.to_str().unwrap(),
        ],
    );
    assert!(shown.starts_with("Found 3 entries"), "{shown}");

    step("Clean up SPIRE (the guide's list; deploy/README.md corrects one line)");
    for line in readme_cleanup() {
        let args: Vec<String> = line.split_whitespace().skip(1).map(str::to_owned).collect();
        kubectl(&k, move |k| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = k.ok(&args, None);
            assert!(out.contains("deleted"), "{out}");
        })
        .await;
        if line.contains("daemonset spire-agent") {
            procs.stop("csi-driver");
            procs.stop("agent");
            cluster_does("the spire-agent pod's containers stopped");
        }
        if line.contains("statefulset spire-server") {
            procs.stop("registrar");
            procs.stop("server");
            cluster_does("the spire-server-0 pod's containers stopped");
        }
    }
    drop((server_pod, agent_pod));
    let left = apiserver.object_keys();
    assert_eq!(
        left,
        [format!("nodes {NODE}")],
        "objects left after the clean-up"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(dir.to_str().unwrap()),
        "a mount under {} remains:\n{mountinfo}",
        dir.display()
    );
    eprintln!("\nNothing is left but node {NODE}; no mount remains.");
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_from_kubectl_apply_to_clean_up() {
    if let Some(reason) = unusable() {
        spire_test::skip(&reason);
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("spire-quickstart.")
        .tempdir_in("/tmp")
        .unwrap();
    let figures = quickstart(work.path()).await;
    eprintln!(
        "figure: kubectl apply → the sleep pod's first `default` secret {:.1} s",
        figures.total()
    );
}

/// Benchmark S21's floor: the main job's flow (`conf/`'s join-token server and agent) from
/// starting spire-server to an SVID served over SDS to this process; (seconds, server and
/// agent peak RSS in KiB).
async fn join_token_floor(dir: &Path) -> (f64, u64, u64) {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf");
    let server_socket = dir.join("server/api.sock");
    let agent_socket = dir.join("agent/api.sock");
    let port = free_port();
    let server_conf = edit_config(
        &std::fs::read_to_string(conf.join("server/server.conf")).unwrap(),
        &[
            Edit::set("server", "bind_port", port),
            Edit::set("server", "socket_path", server_socket.display()),
            Edit::set("server", "data_dir", dir.join("data").display()),
        ],
    );
    let agent_conf = edit_config(
        &std::fs::read_to_string(conf.join("agent/agent.conf")).unwrap(),
        &[
            Edit::set("agent", "server_port", port),
            Edit::set("agent", "socket_path", agent_socket.display()),
            Edit::set("agent", "data_dir", dir.join("data/agent").display()),
            Edit::set(
                "agent",
                "trust_bundle_path",
                dir.join("bootstrap.crt").display(),
            ),
        ],
    );
    std::fs::write(dir.join("server.conf"), server_conf).unwrap();
    std::fs::write(dir.join("agent.conf"), agent_conf).unwrap();
    let started = Instant::now();
    let mut procs = Processes::new(dir);
    procs.spawn(
        "server",
        &component("spire-server"),
        &["run", "-config", "server.conf"],
    );
    wait_server_healthy(&mut procs, &server_socket).await;
    let socket = server_socket.to_str().unwrap();
    let bundle = spire_server_cli(dir, &["bundle", "show", "-socketPath", socket]);
    std::fs::write(dir.join("bootstrap.crt"), bundle).unwrap();
    let token = spire_server_cli(
        dir,
        &[
            "token",
            "generate",
            "-socketPath",
            socket,
            "-spiffeID",
            "spiffe://example.org/host/local",
        ],
    );
    let token = token.trim().strip_prefix("Token: ").unwrap().to_owned();
    spire_server_cli(
        dir,
        &[
            "entry",
            "create",
            "-socketPath",
            socket,
            "-parentID",
            "spiffe://example.org/host/local",
            "-spiffeID",
            "spiffe://example.org/ns/default/sa/demo",
            "-selector",
            &format!("unix:uid:{}", istio_support::my_uid()),
        ],
    );
    procs.spawn(
        "agent",
        &component("spire-agent"),
        &["run", "-config", "agent.conf", "-joinToken", &token],
    );
    wait_agent_socket(&mut procs, &agent_socket).await;
    let client = istio_support::sds_client(&agent_socket).await;
    wait("the floor's SVID over SDS", SETTLE, || {
        let mut client = client.clone();
        async move {
            let node = envoy_client::envoy_node((1, 22), &[]);
            let mut stream = envoy_client::EnvoyStream::open(&mut client, node, &["default"])
                .await
                .ok()?;
            stream.next_acked().await.ok()
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    (
        seconds,
        peak_rss_kib(procs.pid("server")),
        peak_rss_kib(procs.pid("agent")),
    )
}

/// Benchmark S21 (see BENCHMARKS.md): the quickstart's stages and every component's peak RSS,
/// beside the join-token floor measured in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark S21: cargo test -p spire-agent --test quickstart -- --ignored --nocapture"]
async fn quickstart_figures() {
    if let Some(reason) = unusable() {
        spire_test::skip(&reason);
        return;
    }
    let floor_dir = tempfile::Builder::new()
        .prefix("spire-floor.")
        .tempdir_in("/tmp")
        .unwrap();
    let (floor, floor_server, floor_agent) = join_token_floor(floor_dir.path()).await;
    let work = tempfile::Builder::new()
        .prefix("spire-quickstart.")
        .tempdir_in("/tmp")
        .unwrap();
    let figures = quickstart(work.path()).await;
    eprintln!("\nS21: the quickstart, kubectl apply → the sleep pod's first `default` secret");
    for (stage, seconds) in &figures.stages {
        eprintln!("  {stage:<50} {seconds:>6.2} s");
    }
    eprintln!("  {:<50} {:>6.2} s", "total", figures.total());
    eprintln!(
        "  {:<50} {floor:>6.2} s",
        "floor: join-token server start → SVID over SDS"
    );
    eprintln!("peak RSS (VmHWM) when the sleep pod had its SVID:");
    for (component, kib) in &figures.peak_rss {
        eprintln!("  {component:<24} {:>6.1} MiB", *kib as f64 / 1024.0);
    }
    eprintln!(
        "  floor: spire-server {:.1} MiB, spire-agent {:.1} MiB",
        floor_server as f64 / 1024.0,
        floor_agent as f64 / 1024.0
    );
}

/// Not a test of its own: the SDS client the quickstart runs inside the sleep pod's cgroup
/// (this binary, re-executed on this test alone).
#[tokio::test]
#[ignore = "started by the quickstart inside the sleep pod's cgroup"]
async fn sds_client_in_pod() {
    if !k8s_support::run_sds_client().await {
        eprintln!(
            "nothing to do: this test runs only inside a pod's cgroup, started by its parent"
        );
    }
}
