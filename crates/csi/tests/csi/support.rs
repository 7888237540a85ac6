//! The driver on a real Unix socket, tonic clients for it, a kubelet's NodePublishVolume, a
//! mount recorder for runs without privileges, and a log capture.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use spiffe_csi::proto::v1::identity_client::IdentityClient;
use spiffe_csi::proto::v1::node_client::NodeClient;
use spiffe_csi::proto::v1::volume_capability::access_mode::Mode;
use spiffe_csi::proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use spiffe_csi::proto::v1::{NodePublishVolumeRequest, VolumeCapability};
use spiffe_csi::publish::EPHEMERAL_CONTEXT_KEY;
use spiffe_csi::{Config, Driver, Mounter, SystemMounter};
use spire_task::Shutdown;
use tonic::transport::Channel;

pub(crate) const PLUGIN_NAME: &str = "csi.spiffe.io";
pub(crate) const NODE_ID: &str = "node-1";

/// A driver serving on `<tmp>/plugins/csi.spiffe.io/csi.sock`, publishing
/// `<tmp>/agent-sockets` (which holds a `socket` file, standing in for the agent's socket).
pub(crate) struct Harness {
    _tmp: tempfile::TempDir,
    pub(crate) csi_socket: PathBuf,
    pub(crate) socket_dir: PathBuf,
    /// Where the kubelet keeps pod volumes.
    pub(crate) pods_dir: PathBuf,
    pub(crate) channel: Channel,
    stop: Shutdown,
}

impl Harness {
    /// Starts the driver with `mounter` (inside a tokio runtime).
    pub(crate) async fn start(mounter: Arc<dyn Mounter>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let socket_dir = tmp.path().join("agent-sockets");
        std::fs::create_dir(&socket_dir).unwrap();
        std::fs::write(socket_dir.join("socket"), b"").unwrap();
        let pods_dir = tmp.path().join("pods");
        std::fs::create_dir(&pods_dir).unwrap();
        let csi_socket = tmp.path().join("plugins/csi.spiffe.io/csi.sock");
        let config = Config::new(NODE_ID, &socket_dir, &csi_socket, PLUGIN_NAME).unwrap();
        let listener = spiffe_csi::listen(config.csi_socket_path()).unwrap();
        let stop = Shutdown::new();
        tokio::spawn(spiffe_csi::serve(
            listener,
            Driver::with_mounter(&config, mounter),
            stop.clone(),
        ));
        let channel = spire_health::unix_channel(&csi_socket).await.unwrap();
        Self {
            _tmp: tmp,
            csi_socket,
            socket_dir,
            pods_dir,
            channel,
            stop,
        }
    }

    /// With the real mounter.
    pub(crate) async fn start_system() -> Self {
        Self::start(Arc::new(SystemMounter::new())).await
    }

    pub(crate) fn identity(&self) -> IdentityClient<Channel> {
        IdentityClient::new(self.channel.clone())
    }

    pub(crate) fn node(&self) -> NodeClient<Channel> {
        NodeClient::new(self.channel.clone())
    }

    /// The target path the kubelet would use for `volume` of pod `pod_uid`, with its parent
    /// directory created (the kubelet's job; the target itself is the driver's).
    pub(crate) fn target_path(&self, pod_uid: &str, volume: &str) -> PathBuf {
        let parent = self
            .pods_dir
            .join(pod_uid)
            .join("volumes/kubernetes.io~csi")
            .join(volume);
        std::fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// A pod whose volume the kubelet publishes.
pub(crate) struct Pod<'a> {
    pub(crate) name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) uid: &'a str,
    pub(crate) service_account: &'a str,
}

pub(crate) const SLEEP_POD: Pod<'static> = Pod {
    name: "sleep-5d6df95bbf-kt2tt",
    namespace: "default",
    uid: "8f0e9a64-3c2b-4d8e-9a51-6f2a1d7c0b11",
    service_account: "sleep",
};

/// The NodePublishVolume a kubelet sends for an inline CSI volume whose pod spec entry is
/// `csi` (`{driver, readOnly?, fsType?, volumeAttributes?}`), with podInfoOnMount: the access
/// mode is SINGLE_NODE_WRITER, `readonly` is `csi.readOnly` (false when unset), the volume
/// context is the attributes plus the pod's `csi.storage.k8s.io/*` keys.
pub(crate) fn kubelet_publish(
    pod: &Pod<'_>,
    csi: &Value,
    target: &Path,
) -> NodePublishVolumeRequest {
    let mut context: BTreeMap<String, String> = csi
        .get("volumeAttributes")
        .and_then(Value::as_object)
        .map(|attributes| {
            attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in [
        ("csi.storage.k8s.io/pod.name", pod.name),
        ("csi.storage.k8s.io/pod.namespace", pod.namespace),
        ("csi.storage.k8s.io/pod.uid", pod.uid),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            pod.service_account,
        ),
        (EPHEMERAL_CONTEXT_KEY, "true"),
    ] {
        context.insert(key.to_owned(), value.to_owned());
    }
    NodePublishVolumeRequest {
        volume_id: format!("csi-{}", pod.uid.replace('-', "")),
        target_path: target.to_str().unwrap().to_owned(),
        volume_capability: Some(VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: csi
                    .get("fsType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                ..Default::default()
            })),
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
        }),
        readonly: csi
            .get("readOnly")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        volume_context: context.into_iter().collect(),
        ..Default::default()
    }
}

/// A publish request as current Istio's template makes it (`readOnly: true`).
pub(crate) fn read_only_publish(target: &Path) -> NodePublishVolumeRequest {
    let csi = serde_json::json!({"driver": PLUGIN_NAME, "readOnly": true});
    kubelet_publish(&SLEEP_POD, &csi, target)
}

/// One recorded mount operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
    Unmount(PathBuf),
}

/// Mounts nothing: records the calls and answers mount-point lookups from what it "mounted".
#[derive(Debug, Default)]
pub(crate) struct RecordingMounter {
    calls: Mutex<Vec<Call>>,
    mounted: Mutex<BTreeMap<PathBuf, bool>>,
}

impl RecordingMounter {
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Mounter for RecordingMounter {
    fn bind(&self, source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
        self.calls.lock().unwrap().push(Call::Bind {
            source: source.to_owned(),
            target: target.to_owned(),
            read_only,
        });
        self.mounted
            .lock()
            .unwrap()
            .insert(target.to_owned(), read_only);
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Unmount(target.to_owned()));
        match self.mounted.lock().unwrap().remove(target) {
            Some(_) => Ok(()),
            None => Err(io::Error::from_raw_os_error(22)), // EINVAL, as umount(2)
        }
    }

    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        Ok(self.mounted.lock().unwrap().contains_key(path))
    }
}

/// Log lines written while it is the thread's default subscriber (the driver's handlers run
/// on the test's current-thread runtime, so on this thread).
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Captures until the guard is dropped.
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether this process may mount; says why not (and fails under CI=true) when it may not.
pub(crate) fn can_mount() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        spire_test::skip("bind mounts need root (CI runs as root)");
        false
    }
}

/// Detaches whatever is still mounted on the path when dropped (a failed test leaves no mount
/// behind in /tmp).
pub(crate) struct MountGuard(pub(crate) PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        while rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH).is_ok() {}
    }
}
