//! The users' originals: the seed guide's clean-up list (and the README's corrected copy),
//! and Istio's two quickstart files, which the layouts must match object for object.

use std::collections::BTreeSet;

use serde_json::Value;
use spire_test::{manifest_objects, shared_testdata};

use super::objects::{container, deploy_dir, get, is_workload, render};

/// The clean-up commands of the seed's guide ("清理 SPIRE"), verbatim.
pub(crate) const SEED_CLEANUP: &str = "\
kubectl delete CustomResourceDefinition spiffeids.spiffeid.spiffe.io
kubectl delete -n spire serviceaccount spire-agent
kubectl delete -n spire configmap spire-agent
kubectl delete -n spire deployment spire-agent
kubectl delete csidriver csi.spiffe.io
kubectl delete -n spire configmap spire-server
kubectl delete -n spire service spire-server
kubectl delete -n spire serviceaccount spire-server
kubectl delete -n spire statefulset spire-server
kubectl delete clusterrole spire-server-trust-role spire-agent-cluster-role
kubectl delete clusterrolebinding spire-server-trust-role-binding spire-agent-cluster-role-binding
kubectl delete namespace spire";

/// The seed's line that fails (the agent is a DaemonSet), and the one the README gives instead.
pub(crate) const SEED_DEPLOYMENT_LINE: &str = "kubectl delete -n spire deployment spire-agent";
pub(crate) const CORRECTED_LINE: &str = "kubectl delete -n spire daemonset spire-agent";

/// `kubectl delete [-n ns] <kind> <name>…` → (kind, namespace, names).
pub(crate) fn delete_command(line: &str) -> (String, Option<String>, Vec<String>) {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[..2], ["kubectl", "delete"], "{line}");
    words.drain(..2);
    let namespace = (words.first() == Some(&"-n")).then(|| {
        let ns = words[1].to_owned();
        words.drain(..2);
        ns
    });
    let kind = match words[0].to_ascii_lowercase().as_str() {
        "customresourcedefinition" => "CustomResourceDefinition",
        "serviceaccount" => "ServiceAccount",
        "configmap" => "ConfigMap",
        "deployment" => "Deployment",
        "daemonset" => "DaemonSet",
        "csidriver" => "CSIDriver",
        "service" => "Service",
        "statefulset" => "StatefulSet",
        "clusterrole" => "ClusterRole",
        "clusterrolebinding" => "ClusterRoleBinding",
        "namespace" => "Namespace",
        other => panic!("unexpected kind {other} in {line}"),
    };
    (
        kind.to_owned(),
        namespace,
        words[1..].iter().map(|w| (*w).to_owned()).collect(),
    )
}

/// The clean-up block the README gives for layout (a).
pub(crate) fn readme_cleanup() -> Vec<String> {
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).expect("deploy/README.md");
    let (_, after) = readme
        .split_once("<!-- clean-up: quickstart-2022 -->")
        .expect("the README marks its clean-up block");
    let block = after
        .split("```")
        .nth(1)
        .expect("a fenced block after the marker");
    block
        .lines()
        .filter(|l| l.starts_with("kubectl "))
        .map(str::to_owned)
        .collect()
}

// === Istio's files ===

/// (kind, namespace, name) of every object.
fn keys(objects: &[Value]) -> BTreeSet<(String, Option<String>, String)> {
    objects
        .iter()
        .map(|o| {
            let field = |v: &Value| v.as_str().map(str::to_owned);
            let name = field(&o["metadata"]["name"]).expect("a name");
            (
                field(&o["kind"]).expect("a kind"),
                field(&o["metadata"]["namespace"]),
                name,
            )
        })
        .collect()
}

/// Every object of Istio's quickstart (`<sub>/spire-quickstart.yaml`) is in `layout` under the
/// same kind, namespace and name, except `folded`; what we add is exactly `added`; and each
/// workload keeps Istio's container names.
fn assert_same_objects(sub: &str, layout: &str, folded: &[&str], added: &[&str]) {
    let Some(dir) = shared_testdata(sub) else {
        return;
    };
    let Some(ours) = render(layout) else {
        return;
    };
    let theirs = manifest_objects(&dir.join("spire-quickstart.yaml"));
    let (ours_keys, theirs_keys) = (keys(&ours), keys(&theirs));
    let name_set = |set: Vec<&(String, Option<String>, String)>| -> BTreeSet<String> {
        set.into_iter()
            .map(|(kind, _, name)| format!("{kind} {name}"))
            .collect()
    };
    let missing = name_set(theirs_keys.difference(&ours_keys).collect());
    let extra = name_set(ours_keys.difference(&theirs_keys).collect());
    let want = |list: &[&str]| {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        missing,
        want(folded),
        "{layout}: Istio's objects we do not have"
    );
    assert_eq!(
        extra,
        want(added),
        "{layout}: objects Istio's file does not have"
    );
    for workload in theirs.iter().filter(|o| is_workload(o)) {
        let (kind, name) = (
            workload["kind"].as_str().expect("kind"),
            workload["metadata"]["name"].as_str().expect("name"),
        );
        let ours_workload = get(&ours, kind, Some("spire"), name);
        for c in workload["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
        {
            container(ours_workload, c["name"].as_str().expect("container name"));
        }
    }
}

#[test]
fn quickstart_2022_has_every_object_of_istio_1_14s_file_but_the_registrar_role() {
    assert_same_objects(
        "istio-1.14-samples",
        "quickstart-2022",
        &[
            "ClusterRole k8s-workload-registrar-role",
            "ClusterRoleBinding k8s-workload-registrar-role-binding",
        ],
        &[
            "Role spire-server-role",
            "RoleBinding spire-server-role-binding",
        ],
    );
}

#[test]
fn quickstart_has_every_object_of_istios_file_and_the_clusterstaticentry_crd() {
    assert_same_objects(
        "istio-samples",
        "quickstart",
        &[],
        &["CustomResourceDefinition clusterstaticentries.spire.spiffe.io"],
    );
}

/// The seed document's own clean-up block is [`SEED_CLEANUP`].
#[test]
fn seed_cleanup_is_the_guides() {
    let Some(dir) = shared_testdata("../seed") else {
        return;
    };
    let guide =
        std::fs::read_to_string(dir.join("istio-spire-integration.zh.md")).expect("the seed guide");
    let (_, cleanup) = guide
        .split_once("## 清理 SPIRE")
        .expect("the guide's clean-up section");
    let commands: Vec<&str> = cleanup
        .lines()
        .filter_map(|l| l.trim().strip_prefix("$ "))
        .collect();
    assert_eq!(commands, SEED_CLEANUP.lines().collect::<Vec<_>>());
}
