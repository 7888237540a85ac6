//! NodePublishVolume's request checks, in spiffe-csi's order and words, and what a valid
//! request asks for.

use std::path::PathBuf;

use tonic::Status;

use crate::proto::v1::NodePublishVolumeRequest;
use crate::proto::v1::volume_capability::AccessType;
use crate::proto::v1::volume_capability::access_mode::Mode;

/// The volume context key the kubelet sets to `"true"` for inline (ephemeral) volumes.
pub const EPHEMERAL_CONTEXT_KEY: &str = "csi.storage.k8s.io/ephemeral";

/// What a valid NodePublishVolume asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publish {
    /// Where the socket directory goes.
    pub(crate) target: PathBuf,
    /// The pod volume's `csi.readOnly`. spiffe-csi ≥0.2.0 refuses `false`; we accept it as
    /// v0.1.0 did (Istio 1.14's sidecar template leaves it unset) and mount read-only.
    pub(crate) readonly_requested: bool,
}

// === impl Publish ===

impl Publish {
    /// Whether the host-side bind mount is read-only. With `csi.readOnly: true` the kubelet
    /// makes every container mount read-only, so the host mount stays writable (file
    /// attributes, e.g. SELinux labels, can still change); otherwise the host mount itself is
    /// what keeps workloads from writing.
    pub(crate) fn read_only_mount(&self) -> bool {
        !self.readonly_requested
    }
}

/// Checks `request` in spiffe-csi's order; the first failed check answers, always
/// InvalidArgument.
pub(crate) fn check(request: &NodePublishVolumeRequest) -> Result<Publish, Status> {
    let refuse = |message: &str| Err(Status::invalid_argument(message));
    if request.volume_id.is_empty() {
        return refuse("request missing required volume id");
    }
    if request.target_path.is_empty() {
        return refuse("request missing required target path");
    }
    let Some(capability) = &request.volume_capability else {
        return refuse("request missing required volume capability");
    };
    let Some(access_type) = &capability.access_type else {
        return refuse("request missing required volume capability access type");
    };
    let simple_mount = matches!(
        access_type,
        AccessType::Mount(mount) if mount.fs_type.is_empty() && mount.mount_flags.is_empty()
    );
    if !simple_mount {
        return refuse("request volume capability access type must be a simple mount");
    }
    let Some(access_mode) = &capability.access_mode else {
        return refuse("request missing required volume capability access mode");
    };
    if access_mode.mode == Mode::SingleNodeReaderOnly as i32 {
        return refuse("request volume capability access mode is not valid");
    }
    if request
        .volume_context
        .get(EPHEMERAL_CONTEXT_KEY)
        .map(String::as_str)
        != Some("true")
    {
        return refuse("only ephemeral volumes are supported");
    }
    Ok(Publish {
        target: PathBuf::from(&request.target_path),
        readonly_requested: request.readonly,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::proto::v1::VolumeCapability;
    use crate::proto::v1::volume_capability::{AccessMode, MountVolume};

    fn valid(readonly: bool) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: "csi-1".into(),
            target_path: "/pods/u/volumes/kubernetes.io~csi/v/mount".into(),
            volume_capability: Some(VolumeCapability {
                access_type: Some(AccessType::Mount(MountVolume::default())),
                access_mode: Some(AccessMode {
                    mode: Mode::SingleNodeWriter as i32,
                }),
            }),
            readonly,
            volume_context: [(EPHEMERAL_CONTEXT_KEY.to_owned(), "true".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn read_only_volumes_get_a_writable_host_mount() {
        let publish = check(&valid(true)).unwrap();
        assert_eq!(
            publish.target,
            PathBuf::from("/pods/u/volumes/kubernetes.io~csi/v/mount")
        );
        assert!(!publish.read_only_mount());
    }

    #[test]
    fn volumes_without_read_only_get_a_read_only_host_mount() {
        let publish = check(&valid(false)).unwrap();
        assert!(!publish.readonly_requested && publish.read_only_mount());
    }

    #[test]
    fn other_writer_modes_and_a_mount_group_are_accepted() {
        for mode in [
            Mode::Unknown,
            Mode::MultiNodeReaderOnly,
            Mode::SingleNodeMultiWriter,
            Mode::MultiNodeMultiWriter,
        ] {
            let mut request = valid(true);
            let capability = request.volume_capability.as_mut().unwrap();
            capability.access_mode = Some(AccessMode { mode: mode as i32 });
            capability.access_type = Some(AccessType::Mount(MountVolume {
                volume_mount_group: "1000".into(),
                ..Default::default()
            }));
            assert!(check(&request).is_ok(), "{mode:?}");
        }
    }
}
