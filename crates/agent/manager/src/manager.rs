//! The manager: configuration, start-up (resume or attest), the shared identity, rotation and
//! reactions to the server refusing the agent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use spire_agent_cache::{Cache, CacheConfig, JwtSvidCache, JwtSvidSource};
use spire_agent_plugin::keymanager::{Key, KeyManager};
use spire_agent_plugin::nodeattestor::NodeAttestor;
use spire_id::{SpiffeId, TrustDomain};
use spire_metrics::{CallCounter, Counter};
use spire_proto::spire::api::server::agent::v1::{PostStatusRequest, agent_client::AgentClient};
use spire_svid::{Bundle, KeyType};
use spire_task::{Shutdown, Supervisor};
use spire_time::SharedClock;
use tokio::sync::Notify;
use tonic::transport::Channel;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::details::{Reason, permission_denied_reason};
use crate::state::{AgentState, StateFile};
use crate::tls::{self, ClientIdentity, ServerVerifier};
use crate::{Error, Result, attest, convert, jwt, loops};

/// The two key-manager slots the agent SVID key alternates between, so that the key of the
/// stored SVID is never overwritten before a new SVID is stored.
const KEY_SLOTS: [&str; 2] = ["agent-svid-A", "agent-svid-B"];

/// Where the bootstrap trust bundle comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustBundleSource {
    /// `trust_bundle_path` in `trust_bundle_format`.
    Path {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: TrustBundleFormat,
    },
    /// `insecure_bootstrap = true`: any server chain, but the server ID is still required.
    Insecure,
}

/// `trust_bundle_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustBundleFormat {
    /// PEM certificates (default).
    #[default]
    Pem,
    /// A SPIFFE bundle document.
    Spiffe,
}

/// What the manager needs from the agent's configuration.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `server_address`.
    pub server_address: String,
    /// `server_port`.
    pub server_port: u16,
    /// `data_dir` (holds `agent-data.json`).
    pub data_dir: PathBuf,
    /// Bootstrap trust, used until the first attestation stored a bundle.
    pub trust_bundle: TrustBundleSource,
    /// The node attestor plugin.
    pub node_attestor: Arc<dyn NodeAttestor>,
    /// The key manager plugin (agent SVID key).
    pub key_manager: Arc<dyn KeyManager>,
    /// `experimental.sync_interval` (SPIRE default 5 s).
    pub sync_interval: Duration,
    /// `workload_x509_svid_key_type` (default ec-p256).
    pub workload_key_type: KeyType,
    /// `x509_svid_cache_max_size` (default 1000).
    pub x509_svid_cache_max_size: usize,
    /// `jwt_svid_cache_max_size` (default 1000): JWT-SVIDs kept, least recently used dropped.
    pub jwt_svid_cache_max_size: usize,
    /// `experimental.jwt_svid_cache_hit_timeout`: how long NewJWTSVID may take while a valid
    /// token is cached (SPIRE's default is its 30 s RPC timeout).
    pub jwt_svid_cache_hit_timeout: Duration,
    /// Wall time (SVID validity, rotation, TLS certificate checks).
    pub clock: SharedClock,
    /// The agent's telemetry (`agent_svid.rotate`, `manager.sync.*`, …).
    pub metrics: spire_metrics::Registry,
}

/// The manager's series, resolved once (SPIRE's keys).
#[derive(Debug)]
pub(crate) struct Metrics {
    /// `agent_svid.rotate`: the agent SVID renewed or re-attested.
    pub(crate) agent_svid_rotate: CallCounter,
    /// `manager.sync.fetch_entries_updates`: one entry and bundle sync.
    pub(crate) fetch_entries_updates: CallCounter,
    /// `manager.sync.fetch_svids_updates`: one BatchNewX509SVID round.
    pub(crate) fetch_svids_updates: CallCounter,
    /// `push.messages` (spire-rs's own): change notices the server pushed.
    pub(crate) push_messages: Counter,
}

impl Metrics {
    fn new(registry: &spire_metrics::Registry) -> Self {
        Self {
            agent_svid_rotate: registry.call(&["agent_svid", "rotate"], &[]),
            fetch_entries_updates: registry
                .call(&["manager", "sync", "fetch_entries_updates"], &[]),
            fetch_svids_updates: registry.call(&["manager", "sync", "fetch_svids_updates"], &[]),
            push_messages: registry.counter(&["push", "messages"], &[]),
        }
    }
}

/// The gRPC status a manager error stands for (`Unknown` when no call failed).
pub(crate) fn error_code(error: &Error) -> spire_metrics::Code {
    match error {
        Error::Rpc { status, .. } => status.code(),
        Error::Banned => spire_metrics::Code::PermissionDenied,
        _ => spire_metrics::Code::Unknown,
    }
}

/// A running manager; its loops run under the [`Supervisor`] given to [`Manager::start`].
#[derive(Debug)]
pub struct Manager {
    shared: Arc<Shared>,
    jwt_svids: Arc<JwtSvidCache>,
}

/// The agent's current SVID.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) agent_id: SpiffeId,
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) key: Key,
    pub(crate) reattestable: bool,
    /// Half-life ± 10 % jitter, fixed when the SVID is installed.
    pub(crate) rotate_at: SystemTime,
}

/// State shared by the loops.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ManagerConfig,
    pub(crate) cache: Cache,
    pub(crate) state: StateFile,
    pub(crate) stop: Shutdown,
    /// Wakes the sync loop (push messages).
    pub(crate) sync_now: Notify,
    identity: RwLock<Identity>,
    client_identity: Arc<ClientIdentity>,
    verifier: Arc<ServerVerifier>,
    mtls: RwLock<Channel>,
    /// Serialises rotation and re-attestation.
    identity_change: tokio::sync::Mutex<()>,
    /// Unix seconds of the last successful sync (0: none yet).
    pub(crate) last_sync_success: AtomicI64,
    pub(crate) metrics: Metrics,
}

// === impl Manager ===

impl Manager {
    /// Brings the agent to a usable SVID (resume or attest), posts its status, runs the first
    /// sync (retrying with backoff), and starts the loops under `tasks`: `entry-sync`,
    /// `push-watch`, `svid-minting` and `agent-svid-rotation`. Returns once the cache holds
    /// the authorized entries and bundles, or [`Error::Stopped`] if the supervisor's stop
    /// signal came first.
    ///
    /// The loops run until that signal, or end the agent with a fatal error (banned, cannot
    /// re-attest, …) as a failure of their task.
    pub async fn start(config: ManagerConfig, tasks: &mut Supervisor) -> Result<Self> {
        let stop = tasks.shutdown().clone();
        let state_file = StateFile::new(&config.data_dir);
        let stored = state_file.load()?;
        let server_id = SpiffeId::server_id(&config.trust_domain);
        let stored_roots = stored
            .as_ref()
            .map(|s| s.bundle.clone())
            .unwrap_or_default();
        let verifier = Arc::new(if stored_roots.is_empty() {
            bootstrap_verifier(&config, server_id)?
        } else {
            ServerVerifier::new(server_id, Some(&stored_roots))?
        });

        let (identity, bundle) = match resume(&config, stored.as_ref()).await? {
            Some(identity) => {
                tracing::info!(spiffe_id = %identity.agent_id, "SVID loaded");
                let bundle = convert::bundle_from_roots(config.trust_domain.clone(), &stored_roots);
                (identity, bundle)
            }
            None => {
                let (identity, bundle) = attest_new(&config, &verifier, &state_file).await?;
                tracing::info!(spiffe_id = %identity.agent_id, "Node attestation was successful");
                (identity, bundle)
            }
        };

        let client_identity = Arc::new(ClientIdentity::default());
        client_identity.set(&identity.chain, identity.key.pkcs8_der())?;
        let mtls = mtls_channel(&config, &verifier, &client_identity)?;
        let cache = Cache::new(
            CacheConfig {
                trust_domain: config.trust_domain.clone(),
                x509_svid_cache_max_size: config.x509_svid_cache_max_size,
            },
            bundle.clone(),
        );
        let metrics = Metrics::new(&config.metrics);
        let shared = Arc::new(Shared {
            metrics,
            config,
            cache,
            state: state_file,
            stop,
            sync_now: Notify::new(),
            identity: RwLock::new(identity),
            client_identity,
            verifier,
            mtls: RwLock::new(mtls),
            identity_change: tokio::sync::Mutex::new(()),
            last_sync_success: AtomicI64::new(0),
        });

        shared.post_status(bundle.sequence_number).await;
        loops::first_sync(&shared).await?;

        tasks.spawn("entry-sync", loops::sync_loop(shared.clone()));
        tasks.spawn("push-watch", loops::watch_loop(shared.clone()));
        tasks.spawn("svid-minting", loops::mint_loop(shared.clone()));
        tasks.spawn("agent-svid-rotation", loops::rotation_loop(shared.clone()));
        let jwt_svids = jwt::ServerMinter::cache(&shared);
        Ok(Self { shared, jwt_svids })
    }

    /// The cache the manager feeds (for the workload endpoints).
    pub fn cache(&self) -> Cache {
        self.shared.cache.clone()
    }

    /// Where the Workload API gets JWT-SVIDs: the agent's JWT-SVID cache, minting through
    /// `SVID.NewJWTSVID` on this manager's server connection.
    pub fn jwt_svid_source(&self) -> Arc<dyn JwtSvidSource> {
        self.jwt_svids.clone()
    }

    /// The agent's SPIFFE ID.
    pub fn agent_id(&self) -> SpiffeId {
        self.shared.identity().agent_id
    }

    /// The agent SVID chain in use (DER, leaf first).
    pub fn agent_svid(&self) -> Vec<Vec<u8>> {
        self.shared.identity().chain
    }

    /// How many JWT-SVIDs the agent's JWT-SVID cache holds.
    pub fn jwt_svid_count(&self) -> usize {
        self.jwt_svids.len()
    }

    /// Unix seconds of the last successful sync with the server.
    pub fn last_sync_success(&self) -> i64 {
        self.shared.last_sync_success.load(Ordering::Relaxed)
    }
}

// === impl Shared ===

impl Shared {
    pub(crate) fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The mTLS channel of the current SVID.
    pub(crate) fn channel(&self) -> Channel {
        self.mtls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    async fn post_status(&self, bundle_serial: u64) {
        let request = PostStatusRequest {
            current_bundle_serial: bundle_serial,
        };
        if let Err(status) = AgentClient::new(self.channel()).post_status(request).await {
            tracing::warn!(error = %status, "PostStatus failed");
        }
    }

    /// Trusts the new own bundle for server connections and stores it in the state file.
    pub(crate) fn bundle_changed(&self, bundle: &Bundle) -> Result<()> {
        let roots: Vec<Vec<u8>> = bundle
            .x509_authorities
            .iter()
            .map(|a| a.asn1.clone())
            .collect();
        if roots.is_empty() {
            return Err(Error::InvalidResponse(
                "bundle has no X.509 authorities".into(),
            ));
        }
        let mut state = self.state.load()?.unwrap_or_default();
        if state.bundle != roots {
            self.verifier.set_roots(&roots)?;
            state.bundle = roots;
            self.state.store(&state)?;
        }
        Ok(())
    }

    /// Replaces the agent SVID: AttestAgent again (re-attestable) or RenewAgent, with a new
    /// key in the other slot; then the client certificate, the channel and the state file.
    pub(crate) async fn rotate(&self) -> Result<()> {
        let counter = self.metrics.agent_svid_rotate.clone();
        counter.time(self.rotate_inner(), error_code).await
    }

    async fn rotate_inner(&self) -> Result<()> {
        let _guard = self.identity_change.lock().await;
        let current = self.identity();
        let next = if current.reattestable {
            let (next, _) =
                attest_with_slot(&self.config, &self.verifier, other_slot(&current.key)).await?;
            next
        } else {
            let key = self
                .config
                .key_manager
                .generate_key(other_slot(&current.key), KeyType::EcP256)
                .await?;
            let chain = attest::renew(self.channel(), key.csr_der()?).await?;
            identity_from(chain, key, false)?
        };
        self.install(next)
    }

    /// Re-attests after the server said the agent must (expired, evicted, …).
    async fn reattest(&self) -> Result<()> {
        let _guard = self.identity_change.lock().await;
        let current = self.identity();
        let (next, _) =
            attest_with_slot(&self.config, &self.verifier, other_slot(&current.key)).await?;
        self.install(next)
    }

    fn install(&self, next: Identity) -> Result<()> {
        self.client_identity
            .set(&next.chain, next.key.pkcs8_der())?;
        // Connections carry the certificate they were opened with: open new ones.
        let channel = mtls_channel(&self.config, &self.verifier, &self.client_identity)?;
        let mut state = self.state.load()?.unwrap_or_default();
        state.svid = next.chain.clone();
        state.reattestable = next.reattestable;
        self.state.store(&state)?;
        tracing::info!(spiffe_id = %next.agent_id, "Agent SVID rotated");
        *self.mtls.write().unwrap_or_else(PoisonError::into_inner) = channel;
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// Reacts to a failed server call: a ban or an unrecoverable refusal is fatal (after the
    /// SVID is removed from the state file); a refusal that re-attestation fixes re-attests;
    /// anything else is left to the caller's backoff.
    pub(crate) async fn handle_error(&self, error: Error) -> Result<()> {
        let Error::Rpc { status, call } = &error else {
            tracing::warn!(%error, "server call failed");
            return Ok(());
        };
        match permission_denied_reason(status) {
            Some(Reason::AgentBanned) => {
                tracing::error!("Agent is banned: removing SVID and shutting down");
                self.state.remove_svid()?;
                Err(Error::Banned)
            }
            Some(
                reason @ (Reason::AgentExpired
                | Reason::AgentNotAttested
                | Reason::AgentNotActive
                | Reason::AgentMustReattest),
            ) => {
                if !self.identity().reattestable {
                    tracing::error!(
                        ?reason,
                        "Agent needs to re-attest but cannot: removing SVID and shutting down"
                    );
                    self.state.remove_svid()?;
                    return Err(Error::CannotReattest(status.message().to_owned()));
                }
                tracing::warn!(?reason, "server refused the agent; attesting again");
                if let Err(e) = self.reattest().await {
                    tracing::error!(error = %e, "Re-attestation failed: removing SVID and shutting down");
                    self.state.remove_svid()?;
                    return Err(e);
                }
                Ok(())
            }
            _ => {
                tracing::warn!(call, error = %status, "server call failed");
                Ok(())
            }
        }
    }
}

fn bootstrap_verifier(config: &ManagerConfig, server_id: SpiffeId) -> Result<ServerVerifier> {
    match &config.trust_bundle {
        TrustBundleSource::Insecure => {
            tracing::warn!("Insecure bootstrap enabled; skipping server certificate verification");
            ServerVerifier::new(server_id, None)
        }
        TrustBundleSource::Path { path, format } => {
            let bytes = std::fs::read(path).map_err(|e| {
                Error::Config(format!("reading trust bundle {}: {e}", path.display()))
            })?;
            let bundle = match format {
                TrustBundleFormat::Pem => {
                    Bundle::from_x509_authorities_pem(config.trust_domain.clone(), &bytes)
                }
                TrustBundleFormat::Spiffe => {
                    Bundle::from_spiffe_json(config.trust_domain.clone(), &bytes)
                }
            }
            .map_err(|e| Error::Config(format!("trust bundle {}: {e}", path.display())))?;
            let roots: Vec<Vec<u8>> = bundle
                .x509_authorities
                .into_iter()
                .map(|a| a.asn1)
                .collect();
            if roots.is_empty() {
                return Err(Error::Config(format!(
                    "trust bundle {} has no certificates",
                    path.display()
                )));
            }
            ServerVerifier::new(server_id, Some(&roots))
        }
    }
}

fn server_address(config: &ManagerConfig) -> String {
    if config.server_address.contains(':') && !config.server_address.starts_with('[') {
        format!("[{}]:{}", config.server_address, config.server_port)
    } else {
        format!("{}:{}", config.server_address, config.server_port)
    }
}

fn mtls_channel(
    config: &ManagerConfig,
    verifier: &Arc<ServerVerifier>,
    identity: &Arc<ClientIdentity>,
) -> Result<Channel> {
    let tls = tls::client_config(
        verifier.clone(),
        Some(identity.clone()),
        config.clock.clone(),
    )?;
    tls::channel(&server_address(config), tls)
}

/// The stored SVID, if it can be used as is: disk key manager, unexpired, key present.
async fn resume(config: &ManagerConfig, stored: Option<&AgentState>) -> Result<Option<Identity>> {
    let Some(state) = stored.filter(|s| !s.svid.is_empty()) else {
        tracing::info!("SVID is not found. Starting node attestation");
        return Ok(None);
    };
    if !config.key_manager.is_persistent() {
        tracing::info!("Key manager does not keep keys; starting node attestation");
        return Ok(None);
    }
    let leaf = parse_leaf(&state.svid[0])?;
    let mut key = None;
    for slot in KEY_SLOTS {
        if let Some(k) = config.key_manager.key(slot).await?
            && k.public_key_der() == leaf.spki
        {
            key = Some(k);
        }
    }
    let Some(key) = key else {
        tracing::info!("SVID key not found; starting node attestation");
        return Ok(None);
    };
    if config.clock.now() >= leaf.not_after {
        tracing::info!("SVID key recovered, but SVID is expired. Starting node attestation");
        return Ok(None);
    }
    identity_from(state.svid.clone(), key, state.reattestable).map(Some)
}

/// First attestation: new key, AttestAgent, GetBundle on the same connection, state stored.
async fn attest_new(
    config: &ManagerConfig,
    verifier: &Arc<ServerVerifier>,
    state_file: &StateFile,
) -> Result<(Identity, Bundle)> {
    let (identity, channel) = attest_with_slot(config, verifier, KEY_SLOTS[0]).await?;
    let bundle = crate::sync::fetch_bundle(channel).await?;
    let roots: Vec<Vec<u8>> = bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.clone())
        .collect();
    if roots.is_empty() {
        return Err(Error::InvalidResponse(
            "bundle has no X.509 authorities".into(),
        ));
    }
    verifier.set_roots(&roots)?;
    state_file.store(&AgentState {
        svid: identity.chain.clone(),
        bundle: roots,
        reattestable: identity.reattestable,
    })?;
    Ok((identity, bundle))
}

async fn attest_with_slot(
    config: &ManagerConfig,
    verifier: &Arc<ServerVerifier>,
    slot: &str,
) -> Result<(Identity, Channel)> {
    let key = config
        .key_manager
        .generate_key(slot, KeyType::EcP256)
        .await?;
    let tls = tls::client_config(verifier.clone(), None, config.clock.clone())?;
    let channel = tls::channel(&server_address(config), tls)?;
    let attested = attest::attest(channel.clone(), &*config.node_attestor, key.csr_der()?).await?;
    let identity = identity_from(attested.chain, key, attested.reattestable)?;
    if !identity.agent_id.is_member_of(&config.trust_domain) {
        return Err(Error::InvalidResponse(format!(
            "agent SVID {} is not in trust domain {}",
            identity.agent_id, config.trust_domain
        )));
    }
    Ok((identity, channel))
}

fn other_slot(key: &Key) -> &'static str {
    if key.id() == KEY_SLOTS[0] {
        KEY_SLOTS[1]
    } else {
        KEY_SLOTS[0]
    }
}

struct Leaf {
    spki: Vec<u8>,
    id: SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
}

fn parse_leaf(der: &[u8]) -> Result<Leaf> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::InvalidResponse(format!("agent SVID: {e}")))?;
    let id = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => SpiffeId::parse(u).ok(),
                _ => None,
            })
        })
        .ok_or_else(|| Error::InvalidResponse("agent SVID has no SPIFFE ID".into()))?;
    Ok(Leaf {
        spki: cert.public_key().raw.to_vec(),
        id,
        not_before: spire_time::from_unix_seconds(cert.validity().not_before.timestamp()),
        not_after: spire_time::from_unix_seconds(cert.validity().not_after.timestamp()),
    })
}

fn identity_from(chain: Vec<Vec<u8>>, key: Key, reattestable: bool) -> Result<Identity> {
    let leaf = parse_leaf(chain.first().map(Vec::as_slice).unwrap_or_default())?;
    if leaf.spki != key.public_key_der() {
        return Err(Error::InvalidResponse(
            "agent SVID does not match the agent key".into(),
        ));
    }
    Ok(Identity {
        agent_id: leaf.id,
        chain,
        key,
        reattestable,
        rotate_at: loops::jittered_half_life(leaf.not_before, leaf.not_after),
    })
}
