//! A spire-agent run in-process, and Workload API clients for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use spiffe::WorkloadApiClient;
use spire_agent_manager::state::{AgentState, StateFile};
use spire_task::Shutdown;
use spire_time::{SharedClock, SystemClock};
use tokio::task::JoinHandle;

use crate::support::{leaf_spiffe_id, poll};
use crate::{Dir, Error, Result, WAIT};

/// How a [`TestAgent`] is configured; [`AgentBuilder::start`] runs it. Made by
/// [`crate::TestServer::agent`].
#[derive(Clone, Debug)]
pub struct AgentBuilder {
    trust_domain: String,
    server_port: u16,
    bundle_pem: String,
    join_token: Option<String>,
    x509pop: Option<(PathBuf, PathBuf)>,
    memory_keys: bool,
    agent_extra: String,
    dir: Option<Dir>,
    clock: SharedClock,
}

/// A running agent. Dropping it stops it (without waiting); [`TestAgent::stop`] waits.
#[derive(Debug)]
pub struct TestAgent {
    dir: Dir,
    socket: PathBuf,
    stop: Shutdown,
    task: Option<JoinHandle<Result<(), spire_agent_app::Error>>>,
}

// === impl AgentBuilder ===

impl AgentBuilder {
    /// An agent of `trust_domain` for the server on 127.0.0.1:`server_port`, trusting the PEM
    /// roots in `bundle_pem` until its first attestation; disk key manager; system clock; no
    /// node attestor yet.
    pub fn new(trust_domain: &str, server_port: u16, bundle_pem: String) -> Self {
        Self {
            trust_domain: trust_domain.to_owned(),
            server_port,
            bundle_pem,
            join_token: None,
            x509pop: None,
            memory_keys: false,
            agent_extra: String::new(),
            dir: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Attests with this join token (`NodeAttestor "join_token"` + `-joinToken`).
    pub fn join_token(mut self, token: &str) -> Self {
        self.join_token = Some(token.to_owned());
        self
    }

    /// `NodeAttestor "join_token"` with no token: only resuming a stored SVID can work.
    pub fn no_join_token(mut self) -> Self {
        self.join_token = None;
        self.x509pop = None;
        self
    }

    /// Attests with `NodeAttestor "x509pop"` using these PEM files.
    pub fn x509pop(mut self, private_key_path: &Path, certificate_path: &Path) -> Self {
        self.x509pop = Some((private_key_path.to_owned(), certificate_path.to_owned()));
        self
    }

    /// `KeyManager "memory"` instead of `"disk"` (a restart attests again).
    pub fn memory_keys(mut self) -> Self {
        self.memory_keys = true;
        self
    }

    /// HCL added inside `agent { }` (e.g. `experimental { sync_interval = "1h" }`); appends.
    pub fn agent_extra(mut self, hcl: &str) -> Self {
        self.agent_extra.push_str(hcl);
        self.agent_extra.push('\n');
        self
    }

    /// Runs in `dir` (restart: same `agent-data.json` and keys) instead of a new one.
    pub fn dir(mut self, dir: Dir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The clock the agent reads.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration text for `dir` (the bootstrap bundle is `{dir}/bootstrap.pem`).
    pub fn config_text(&self, dir: &Path) -> String {
        let dir = dir.display();
        let node_attestor = match &self.x509pop {
            Some((key, cert)) => format!(
                "NodeAttestor \"x509pop\" {{\n        plugin_data {{\n            \
                 private_key_path = \"{}\"\n            certificate_path = \"{}\"\n        }}\n    }}",
                key.display(),
                cert.display()
            ),
            None => "NodeAttestor \"join_token\" {\n        plugin_data {}\n    }".to_owned(),
        };
        let key_manager = if self.memory_keys {
            "KeyManager \"memory\" {\n        plugin_data {}\n    }".to_owned()
        } else {
            format!(
                "KeyManager \"disk\" {{\n        plugin_data {{ directory = \"{dir}/data\" }}\n    }}"
            )
        };
        format!(
            r#"agent {{
    data_dir = "{dir}/data"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "{port}"
    socket_path = "{dir}/public/api.sock"
    trust_bundle_path = "{dir}/bootstrap.pem"
    trust_domain = "{td}"
    {extra}
}}
plugins {{
    {node_attestor}
    {key_manager}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
"#,
            port = self.server_port,
            td = self.trust_domain,
            extra = self.agent_extra,
        )
    }

    /// Starts the agent without waiting for it to be ready.
    pub fn spawn(self) -> Result<TestAgent> {
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => Dir::new()?,
        };
        std::fs::create_dir_all(dir.path().join("data"))
            .map_err(Error::io("creating the agent data dir"))?;
        std::fs::write(dir.path().join("bootstrap.pem"), &self.bundle_pem)
            .map_err(Error::io("writing the bootstrap bundle"))?;
        let text = self.config_text(dir.path());
        let overrides = spire_agent_app::Overrides {
            join_token: self.join_token.clone(),
            ..Default::default()
        };
        let config = spire_agent_app::AgentConfig::from_text(&text, &overrides)?;
        let socket = config.socket_path.clone();
        // A socket left by an earlier run in this directory would look like readiness.
        let _ = std::fs::remove_file(&socket);
        let stop = Shutdown::new();
        let task = tokio::spawn(spire_agent_app::run(config, self.clock, stop.clone()));
        Ok(TestAgent {
            dir,
            socket,
            stop,
            task: Some(task),
        })
    }

    /// Starts the agent and waits until its Workload API socket is open (after attestation
    /// and the first sync), or fails with the agent's error.
    pub async fn start(self) -> Result<TestAgent> {
        let mut agent = self.spawn()?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if agent.task.as_ref().is_some_and(JoinHandle::is_finished) {
                return match agent.wait(Duration::ZERO).await? {
                    Ok(()) => Err(Error::Unexpected("agent stopped during start".into())),
                    Err(e) => Err(e.into()),
                };
            }
            if agent.socket.exists() {
                return Ok(agent);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Timeout("the agent's Workload API socket".into()));
            }
            // The socket appears without a notification: poll.
            tokio::time::sleep(poll()).await;
        }
    }
}

// === impl TestAgent ===

impl TestAgent {
    /// The agent's directory (`data/agent-data.json`, `data/keys.json`, `public/api.sock`).
    pub fn dir(&self) -> Dir {
        self.dir.clone()
    }

    /// `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The Workload API socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The Workload API address as a `unix://` URI (`SPIFFE_ENDPOINT_SOCKET` form).
    pub fn workload_uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A new rust-spiffe Workload API client (each call its own connection).
    pub async fn workload(&self) -> Result<WorkloadApiClient> {
        Ok(WorkloadApiClient::connect_to(self.workload_uri()).await?)
    }

    /// `agent-data.json` (`None` when absent).
    pub fn state(&self) -> Result<Option<AgentState>> {
        StateFile::new(&self.data_dir())
            .load()
            .map_err(|e| Error::Unexpected(format!("agent-data.json: {e}")))
    }

    /// The stored agent SVID chain (DER, leaf first); empty when the SVID was removed.
    pub fn stored_svid(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self.state()?.map(|s| s.svid).unwrap_or_default())
    }

    /// The agent's SPIFFE ID, read from its stored SVID.
    pub fn agent_id(&self) -> Result<String> {
        let chain = self.stored_svid()?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Unexpected("the agent has no stored SVID".into()))?;
        leaf_spiffe_id(leaf)
    }

    /// True once the agent's run has ended.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits up to `timeout` for the agent's run to end by itself and returns how it ended
    /// (`Err(Timeout)` if it is still running).
    pub async fn wait(&mut self, timeout: Duration) -> Result<Result<(), spire_agent_app::Error>> {
        let Some(task) = self.task.as_mut() else {
            return Err(Error::Unexpected("the agent was already waited for".into()));
        };
        let joined = match tokio::time::timeout(timeout, task).await {
            Ok(joined) => joined,
            Err(_) => return Err(Error::Timeout("the agent to stop".into())),
        };
        self.task = None;
        joined.map_err(|e| Error::Unexpected(format!("agent task: {e}")))
    }

    /// Stops the agent and waits for it; returns its directory (for a restart).
    pub async fn stop(mut self) -> Result<Dir> {
        self.stop.trigger();
        if self.task.is_some() {
            self.wait(WAIT).await??;
        }
        Ok(self.dir.clone())
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
