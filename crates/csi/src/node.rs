//! The CSI Node service: publishing the Workload API socket directory into pod volumes.

use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::mount::Mounter;
use crate::proto::v1::node_server::{Node, NodeServer};
use crate::proto::v1::node_service_capability::rpc::Type as RpcType;
use crate::proto::v1::node_service_capability::{Rpc, Type as Capability};
use crate::proto::v1::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, VolumeCondition,
};
use crate::publish::{self, Publish};

/// Mode of a target directory the driver creates.
const TARGET_DIR_MODE: u32 = 0o750;

/// `csi.v1.Node` for ephemeral inline volumes that all show one directory (the agent's socket
/// directory): publish bind-mounts it on the target, unpublish unmounts and removes the
/// target, volume stats report whether the mount is still there. Staging and expansion are
/// not supported (Unimplemented).
#[derive(Debug, Clone)]
pub struct NodeService {
    node_id: String,
    socket_dir: PathBuf,
    mounter: Arc<dyn Mounter>,
}

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    /// A new bind mount.
    Mounted,
    /// The target was a mount point already (a kubelet retry): nothing to do.
    AlreadyMounted,
}

// === impl NodeService ===

impl NodeService {
    /// Publishes `socket_dir` for node `node_id`, mounting through `mounter`.
    pub fn new(
        node_id: impl Into<String>,
        socket_dir: impl Into<PathBuf>,
        mounter: Arc<dyn Mounter>,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            socket_dir: socket_dir.into(),
            mounter,
        }
    }

    /// The tonic server.
    pub fn into_server(self) -> NodeServer<Self> {
        NodeServer::new(self)
    }

    /// Runs blocking file-system work for a request on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Mounter) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let mounter = Arc::clone(&self.mounter);
        tokio::task::spawn_blocking(move || work(mounter.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("volume operation did not complete: {e}")))?
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        _request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(not_implemented("NodeStageVolume"))
    }

    async fn node_unstage_volume(
        &self,
        _request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(not_implemented("NodeUnstageVolume"))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let request = request.into_inner();
        let volume_id = request.volume_id.clone();
        let target_path = request.target_path.clone();
        let access_mode = request
            .volume_capability
            .as_ref()
            .and_then(|c| c.access_mode.as_ref())
            .map(|m| m.mode);
        let publish = publish::check(&request).inspect_err(|status| {
            tracing::error!(
                volume_id,
                target_path,
                access_mode,
                error = status.message(),
                "Failed to publish volume"
            );
        })?;
        if !publish.readonly_requested {
            tracing::warn!(
                volume_id,
                target_path,
                "pod.spec.volumes[].csi.readOnly is not 'true'; mounting the Workload API \
                 socket directory read-only instead (as spiffe-csi 0.1.0 did)"
            );
        }
        let read_only = publish.read_only_mount();
        let source = self.socket_dir.clone();
        let published = self
            .blocking(move |mounter| publish_blocking(mounter, &source, &publish))
            .await
            .inspect_err(|status| {
                tracing::error!(
                    volume_id,
                    target_path,
                    error = status.message(),
                    "Failed to publish volume"
                );
            })?;
        match published {
            Published::Mounted => {
                tracing::info!(volume_id, target_path, read_only, "Volume published");
            }
            Published::AlreadyMounted => {
                tracing::info!(volume_id, target_path, "Volume already published");
            }
        }
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let NodeUnpublishVolumeRequest {
            volume_id,
            target_path,
        } = request.into_inner();
        let checked = if volume_id.is_empty() {
            Err(Status::invalid_argument(
                "request missing required volume id",
            ))
        } else if target_path.is_empty() {
            Err(Status::invalid_argument(
                "request missing required target path",
            ))
        } else {
            let target = PathBuf::from(&target_path);
            self.blocking(move |mounter| unpublish_blocking(mounter, &target))
                .await
        };
        if let Err(status) = &checked {
            tracing::error!(
                volume_id,
                target_path,
                error = status.message(),
                "Failed to unpublish volume"
            );
        }
        checked?;
        tracing::info!(volume_id, target_path, "Volume unpublished");
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let request = request.into_inner();
        let path = PathBuf::from(&request.volume_path);
        let condition = self
            .blocking(move |mounter| Ok(volume_condition(mounter, &path)))
            .await?;
        if condition.abnormal {
            tracing::warn!(
                volume_id = request.volume_id,
                volume_path = request.volume_path,
                error = condition.message,
                "Volume is unhealthy"
            );
        } else {
            tracing::debug!(
                volume_id = request.volume_id,
                volume_path = request.volume_path,
                "Volume is healthy"
            );
        }
        Ok(Response::new(NodeGetVolumeStatsResponse {
            usage: Vec::new(),
            volume_condition: Some(condition),
        }))
    }

    async fn node_expand_volume(
        &self,
        _request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(not_implemented("NodeExpandVolume"))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        let rpc = |kind: RpcType| NodeServiceCapability {
            r#type: Some(Capability::Rpc(Rpc {
                r#type: kind as i32,
            })),
        };
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![rpc(RpcType::VolumeCondition), rpc(RpcType::GetVolumeStats)],
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

/// Creates the target directory and bind-mounts `source` on it, unless it is a mount point
/// already.
fn publish_blocking(
    mounter: &dyn Mounter,
    source: &Path,
    publish: &Publish,
) -> Result<Published, Status> {
    let target = &publish.target;
    match std::fs::DirBuilder::new()
        .mode(TARGET_DIR_MODE)
        .create(target)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Status::internal(format!(
                "unable to create target path {target:?}: {e}"
            )));
        }
    }
    let mounted = mounter
        .is_mount_point(target)
        .map_err(|e| Status::internal(format!("unable to verify mount point {target:?}: {e}")))?;
    if mounted {
        return Ok(Published::AlreadyMounted);
    }
    mounter
        .bind(source, target, publish.read_only_mount())
        .map_err(|e| Status::internal(format!("unable to mount {target:?}: {e}")))?;
    Ok(Published::Mounted)
}

/// Unmounts `target` if it is a mount point, then removes it (gone already is fine).
fn unpublish_blocking(mounter: &dyn Mounter, target: &Path) -> Result<(), Status> {
    let mounted = mounter
        .is_mount_point(target)
        .map_err(|e| Status::internal(format!("unable to verify mount point {target:?}: {e}")))?;
    if mounted {
        mounter
            .unmount(target)
            .map_err(|e| Status::internal(format!("unable to unmount {target:?}: {e}")))?;
    }
    let removed = match std::fs::remove_dir(target) {
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => std::fs::remove_file(target),
        other => other,
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Status::internal(format!(
            "unable to remove target path {target:?}: {e}"
        ))),
        _ => Ok(()),
    }
}

/// `mounted` when `path` is a mount point whose contents can be listed; otherwise abnormal,
/// with what went wrong.
fn volume_condition(mounter: &dyn Mounter, path: &Path) -> VolumeCondition {
    let abnormal = |message: String| VolumeCondition {
        abnormal: true,
        message,
    };
    match mounter.is_mount_point(path) {
        Err(e) => abnormal(format!(
            "failed to determine root for volume path mount: {e}"
        )),
        Ok(false) => abnormal("volume path is not mounted".to_owned()),
        Ok(true) => match std::fs::read_dir(path)
            .and_then(|mut entries| entries.try_for_each(|e| e.map(drop)))
        {
            Err(e) => abnormal(format!("unable to list contents of volume path: {e}")),
            Ok(()) => VolumeCondition {
                abnormal: false,
                message: "mounted".to_owned(),
            },
        },
    }
}

/// What gRPC-Go's generated servers answer for an RPC the plugin does not implement.
fn not_implemented(method: &str) -> Status {
    Status::unimplemented(format!("method {method} not implemented"))
}
