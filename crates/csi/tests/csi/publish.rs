//! NodePublishVolume refusals (the bad-input catalogue `csi_node_publish.tsv`), and the
//! refusals and conditions of the other Node RPCs, over the socket with a mount recorder.

use std::collections::BTreeSet;
use std::sync::Arc;

use spiffe_csi::proto::v1::volume_capability::access_mode::Mode;
use spiffe_csi::proto::v1::volume_capability::{AccessType, BlockVolume};
use spiffe_csi::proto::v1::{
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeUnpublishVolumeRequest,
};
use spiffe_csi::publish::EPHEMERAL_CONTEXT_KEY;
use tonic::Code;

use crate::support::{Call, Harness, RecordingMounter, SLEEP_POD, kubelet_publish};

/// The project's bad-input catalogue for this surface.
const CATALOGUE: &str = include_str!("../../../../test/bad-input/csi_node_publish.tsv");

type Defect = fn(&mut NodePublishVolumeRequest);

fn capability(
    request: &mut NodePublishVolumeRequest,
) -> &mut spiffe_csi::proto::v1::VolumeCapability {
    request.volume_capability.as_mut().unwrap()
}

fn mount(
    request: &mut NodePublishVolumeRequest,
) -> &mut spiffe_csi::proto::v1::volume_capability::MountVolume {
    match capability(request).access_type.as_mut().unwrap() {
        AccessType::Mount(mount) => mount,
        AccessType::Block(_) => panic!("not a mount"),
    }
}

/// Every catalogue case, in the order the driver checks: each one's defect breaks exactly
/// that check of an otherwise valid request.
const DEFECTS: &[(&str, Defect)] = &[
    ("no volume id", |r| r.volume_id.clear()),
    ("no target path", |r| r.target_path.clear()),
    ("no volume capability", |r| r.volume_capability = None),
    ("no access type", |r| capability(r).access_type = None),
    ("block access type", |r| {
        capability(r).access_type = Some(AccessType::Block(BlockVolume {}))
    }),
    ("mount with fs_type", |r| mount(r).fs_type = "ext4".into()),
    ("mount with mount_flags", |r| {
        mount(r).mount_flags = vec!["nosuid".into()]
    }),
    ("no access mode", |r| capability(r).access_mode = None),
    ("SINGLE_NODE_READER_ONLY access mode", |r| {
        capability(r).access_mode.as_mut().unwrap().mode = Mode::SingleNodeReaderOnly as i32
    }),
    ("no ephemeral volume context", |r| {
        r.volume_context.remove(EPHEMERAL_CONTEXT_KEY);
    }),
    ("ephemeral context not \"true\"", |r| {
        r.volume_context
            .insert(EPHEMERAL_CONTEXT_KEY.into(), "True".into());
    }),
];

/// The catalogue row `case`: (code, message).
fn row(case: &str) -> (Code, String) {
    let cols = CATALOGUE
        .lines()
        .skip(1)
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|cols| cols[1] == case)
        .unwrap_or_else(|| panic!("no catalogue row {case:?}"));
    let code = match cols[2] {
        "InvalidArgument" => Code::InvalidArgument,
        "Internal" => Code::Internal,
        other => panic!("unexpected code {other}"),
    };
    (code, cols[3].to_owned())
}

#[test]
fn every_catalogue_row_is_well_formed_and_tested() {
    let mut cases = BTreeSet::new();
    for line in CATALOGUE.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "{line}");
        assert_eq!(cols[0], "NodePublishVolume");
        assert!(cases.insert(cols[1]), "duplicate case {}", cols[1]);
        assert!(!cols[3].ends_with('…'), "exact messages only: {line}");
    }
    let tested: BTreeSet<&str> = DEFECTS.iter().map(|(case, _)| *case).collect();
    assert_eq!(cases, tested);
    assert_eq!(
        CATALOGUE.lines().next(),
        Some("surface\tcase\tcode\tmessage")
    );
}

/// Istio 1.14's volume (no `readOnly`), which the driver accepts; a defect is applied on top.
fn base(h: &Harness) -> NodePublishVolumeRequest {
    let csi = serde_json::json!({"driver": "csi.spiffe.io"});
    kubelet_publish(
        &SLEEP_POD,
        &csi,
        &h.target_path(SLEEP_POD.uid, "workload-socket"),
    )
}

async fn refusal(h: &Harness, request: NodePublishVolumeRequest) -> (Code, String) {
    let status = h
        .node()
        .node_publish_volume(request)
        .await
        .expect_err("refused");
    (status.code(), status.message().to_owned())
}

#[tokio::test]
async fn each_defect_alone_is_refused_with_its_row() {
    let recorder = Arc::new(RecordingMounter::default());
    let h = Harness::start(recorder.clone()).await;
    for (case, defect) in DEFECTS {
        let mut request = base(&h);
        defect(&mut request);
        assert_eq!(refusal(&h, request).await, row(case), "{case}");
    }
    assert_eq!(recorder.calls(), [], "nothing was mounted");
    assert!(
        !h.target_path(SLEEP_POD.uid, "workload-socket").exists(),
        "refusals create no target"
    );
}

/// The checks run in catalogue order: with every later defect present too, the earliest one
/// still answers.
#[tokio::test]
async fn the_first_failing_check_answers() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut request = base(&h);
    for (case, defect) in DEFECTS.iter().rev() {
        defect(&mut request);
        assert_eq!(refusal(&h, request.clone()).await, row(case), "{case}");
    }
}

#[tokio::test]
async fn unpublish_requires_a_volume_id_then_a_target_path() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut node = h.node();
    for (request, message) in [
        (
            NodeUnpublishVolumeRequest::default(),
            "request missing required volume id",
        ),
        (
            NodeUnpublishVolumeRequest {
                volume_id: "csi-1".into(),
                target_path: String::new(),
            },
            "request missing required target path",
        ),
    ] {
        let status = node.node_unpublish_volume(request).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, message)
        );
    }
}

#[tokio::test]
async fn publish_create_target_failure_is_internal() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    let mut request = base(&h);
    // The kubelet did not create the parent: mkdir is not recursive.
    let target = h.pods_dir.join("missing/volumes/kubernetes.io~csi/v/mount");
    request.target_path = target.to_str().unwrap().into();
    let status = h.node().node_publish_volume(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    let prefix = format!("unable to create target path {target:?}: ");
    assert!(
        status.message().starts_with(&prefix),
        "{}",
        status.message()
    );
}

/// Publish, publish again, stats, unpublish, unpublish again, as the kubelet drives it.
#[tokio::test]
async fn publish_is_idempotent_and_unpublish_undoes_it() {
    let recorder = Arc::new(RecordingMounter::default());
    let h = Harness::start(recorder.clone()).await;
    let mut node = h.node();
    let target = h.target_path(SLEEP_POD.uid, "workload-socket");
    let request = crate::support::read_only_publish(&target);
    let volume_id = request.volume_id.clone();

    node.node_publish_volume(request.clone()).await.unwrap();
    assert!(target.is_dir(), "the driver creates the target");
    node.node_publish_volume(request).await.unwrap();
    let bind = Call::Bind {
        source: h.socket_dir.clone(),
        target: target.clone(),
        read_only: false,
    };
    assert_eq!(
        recorder.calls(),
        std::slice::from_ref(&bind),
        "one bind for two publishes"
    );

    let stats = |path: &std::path::Path| NodeGetVolumeStatsRequest {
        volume_id: volume_id.clone(),
        volume_path: path.to_str().unwrap().into(),
        staging_target_path: String::new(),
    };
    let condition = node
        .node_get_volume_stats(stats(&target))
        .await
        .unwrap()
        .into_inner();
    assert!(condition.usage.is_empty());
    let condition = condition.volume_condition.unwrap();
    assert!(!condition.abnormal);
    assert_eq!(condition.message, "mounted");

    let unpublish = NodeUnpublishVolumeRequest {
        volume_id: volume_id.clone(),
        target_path: target.to_str().unwrap().into(),
    };
    node.node_unpublish_volume(unpublish.clone()).await.unwrap();
    assert!(!target.exists(), "the target is removed");
    assert_eq!(recorder.calls(), [bind, Call::Unmount(target.clone())]);
    // Again (a kubelet retry): nothing mounted, nothing to remove, still OK.
    node.node_unpublish_volume(unpublish).await.unwrap();
    assert_eq!(recorder.calls().len(), 2);

    let condition = node
        .node_get_volume_stats(stats(&target))
        .await
        .unwrap()
        .into_inner()
        .volume_condition
        .unwrap();
    assert!(condition.abnormal);
    assert_eq!(condition.message, "volume path is not mounted");
}
