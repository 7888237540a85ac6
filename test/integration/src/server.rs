//! A spire-server run in-process, and its admin API over the Unix socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spire_proto::spire::api::server::agent::v1::{
    BanAgentRequest, CreateJoinTokenRequest, DeleteAgentRequest, ListAgentsRequest,
    agent_client::AgentClient,
};
use spire_proto::spire::api::server::bundle::v1::{GetBundleRequest, bundle_client::BundleClient};
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchDeleteEntryRequest, BatchUpdateEntryRequest, GetEntryRequest,
    entry_client::EntryClient,
};
use spire_proto::spire::api::types;
use spire_task::Shutdown;
use spire_time::{SharedClock, SystemClock};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::agent::AgentBuilder;
use crate::support::{poll, spiffe_id};
use crate::{Dir, Error, Result, TRUST_DOMAIN, WAIT, free_port};

/// How a [`TestServer`] is configured; [`ServerBuilder::start`] runs it.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    trust_domain: String,
    server_extra: String,
    plugins_extra: String,
    postgres: Option<String>,
    memory_keys: bool,
    join_token_attestor: bool,
    raw: Option<String>,
    dir: Option<Dir>,
    clock: SharedClock,
}

/// A running server. Dropping it stops it (without waiting); [`TestServer::stop`] waits.
#[derive(Debug)]
pub struct TestServer {
    dir: Dir,
    socket: PathBuf,
    port: u16,
    trust_domain: String,
    clock: SharedClock,
    stop: Shutdown,
    task: Option<JoinHandle<Result<(), spire_server_app::Error>>>,
}

// === impl ServerBuilder ===

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// Trust domain [`TRUST_DOMAIN`], SQLite in the temp dir, disk key manager,
    /// `NodeAttestor "join_token"`, the system clock.
    pub fn new() -> Self {
        Self {
            trust_domain: TRUST_DOMAIN.to_owned(),
            server_extra: String::new(),
            plugins_extra: String::new(),
            postgres: None,
            memory_keys: false,
            join_token_attestor: true,
            raw: None,
            dir: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Another trust domain.
    pub fn trust_domain(mut self, trust_domain: &str) -> Self {
        trust_domain.clone_into(&mut self.trust_domain);
        self
    }

    /// HCL added inside `server { }` (e.g. `default_x509_svid_ttl = "1m"`); appends.
    pub fn server_extra(mut self, hcl: &str) -> Self {
        self.server_extra.push_str(hcl);
        self.server_extra.push('\n');
        self
    }

    /// HCL added inside `plugins { }` (e.g. a `NodeAttestor "x509pop"` block); appends.
    pub fn plugins_extra(mut self, hcl: &str) -> Self {
        self.plugins_extra.push_str(hcl);
        self.plugins_extra.push('\n');
        self
    }

    /// PostgreSQL at `url` instead of the SQLite file.
    pub fn postgres(mut self, url: &str) -> Self {
        self.postgres = Some(url.to_owned());
        self
    }

    /// `KeyManager "memory"` instead of `"disk"`.
    pub fn memory_keys(mut self) -> Self {
        self.memory_keys = true;
        self
    }

    /// Leaves out `NodeAttestor "join_token"`.
    pub fn without_join_token(mut self) -> Self {
        self.join_token_attestor = false;
        self
    }

    /// Uses `text` as the whole configuration instead; `{dir}` and `{port}` in it are
    /// replaced by the server's directory and TCP port, and the admin socket must be
    /// `{dir}/private/api.sock`.
    pub fn raw_config(mut self, text: &str) -> Self {
        self.raw = Some(text.to_owned());
        self
    }

    /// Runs in `dir` (a restart keeps the SQLite file and the CA keys) instead of a new one.
    pub fn dir(mut self, dir: Dir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The clock the server reads (certificate times, expiry, rotation).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration text for `dir` and `port`.
    pub fn config_text(&self, dir: &Path, port: u16) -> String {
        let dir_s = dir.display().to_string();
        if let Some(raw) = &self.raw {
            return raw
                .replace("{dir}", &dir_s)
                .replace("{port}", &port.to_string());
        }
        let datastore = match &self.postgres {
            Some(url) => {
                format!("database_type = \"postgres\"\n            connection_string = \"{url}\"")
            }
            None => format!(
                "database_type = \"sqlite3\"\n            connection_string = \"{dir_s}/datastore.sqlite3\""
            ),
        };
        let key_manager = if self.memory_keys {
            "KeyManager \"memory\" {\n        plugin_data {}\n    }".to_owned()
        } else {
            format!(
                "KeyManager \"disk\" {{\n        plugin_data {{ keys_path = \"{dir_s}/keys.json\" }}\n    }}"
            )
        };
        let join_token = if self.join_token_attestor {
            "NodeAttestor \"join_token\" {\n        plugin_data {}\n    }"
        } else {
            ""
        };
        format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{dir_s}/private/api.sock"
    trust_domain = "{td}"
    data_dir = "{dir_s}"
    log_level = "WARN"
    {server_extra}
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            {datastore}
        }}
    }}
    {key_manager}
    {join_token}
    {plugins_extra}
}}
"#,
            td = self.trust_domain,
            server_extra = self.server_extra,
            plugins_extra = self.plugins_extra,
        )
    }

    /// Starts the server and waits until its admin API answers (or it fails).
    pub async fn start(self) -> Result<TestServer> {
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => Dir::new()?,
        };
        let port = free_port()?;
        let text = self.config_text(dir.path(), port);
        let config = spire_server_app::ServerConfig::from_text(
            &text,
            &spire_server_app::Overrides::default(),
        )?;
        let socket = config.socket_path.clone();
        let trust_domain = config.trust_domain.to_string();
        let stop = Shutdown::new();
        let task = tokio::spawn(spire_server_app::run(
            config,
            self.clock.clone(),
            stop.clone(),
        ));
        let mut server = TestServer {
            dir,
            socket,
            port,
            trust_domain,
            clock: self.clock,
            stop,
            task: Some(task),
        };
        server.wait_ready().await?;
        Ok(server)
    }
}

// === impl TestServer ===

impl TestServer {
    /// A server with the defaults of [`ServerBuilder::new`].
    pub async fn start() -> Result<Self> {
        ServerBuilder::new().start().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(task) = &self.task
                && task.is_finished()
            {
                let task = self
                    .task
                    .take()
                    .ok_or_else(|| Error::Unexpected("server task vanished".into()))?;
                return match task.await {
                    Ok(Ok(())) => Err(Error::Unexpected("server stopped during start".into())),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(Error::Unexpected(format!("server task: {e}"))),
                };
            }
            if self.socket.exists() && self.bundle_roots().await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Timeout("the server's admin API".into()));
            }
            // Readiness has no notification: poll.
            tokio::time::sleep(poll()).await;
        }
    }

    /// The server's directory (data dir, SQLite file, keys).
    pub fn dir(&self) -> Dir {
        self.dir.clone()
    }

    /// The admin Unix socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The TLS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The trust domain name.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The clock the server was started with.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// A gRPC channel to the admin socket (every caller is "local": all admin APIs).
    pub async fn admin_channel(&self) -> Result<Channel> {
        spire_cli::Client::connect(&self.socket)
            .await
            .channel()
            .map_err(Error::rpc("connect"))
    }

    /// The Entry service client.
    pub async fn entries(&self) -> Result<EntryClient<Channel>> {
        Ok(EntryClient::new(self.admin_channel().await?))
    }

    /// The Agent service client.
    pub async fn agents_client(&self) -> Result<AgentClient<Channel>> {
        Ok(AgentClient::new(self.admin_channel().await?))
    }

    /// The Bundle service client.
    pub async fn bundles(&self) -> Result<BundleClient<Channel>> {
        Ok(BundleClient::new(self.admin_channel().await?))
    }

    /// DER roots of the own trust domain's bundle.
    pub async fn bundle_roots(&self) -> Result<Vec<Vec<u8>>> {
        let bundle = self
            .bundles()
            .await?
            .get_bundle(GetBundleRequest { output_mask: None })
            .await
            .map_err(Error::rpc("GetBundle"))?
            .into_inner();
        Ok(bundle
            .x509_authorities
            .into_iter()
            .map(|a| a.asn1)
            .collect())
    }

    /// The bundle as PEM certificates (a `trust_bundle_path` file).
    pub async fn bundle_pem(&self) -> Result<String> {
        let roots = self.bundle_roots().await?;
        Ok(pem::encode_many(
            &roots
                .into_iter()
                .map(|der| pem::Pem::new("CERTIFICATE", der))
                .collect::<Vec<_>>(),
        ))
    }

    /// A new join token (valid 10 minutes).
    pub async fn create_join_token(&self) -> Result<String> {
        let token = self
            .agents_client()
            .await?
            .create_join_token(CreateJoinTokenRequest {
                ttl: 600,
                token: String::new(),
                agent_id: None,
            })
            .await
            .map_err(Error::rpc("CreateJoinToken"))?
            .into_inner();
        Ok(token.value)
    }

    /// Creates one entry; returns it as stored (with its ID).
    pub async fn create_entry(&self, entry: types::Entry) -> Result<types::Entry> {
        let mut results = self
            .entries()
            .await?
            .batch_create_entry(BatchCreateEntryRequest {
                entries: vec![entry],
                output_mask: None,
            })
            .await
            .map_err(Error::rpc("BatchCreateEntry"))?
            .into_inner()
            .results;
        let result = results
            .pop()
            .ok_or_else(|| Error::Unexpected("BatchCreateEntry: no result".into()))?;
        check_status("BatchCreateEntry", result.status)?;
        result
            .entry
            .ok_or_else(|| Error::Unexpected("BatchCreateEntry: no entry".into()))
    }

    /// Replaces an entry (all fields; `entry.id` names it); returns it as stored.
    pub async fn update_entry(&self, entry: types::Entry) -> Result<types::Entry> {
        let mut results = self
            .entries()
            .await?
            .batch_update_entry(BatchUpdateEntryRequest {
                entries: vec![entry],
                input_mask: None,
                output_mask: None,
            })
            .await
            .map_err(Error::rpc("BatchUpdateEntry"))?
            .into_inner()
            .results;
        let result = results
            .pop()
            .ok_or_else(|| Error::Unexpected("BatchUpdateEntry: no result".into()))?;
        check_status("BatchUpdateEntry", result.status)?;
        result
            .entry
            .ok_or_else(|| Error::Unexpected("BatchUpdateEntry: no entry".into()))
    }

    /// Deletes an entry by ID.
    pub async fn delete_entry(&self, id: &str) -> Result<()> {
        let mut results = self
            .entries()
            .await?
            .batch_delete_entry(BatchDeleteEntryRequest {
                ids: vec![id.to_owned()],
            })
            .await
            .map_err(Error::rpc("BatchDeleteEntry"))?
            .into_inner()
            .results;
        let result = results
            .pop()
            .ok_or_else(|| Error::Unexpected("BatchDeleteEntry: no result".into()))?;
        check_status("BatchDeleteEntry", result.status)
    }

    /// One entry by ID.
    pub async fn get_entry(&self, id: &str) -> Result<types::Entry> {
        Ok(self
            .entries()
            .await?
            .get_entry(GetEntryRequest {
                id: id.to_owned(),
                output_mask: None,
            })
            .await
            .map_err(Error::rpc("GetEntry"))?
            .into_inner())
    }

    /// Every attested agent (first page of up to 1000).
    pub async fn list_agents(&self) -> Result<Vec<types::Agent>> {
        Ok(self
            .agents_client()
            .await?
            .list_agents(ListAgentsRequest {
                filter: None,
                output_mask: None,
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .map_err(Error::rpc("ListAgents"))?
            .into_inner()
            .agents)
    }

    /// The attested agent with SPIFFE ID `agent_id`, if any.
    pub async fn find_agent(&self, agent_id: &str) -> Result<Option<types::Agent>> {
        let wanted = spiffe_id(agent_id);
        Ok(self
            .list_agents()
            .await?
            .into_iter()
            .find(|a| a.id.as_ref() == Some(&wanted)))
    }

    /// `agent ban`.
    pub async fn ban_agent(&self, agent_id: &str) -> Result<()> {
        self.agents_client()
            .await?
            .ban_agent(BanAgentRequest {
                id: Some(spiffe_id(agent_id)),
            })
            .await
            .map_err(Error::rpc("BanAgent"))?;
        Ok(())
    }

    /// `agent evict` (deletes the attested node).
    pub async fn evict_agent(&self, agent_id: &str) -> Result<()> {
        self.agents_client()
            .await?
            .delete_agent(DeleteAgentRequest {
                id: Some(spiffe_id(agent_id)),
            })
            .await
            .map_err(Error::rpc("DeleteAgent"))?;
        Ok(())
    }

    /// An agent builder pointed at this server, bootstrapped with its current bundle, with
    /// the server's clock; add a node attestor (join token or x509pop) and start it.
    pub async fn agent(&self) -> Result<AgentBuilder> {
        Ok(
            AgentBuilder::new(&self.trust_domain, self.port, self.bundle_pem().await?)
                .clock(self.clock.clone()),
        )
    }

    /// An agent attested with a fresh join token (the common case), started.
    pub async fn join_token_agent(&self) -> Result<crate::TestAgent> {
        let token = self.create_join_token().await?;
        self.agent().await?.join_token(&token).start().await
    }

    /// Stops the server and waits for it (in-flight calls get the server's grace period).
    pub async fn stop(mut self) -> Result<()> {
        self.stop.trigger();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(result) => result.map_err(Error::from),
            Err(e) => Err(Error::Unexpected(format!("server task: {e}"))),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn check_status(call: &'static str, status: Option<types::Status>) -> Result<()> {
    match status {
        Some(s) if s.code != 0 => Err(Error::Rpc {
            call,
            status: tonic::Status::new(tonic::Code::from_i32(s.code), s.message),
        }),
        _ => Ok(()),
    }
}
