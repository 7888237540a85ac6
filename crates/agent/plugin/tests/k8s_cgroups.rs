//! The `k8s` attestor on a real process in a real cgroup: a `sleep` child is moved into
//! `kubepods/.../pod<uid>/<container id>` of the cgroup v1 `pids` hierarchy (and into the
//! systemd-driver layout), then attested through the real `/proc` against a test kubelet.
//!
//! Needs root and a writable `/sys/fs/cgroup/pids`; skips otherwise (fails under `CI=true`).
//! Only the directories this test creates are removed, also when it fails.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;
use spire_agent_plugin::workloadattestor::k8s::cgroup;
use spire_test_k8s::{TestKubelet, TestKubeletAuth, TestKubeletConfig};
use support::*;

const HIERARCHY: &str = "/sys/fs/cgroup/pids";

/// A child process inside a cgroup made for it. Dropping it moves the child back to the
/// hierarchy's root, kills it and removes exactly the directories it created.
struct InCgroup {
    child: Child,
    created: Vec<PathBuf>,
}

impl InCgroup {
    /// Creates `HIERARCHY/<relative>` (recording each new directory) and starts `sleep` in it.
    fn start(relative: &str) -> std::io::Result<Self> {
        let mut guard = Self {
            child: Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()?,
            created: Vec::new(),
        };
        let mut dir = PathBuf::from(HIERARCHY);
        for part in relative.split('/') {
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => guard.created.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::write(dir.join("cgroup.procs"), guard.pid().to_string())?;
        Ok(guard)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }
}

impl Drop for InCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(
            Path::new(HIERARCHY).join("cgroup.procs"),
            self.pid().to_string(),
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        for dir in self.created.iter().rev() {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

/// Why this machine cannot run the test, if it cannot.
fn unusable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: cannot create cgroups".into());
    }
    let probe = Path::new(HIERARCHY).join(format!("spire-rs-probe-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            None
        }
        Err(e) => Some(format!(
            "{HIERARCHY} is not a writable cgroup hierarchy: {e}"
        )),
    }
}

/// A fresh pod UID and container ID, so parallel runs never share a cgroup.
fn fresh_ids() -> (String, String) {
    let mut bytes = [0u8; 48];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let hex = hex::encode(bytes);
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    (uid, hex[32..96].to_owned())
}

#[tokio::test]
async fn a_real_process_in_a_kubepods_cgroup_is_attested() {
    if let Some(reason) = unusable() {
        spire_test::skip(&reason);
        return;
    }
    let kubelet = TestKubelet::start(TestKubeletConfig::new(
        "localhost",
        TestKubeletAuth::Anonymous,
    ))
    .await;
    let attestor = attestor(
        json!({"kubelet_secure_port": kubelet.port(), "use_anonymous_authentication": true,
               "skip_kubelet_verification": true, "max_poll_attempts": 1,
               "poll_retry_interval": "1ms"}),
        options(Path::new("/proc")),
    );

    let layouts: [fn(&str, &str) -> String; 2] = [
        |uid, cid| format!("kubepods/burstable/pod{uid}/{cid}"),
        |uid, cid| {
            let uid_ = uid.replace('-', "_");
            format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{cid}.scope"
            )
        },
    ];
    for layout in layouts {
        let (uid, cid) = fresh_ids();
        let relative = layout(&uid, &cid);
        let process = InCgroup::start(&relative).unwrap();
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", process.pid())).unwrap();
        assert!(cgroup.contains(&format!(":pids:/{relative}\n")), "{cgroup}");

        kubelet.set_pods(vec![pod(&uid, &cid)]);
        assert_eq!(
            attest(&attestor, process.pid()).await.unwrap(),
            expected_selectors(&uid),
            "{relative}"
        );

        // The same process once it left the pod's cgroup: not a Kubernetes workload (when
        // the test itself does not run in a container).
        std::fs::write(
            Path::new(HIERARCHY).join("cgroup.procs"),
            process.pid().to_string(),
        )
        .unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        if cgroup::locate(Path::new("/proc"), me, false)
            .unwrap()
            .container_id
            .is_empty()
        {
            assert_eq!(
                attest(&attestor, process.pid()).await.unwrap(),
                Vec::<String>::new()
            );
        }
        drop(process);
        assert!(
            !Path::new(HIERARCHY).join(&relative).exists(),
            "the test's cgroups are gone"
        );
    }
}
