//! Layout (c), the mesh side: the IstioOperator's `spire` template and the sleep sample.

use std::path::Path;

use serde_json::Value;
use spire_test::manifest_objects;

use super::objects::{agent_config, deploy_dir, get, render};

#[test]
fn istio_operator_and_sleep_sample_mount_the_agent_socket_from_our_csi_driver() {
    let Some(objects) = render("istio") else {
        return;
    };
    let sleep = get(&objects, "Deployment", None, "sleep");
    let template = &sleep["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["inject.istio.io/templates"],
        "sidecar,spire"
    );
    get(&objects, "ServiceAccount", None, "sleep");
    get(&objects, "Service", None, "sleep");

    // (b)'s ClusterSPIFFEID selects it.
    let Some(ids) = render("quickstart/clusterspiffeid") else {
        return;
    };
    let id = get(&ids, "ClusterSPIFFEID", None, "example");
    for (key, value) in id["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&template["metadata"]["labels"][key], value);
    }

    let operator = manifest_objects(&deploy_dir().join("istio/istio-spire-config.yaml"));
    let [operator] = &operator[..] else {
        panic!("one IstioOperator")
    };
    assert_eq!(operator["kind"], "IstioOperator");
    let Some(quickstart) = render("quickstart") else {
        return;
    };
    let agent = agent_config(
        &quickstart,
        get(&quickstart, "DaemonSet", Some("spire"), "spire-agent"),
    );
    assert_eq!(
        operator["spec"]["meshConfig"]["trustDomain"],
        agent.trust_domain.to_string()
    );
    let socket_dir = agent
        .socket_path
        .parent()
        .and_then(Path::to_str)
        .expect("socket dir");

    let text = operator["spec"]["values"]["sidecarInjectorWebhook"]["templates"]["spire"]
        .as_str()
        .expect("the spire template");
    let fragment: Value = serde_saphyr::from_str(text).expect("the template is YAML");
    let proxy = &fragment["spec"]["containers"][0];
    assert_eq!(proxy["name"], "istio-proxy");
    assert_eq!(proxy["volumeMounts"][0]["mountPath"], socket_dir);
    assert_eq!(
        fragment["spec"]["volumes"][0]["csi"]["driver"],
        "csi.spiffe.io"
    );
    assert_eq!(
        proxy["volumeMounts"][0]["name"],
        fragment["spec"]["volumes"][0]["name"]
    );
    let patches =
        &operator["spec"]["components"]["ingressGateways"][0]["k8s"]["overlays"][0]["patches"];
    assert_eq!(patches[0]["value"]["csi"]["driver"], "csi.spiffe.io");
    assert_eq!(patches[1]["value"]["mountPath"], socket_dir);
}
