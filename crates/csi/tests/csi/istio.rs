//! The seed's pods must start: Istio 1.14's `spire` sidecar template mounts the driver's
//! volume without `csi.readOnly`, which spiffe-csi ≥0.2.0 refuses. We accept it (read-only
//! host mount, a warning), driven the way the registrar and the kubelet drive it.

use std::sync::Arc;

use serde_json::Value;
use spiffe_csi::proto::v1::{GetPluginInfoRequest, NodeGetInfoRequest};

use crate::support::{
    Call, Harness, LogCapture, NODE_ID, RecordingMounter, SLEEP_POD, kubelet_publish,
};

/// Our restatement of what the template asks of the pod: the proxy mounts `workload-socket`
/// read-only, and the volume is an inline `csi.spiffe.io` volume without `readOnly`. Runs
/// without the shared testdata; [`shared_template_says_the_same`] keeps it honest.
const INLINE_TEMPLATE: &str = r#"
spec:
  containers:
  - name: istio-proxy
    volumeMounts:
    - name: workload-socket
      mountPath: /run/secrets/workload-spiffe-uds
      readOnly: true
  volumes:
  - name: workload-socket
    csi:
      driver: "csi.spiffe.io"
"#;

/// The `csi` source of the template's `workload-socket` volume.
fn workload_socket_csi(template: &str) -> Value {
    let spec: Value = serde_saphyr::from_str(template).unwrap();
    spec["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "workload-socket")
        .expect("a workload-socket volume")["csi"]
        .clone()
}

/// The `spire` template from Istio 1.14's `istio-spire-config.yaml`, verbatim (`None`, after
/// saying why, when the shared testdata is absent).
fn shared_template() -> Option<String> {
    let dir = spire_test::shared_testdata("istio-1.14-samples")?;
    let objects = spire_test::manifest_objects(&dir.join("istio-spire-config.yaml"));
    let operator = objects
        .iter()
        .find(|o| o["kind"] == "IstioOperator")
        .expect("an IstioOperator");
    let template = &operator["spec"]["values"]["sidecarInjectorWebhook"]["templates"]["spire"];
    Some(template.as_str().expect("the spire template").to_owned())
}

#[test]
fn shared_template_says_the_same() {
    let Some(template) = shared_template() else {
        return;
    };
    assert_eq!(
        workload_socket_csi(&template),
        workload_socket_csi(INLINE_TEMPLATE)
    );
    let spec: Value = serde_saphyr::from_str(&template).unwrap();
    let inline: Value = serde_saphyr::from_str(INLINE_TEMPLATE).unwrap();
    assert_eq!(spec["spec"]["containers"], inline["spec"]["containers"]);
}

/// Registrar, then kubelet: GetPluginInfo (the name must be the template's driver), then
/// NodeGetInfo, then NodePublishVolume for the sleep pod's volume.
async fn registrar_then_kubelet_publish(csi: &Value) {
    assert_eq!(csi.get("readOnly"), None, "the template sets no readOnly");
    let logs = LogCapture::default();
    let _capture = logs.install();
    let recorder = Arc::new(RecordingMounter::default());
    let h = Harness::start(recorder.clone()).await;

    let info = h
        .identity()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(Some(info.name.as_str()), csi["driver"].as_str());
    let node = h
        .node()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.node_id, NODE_ID);

    let target = h.target_path(SLEEP_POD.uid, "workload-socket");
    let request = kubelet_publish(&SLEEP_POD, csi, &target);
    assert!(!request.readonly);
    h.node().node_publish_volume(request).await.unwrap();
    assert_eq!(
        recorder.calls(),
        [Call::Bind {
            source: h.socket_dir.clone(),
            target,
            read_only: true,
        }]
    );
    let text = logs.text();
    let warning = text
        .lines()
        .find(|line| line.contains("pod.spec.volumes[].csi.readOnly is not 'true'"))
        .unwrap_or_else(|| panic!("no warning in:\n{text}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("read-only"), "{warning}");
}

#[tokio::test]
async fn inline_istio_1_14_volume_is_published_read_only_with_a_warning() {
    registrar_then_kubelet_publish(&workload_socket_csi(INLINE_TEMPLATE)).await;
}

#[tokio::test]
async fn seed_istio_1_14_template_verbatim_is_published_read_only_with_a_warning() {
    let Some(template) = shared_template() else {
        return;
    };
    registrar_then_kubelet_publish(&workload_socket_csi(&template)).await;
}

/// Current Istio sets `readOnly: true`: no warning, a writable host mount.
#[tokio::test]
async fn read_only_volumes_publish_without_a_warning() {
    let logs = LogCapture::default();
    let _capture = logs.install();
    let recorder = Arc::new(RecordingMounter::default());
    let h = Harness::start(recorder.clone()).await;
    let target = h.target_path(SLEEP_POD.uid, "workload-socket");
    h.node()
        .node_publish_volume(crate::support::read_only_publish(&target))
        .await
        .unwrap();
    assert_eq!(
        recorder.calls(),
        [Call::Bind {
            source: h.socket_dir.clone(),
            target,
            read_only: false,
        }]
    );
    let text = logs.text();
    assert!(!text.contains("WARN"), "{text}");
    assert!(text.contains("Volume published"), "{text}");
}
