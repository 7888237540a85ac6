use std::process::Stdio;

use spire_id::Selector;
use tokio::net::UnixListener;
use tokio::sync::Notify;

use super::*;

/// Env var that turns [`child_connects`] into the helper process of the tests below.
const CHILD_SOCKET: &str = "SPIRE_WORKLOAD_TEST_CHILD_SOCKET";

/// Not a test of its own: run as a child process by the tests below, it connects to the
/// socket named by [`CHILD_SOCKET`], then waits for its stdin to close and exits.
#[test]
#[ignore = "helper process for the peer-tracking tests"]
fn child_connects() {
    let Ok(path) = std::env::var(CHILD_SOCKET) else {
        return;
    };
    let _stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

/// An attestor that reports when it started and then waits to be released.
#[derive(Debug, Default)]
struct Gate {
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl WorkloadAttestor for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    async fn attest(&self, _pid: i32) -> spire_agent_plugin::Result<Vec<Selector>> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(vec![Selector::new("gate", "passed").unwrap()])
    }
}

/// A child process connected to a fresh socket, and the PID the server sees for it.
async fn connected_child(dir: &tempfile::TempDir) -> (tokio::process::Child, i32) {
    let path = dir.path().join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "peer::tests::child_connects",
            "--ignored",
            "--quiet",
        ])
        .env(CHILD_SOCKET, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let pid = stream.peer_cred().unwrap().pid().unwrap();
    assert_eq!(Some(u32::try_from(pid).unwrap()), child.id());
    (child, pid)
}

#[tokio::test]
async fn a_live_caller_is_attested() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pid) = connected_child(&dir).await;
    let gate = Arc::new(Gate::default());
    let attestors: Vec<Arc<dyn WorkloadAttestor>> = vec![gate.clone()];
    let task = tokio::spawn(async move { attest_caller(pid, &attestors).await });
    gate.entered.notified().await;
    gate.release.notify_one();
    let selectors = task.await.unwrap().unwrap();
    assert!(selectors.contains(&Selector::new("gate", "passed").unwrap()));
    drop(child.stdin.take());
    child.wait().await.unwrap();
}

#[tokio::test]
async fn a_caller_that_exits_during_attestation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pid) = connected_child(&dir).await;
    let gate = Arc::new(Gate::default());
    let attestors: Vec<Arc<dyn WorkloadAttestor>> = vec![gate.clone()];
    let task = tokio::spawn(async move { attest_caller(pid, &attestors).await });

    // The pidfd is pinned once the attestor runs; now the caller exits and is reaped, so its
    // PID is free for reuse before attestation completes.
    gate.entered.notified().await;
    drop(child.stdin.take());
    assert!(child.wait().await.unwrap().success());
    gate.release.notify_one();

    let result = task.await.expect("attestation must not panic");
    assert!(matches!(result, Err(Error::CallerGone)), "{result:?}");
}

#[tokio::test]
async fn a_caller_gone_before_attestation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, pid) = connected_child(&dir).await;
    drop(child.stdin.take());
    child.wait().await.unwrap();
    let attestors: Vec<Arc<dyn WorkloadAttestor>> = vec![Arc::new(Gate::default())];
    let result = attest_caller(pid, &attestors).await;
    assert!(matches!(result, Err(Error::CallerGone)), "{result:?}");
}

#[tokio::test]
async fn invalid_pids_are_refused() {
    for pid in [0, -1] {
        let result = attest_caller(pid, &[]).await;
        assert!(matches!(result, Err(Error::NoPeerPid)), "{result:?}");
    }
}

/// Fails for every PID.
#[derive(Debug)]
struct Broken;

#[async_trait::async_trait]
impl WorkloadAttestor for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    async fn attest(&self, _pid: i32) -> spire_agent_plugin::Result<Vec<Selector>> {
        Err(spire_agent_plugin::Error::status(
            spire_agent_plugin::Code::Internal,
            "always",
        ))
    }
}

#[tokio::test]
async fn failing_attestors_are_dropped_unless_all_fail() {
    let me = i32::try_from(std::process::id()).unwrap();
    let unix: Arc<dyn WorkloadAttestor> =
        Arc::new(crate::UnixAttestor::new(crate::UnixConfig::default()));
    let broken: Arc<dyn WorkloadAttestor> = Arc::new(Broken);

    let selectors = attest_caller(me, &[unix.clone(), broken.clone()])
        .await
        .unwrap();
    let uid = rustix::process::geteuid().as_raw();
    assert!(selectors.contains(&Selector::new("unix", &format!("uid:{uid}")).unwrap()));

    let result = attest_caller(me, &[broken.clone(), broken]).await;
    assert!(
        matches!(result, Err(Error::AttestationFailed)),
        "{result:?}"
    );
}
