//! SPI-01-006: the peer tracker must not leak file descriptors, on success or on failure.
//! Alone in its test binary so no other test opens or closes descriptors meanwhile.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use spire_agent_workload::peer::attest_caller;
use spire_agent_workload::{UnixAttestor, UnixConfig, WorkloadAttestor};
use spire_id::Selector;
use tokio::net::{UnixListener, UnixStream};

/// Fails for every caller, after the pidfd is open.
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

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// One connection: accept, read SO_PEERCRED, attest, close both ends.
async fn round(
    listener: &UnixListener,
    path: &std::path::Path,
    attestors: &[Arc<dyn WorkloadAttestor>],
) -> bool {
    let client = UnixStream::connect(path).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let pid = server.peer_cred().unwrap().pid().unwrap();
    let ok = attest_caller(pid, attestors).await.is_ok();
    drop(server);
    drop(client);
    ok
}

#[tokio::test(flavor = "current_thread")]
async fn open_fds_stay_flat_across_10k_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let unix: Arc<dyn WorkloadAttestor> = Arc::new(UnixAttestor::new(UnixConfig {
        discover_workload_path: true,
        workload_size_limit: -1,
    }));
    let succeeding = [unix];
    let failing: [Arc<dyn WorkloadAttestor>; 1] = [Arc::new(Broken)];

    // Warm up lazily created runtime resources (blocking pool, ...) before the baseline.
    for _ in 0..10 {
        assert!(round(&listener, &path, &succeeding).await);
        assert!(!round(&listener, &path, &failing).await);
    }
    let before = open_fds();
    for i in 0..10_000 {
        let (attestors, expected): (&[Arc<dyn WorkloadAttestor>], bool) = if i % 2 == 0 {
            (&succeeding, true)
        } else {
            (&failing, false)
        };
        assert_eq!(
            round(&listener, &path, attestors).await,
            expected,
            "round {i}"
        );
    }
    assert_eq!(open_fds(), before, "file descriptors leaked");
}
