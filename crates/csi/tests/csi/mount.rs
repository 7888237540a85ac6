//! Real bind mounts (root only; CI runs as root and must not skip these).

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use spiffe_csi::mountinfo;
use spiffe_csi::proto::v1::{NodeGetVolumeStatsRequest, NodeUnpublishVolumeRequest};

use crate::support::{
    Harness, MountGuard, SLEEP_POD, can_mount, kubelet_publish, read_only_publish,
};

/// How many mounts sit on `path` in this process's mount table.
fn mounts_on(path: &Path) -> usize {
    let table = std::fs::read(mountinfo::PROC_SELF_MOUNTINFO).unwrap();
    mountinfo::mount_points(&table)
        .filter(|point| point == path.to_str().unwrap().as_bytes())
        .count()
}

fn same_directory(a: &Path, b: &Path) -> bool {
    let (a, b) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn stats(target: &Path) -> NodeGetVolumeStatsRequest {
    NodeGetVolumeStatsRequest {
        volume_id: "csi-1".into(),
        volume_path: target.to_str().unwrap().into(),
        staging_target_path: String::new(),
    }
}

fn unpublish(target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: "csi-1".into(),
        target_path: target.to_str().unwrap().into(),
    }
}

#[tokio::test]
async fn publish_bind_mounts_the_socket_directory_until_unpublish() {
    if !can_mount() {
        return;
    }
    let h = Harness::start_system().await;
    let mut node = h.node();
    let target = h.target_path(SLEEP_POD.uid, "workload-socket");
    let _guard = MountGuard(target.clone());

    node.node_publish_volume(read_only_publish(&target))
        .await
        .unwrap();
    assert_eq!(mounts_on(&target), 1);
    assert!(same_directory(&target, &h.socket_dir));
    assert!(target.join("socket").exists(), "the agent's socket shows");
    std::fs::write(h.socket_dir.join("late"), b"x").unwrap();
    assert_eq!(std::fs::read(target.join("late")).unwrap(), b"x");
    // readOnly: true volumes get a writable host mount (containers get it read-only).
    std::fs::write(target.join("host-writable"), b"y").unwrap();

    // The kubelet retries: OK, and still one mount.
    node.node_publish_volume(read_only_publish(&target))
        .await
        .unwrap();
    assert_eq!(mounts_on(&target), 1);

    let condition = node
        .node_get_volume_stats(stats(&target))
        .await
        .unwrap()
        .into_inner()
        .volume_condition
        .unwrap();
    assert!(!condition.abnormal, "{}", condition.message);
    assert_eq!(condition.message, "mounted");

    node.node_unpublish_volume(unpublish(&target))
        .await
        .unwrap();
    assert_eq!(mounts_on(&target), 0);
    assert!(!target.exists(), "the target is removed");
    assert!(
        h.socket_dir.join("socket").exists(),
        "the source is untouched"
    );
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

/// Istio 1.14's volume (no `readOnly`): the host mount itself is read-only, the source stays
/// writable for the agent.
#[tokio::test]
async fn volumes_without_read_only_get_a_read_only_bind_mount() {
    if !can_mount() {
        return;
    }
    let h = Harness::start_system().await;
    let mut node = h.node();
    let target = h.target_path(SLEEP_POD.uid, "workload-socket");
    let _guard = MountGuard(target.clone());
    let csi = serde_json::json!({"driver": "csi.spiffe.io"});

    node.node_publish_volume(kubelet_publish(&SLEEP_POD, &csi, &target))
        .await
        .unwrap();
    assert_eq!(mounts_on(&target), 1);
    assert!(target.join("socket").exists());
    let write = std::fs::write(target.join("x"), b"x").unwrap_err();
    assert_eq!(write.kind(), io::ErrorKind::ReadOnlyFilesystem, "{write}");
    std::fs::write(h.socket_dir.join("rotated"), b"z").unwrap();
    assert_eq!(std::fs::read(target.join("rotated")).unwrap(), b"z");

    node.node_unpublish_volume(unpublish(&target))
        .await
        .unwrap();
    assert_eq!(mounts_on(&target), 0);
    assert!(!target.exists());
}

/// A target that something else mounted already (a kubelet retry after a lost answer, or a
/// restart of the driver): publish answers OK without stacking a second mount.
#[tokio::test]
async fn an_existing_mount_on_the_target_is_left_as_it_is() {
    if !can_mount() {
        return;
    }
    let h = Harness::start_system().await;
    let target = h.target_path(SLEEP_POD.uid, "workload-socket");
    std::fs::create_dir(&target).unwrap();
    let _guard = MountGuard(target.clone());
    rustix::mount::mount_bind(&h.socket_dir, &target).unwrap();

    h.node()
        .node_publish_volume(read_only_publish(&target))
        .await
        .unwrap();
    assert_eq!(mounts_on(&target), 1);
}
