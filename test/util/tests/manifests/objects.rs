//! Rendering a layout and finding things in it: objects, containers, the volume behind a
//! path, the file a container reads from a ConfigMap, and the configs our loaders parse.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use spire_agent_app::AgentConfig;
use spire_server_app::ServerConfig;
use spire_test::{config_map_data, skip};

/// `deploy/` in this checkout.
pub(crate) fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `kubectl kustomize` of `deploy/<layout>`, parsed; `None` (after [`skip`]) without kubectl.
pub(crate) fn render(layout: &str) -> Option<Vec<Value>> {
    let dir = deploy_dir().join(layout);
    let output = match Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(&dir)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("kubectl is not installed (it renders deploy/ with `kubectl kustomize`)");
            return None;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {stderr}",
        dir.display()
    );
    let text = String::from_utf8(output.stdout).expect("kustomize writes UTF-8");
    let objects: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("parsing the rendering of {layout}: {e}"));
    assert!(!objects.is_empty(), "{layout} renders nothing");
    Some(objects)
}

/// The object `kind` `namespace/name` (`None` namespace = cluster-scoped).
pub(crate) fn find<'a>(
    objects: &'a [Value],
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<&'a Value> {
    objects.iter().find(|o| {
        o["kind"] == kind
            && o["metadata"]["name"] == name
            && o["metadata"]["namespace"].as_str() == namespace
    })
}

/// [`find`], which must succeed.
pub(crate) fn get<'a>(
    objects: &'a [Value],
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> &'a Value {
    find(objects, kind, namespace, name)
        .unwrap_or_else(|| panic!("no {kind} {}/{name}", namespace.unwrap_or("-")))
}

/// A Deployment, StatefulSet or DaemonSet.
pub(crate) fn is_workload(o: &Value) -> bool {
    matches!(
        o["kind"].as_str(),
        Some("Deployment" | "StatefulSet" | "DaemonSet")
    )
}

/// Every container and init container of every workload, with the workload's name.
pub(crate) fn containers(objects: &[Value]) -> Vec<(String, &Value)> {
    let mut all = Vec::new();
    for workload in objects.iter().filter(|o| is_workload(o)) {
        let spec = &workload["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                let name = format!(
                    "{}/{}",
                    workload["metadata"]["name"].as_str().unwrap_or("?"),
                    c["name"].as_str().unwrap_or("?")
                );
                all.push((name, c));
            }
        }
    }
    all
}

/// The container `name` of a workload's pod template.
pub(crate) fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {}", workload["metadata"]["name"]))
}

/// The pod volume behind `path` in `container`: the mount with the longest mountPath that
/// contains it.
pub(crate) fn volume_at<'a>(workload: &'a Value, container_name: &str, path: &Path) -> &'a Value {
    let c = container(workload, container_name);
    let mount = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["mountPath"].as_str().is_some_and(|p| path.starts_with(p)))
        .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len))
        .unwrap_or_else(|| panic!("{container_name} mounts nothing at {}", path.display()));
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]))
}

/// The file `path` as `container` sees it, when it comes from a ConfigMap volume.
pub(crate) fn config_file(
    objects: &[Value],
    workload: &Value,
    container_name: &str,
    path: &Path,
) -> String {
    let volume = volume_at(workload, container_name, path);
    let map = volume["configMap"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a ConfigMap", path.display()));
    let key = path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("a file name");
    let namespace = workload["metadata"]["namespace"]
        .as_str()
        .expect("a namespaced workload");
    config_map_data(objects, namespace, map, key)
}

/// `argv[0]` then the container's `args`.
pub(crate) fn argv(program: &str, c: &Value) -> Vec<String> {
    let args = c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().expect("string args").to_owned());
    std::iter::once(program.to_owned()).chain(args).collect()
}

/// The value after `flag` in a container's `args` (`-config x` form).
pub(crate) fn flag(c: &Value, flag: &str) -> PathBuf {
    let args = argv("-", c);
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{} has no {flag}", c["name"]));
    PathBuf::from(&args[at + 1])
}

pub(crate) fn server_config(objects: &[Value], workload: &Value) -> ServerConfig {
    let c = container(workload, "spire-server");
    let text = config_file(objects, workload, "spire-server", &flag(c, "-config"));
    let config = ServerConfig::from_text(&text, &Default::default()).expect("server.conf");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    config
}

pub(crate) fn agent_config(objects: &[Value], agent: &Value) -> AgentConfig {
    let text = config_file(
        objects,
        agent,
        "spire-agent",
        &flag(container(agent, "spire-agent"), "-config"),
    );
    AgentConfig::from_text(&text, &Default::default()).expect("agent.conf")
}

/// Probe ports and paths agree with the `health_checks` section, which listens on every
/// interface (the kubelet probes the pod's IP).
pub(crate) fn assert_health_probes(c: &Value, health: &spire_health::HealthConfig) {
    assert!(
        health.listener_enabled && health.bind_address == "0.0.0.0",
        "{health:?}"
    );
    for (probe, path) in [
        ("livenessProbe", &health.live_path),
        ("readinessProbe", &health.ready_path),
    ] {
        assert_eq!(
            c[probe]["httpGet"]["port"],
            u64::from(health.bind_port),
            "{} {probe}",
            c["name"]
        );
        assert_eq!(
            c[probe]["httpGet"]["path"],
            path.as_str(),
            "{} {probe}",
            c["name"]
        );
    }
}

/// The names of every object of `kind`.
pub(crate) fn names<'a>(objects: &'a [Value], kind: &str) -> BTreeSet<&'a str> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect()
}

/// The port of a container's HTTP probe (`livenessProbe`, `readinessProbe`).
pub(crate) fn http_probe_port(c: &Value, probe: &str) -> u64 {
    c[probe]["httpGet"]["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: no HTTP {probe}", c["name"]))
}
