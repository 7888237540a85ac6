//! What the registrar and the kubelet ask before any volume: the Identity service, the Node
//! capabilities and info, and the RPCs and services the driver does not serve.

use std::sync::Arc;

use spiffe_csi::proto::v1::node_service_capability::rpc::Type as RpcType;
use spiffe_csi::proto::v1::node_service_capability::{Rpc, Type as Capability};
use spiffe_csi::proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, GetPluginInfoResponse,
    NodeExpandVolumeRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest,
    NodeStageVolumeRequest, NodeUnstageVolumeRequest, ProbeRequest,
};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use crate::support::{Harness, NODE_ID, PLUGIN_NAME, RecordingMounter};

#[tokio::test]
async fn identity_reports_the_plugin_name_version_no_capabilities_and_ready() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut identity = h.identity();
    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, PLUGIN_NAME);
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    assert!(info.manifest.is_empty());

    let capabilities = identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capabilities.capabilities, [], "no CONTROLLER_SERVICE");

    let probe = identity.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, None, "unset means ready");
}

#[tokio::test]
async fn node_reports_volume_condition_and_stats_and_its_node_id() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut node = h.node();
    let capabilities: Vec<_> = node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .into_iter()
        .map(|c| match c.r#type {
            Some(Capability::Rpc(Rpc { r#type })) => RpcType::try_from(r#type).unwrap(),
            other => panic!("unexpected capability {other:?}"),
        })
        .collect();
    assert_eq!(
        capabilities,
        [RpcType::VolumeCondition, RpcType::GetVolumeStats],
        "no STAGE_UNSTAGE_VOLUME"
    );

    let info = node
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, NODE_ID);
    assert_eq!(info.max_volumes_per_node, 0);
    assert_eq!(info.accessible_topology, None);
}

#[tokio::test]
async fn staging_and_expansion_are_unimplemented() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut node = h.node();
    let stage = node
        .node_stage_volume(NodeStageVolumeRequest::default())
        .await
        .unwrap_err();
    let unstage = node
        .node_unstage_volume(NodeUnstageVolumeRequest::default())
        .await
        .unwrap_err();
    let expand = node
        .node_expand_volume(NodeExpandVolumeRequest::default())
        .await
        .unwrap_err();
    for (status, method) in [
        (stage, "NodeStageVolume"),
        (unstage, "NodeUnstageVolume"),
        (expand, "NodeExpandVolume"),
    ] {
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(status.message(), format!("method {method} not implemented"));
    }
}

#[tokio::test]
async fn the_controller_service_is_not_served() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut grpc = tonic::client::Grpc::new(h.channel.clone());
    grpc.ready().await.unwrap();
    let answer: Result<tonic::Response<GetPluginInfoResponse>, _> = grpc
        .unary(
            tonic::Request::new(GetPluginInfoRequest {}),
            PathAndQuery::from_static("/csi.v1.Controller/ControllerGetCapabilities"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(answer.unwrap_err().code(), Code::Unimplemented);
}
