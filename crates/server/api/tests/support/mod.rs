//! A real API server for the integration tests: SQLite store, CA with an in-memory key
//! manager and a manual clock, tonic on a temp Unix socket, clients from spire-proto.
//!
//! Requests may carry `x-test-caller` (`local`, `admin`, `agent`, `downstream`, `any`) or
//! `x-test-peer` (`<spiffe id>;<decimal serial>`) metadata; a server layer turns them into the
//! `Caller` extension, exactly as a transport may. Without them the caller is classified from
//! the Unix socket's connection info (local). `x-test-addr` (`<ip>:<port>`) makes the request
//! look as if it came over TCP from that address (for the per-IP rate limits).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // shared by several test binaries

use std::sync::Arc;
use std::time::Duration;

use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_proto::spire::api::types;
use spire_server_api::{ApiContext, Caller, PeerSvid};
use spire_server_ca::{CaConfig, CaManager, Plugins};
use spire_server_datastore::{AttestedNode, DataStore, RegistrationEntry};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_plugin::keymanager::MemoryKeyManager;
use spire_time::{Clock, ManualClock};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::Request;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Server};

pub const TD: &str = "example.org";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub ds: Arc<dyn DataStore>,
    pub ctx: ApiContext,
    pub ca: Arc<CaManager>,
    pub channel: Channel,
    pub tcp_channel: Channel,
    /// Stops the change-feed follower when dropped.
    pub feed_stop: tokio::sync::watch::Sender<bool>,
}

impl Harness {
    /// Starts both route sets (admin and TCP) on two Unix sockets.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ApiContext)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = SqlConfig::sqlite(dir.path().join("datastore.sqlite3"));
        Self::start_on(dir, &config, adjust).await
    }

    /// Starts both route sets with a CA configured by `adjust_ca` (e.g. JWT settings).
    pub async fn start_with_ca(adjust_ca: impl FnOnce(&mut CaConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = SqlConfig::sqlite(dir.path().join("datastore.sqlite3"));
        Self::start_full(dir, &config, adjust_ca, |_| {}).await
    }

    /// Starts a server on the database `config` names (sockets go to `dir`).
    pub async fn start_on(
        dir: tempfile::TempDir,
        config: &SqlConfig,
        adjust: impl FnOnce(&mut ApiContext),
    ) -> Self {
        Self::start_full(dir, config, |_| {}, adjust).await
    }

    async fn start_full(
        dir: tempfile::TempDir,
        config: &SqlConfig,
        adjust_ca: impl FnOnce(&mut CaConfig),
        adjust: impl FnOnce(&mut ApiContext),
    ) -> Self {
        let clock = ManualClock::at_fixed_instant();
        let shared: spire_time::SharedClock = Arc::new(clock.clone());
        let ds: Arc<dyn DataStore> = Arc::new(
            SqlStore::open_with_clock(config, shared.clone())
                .await
                .unwrap(),
        );
        let td = TrustDomain::new(TD).unwrap();
        let mut ca_config = CaConfig::new(td.clone());
        adjust_ca(&mut ca_config);
        let ca = CaManager::new(
            ca_config,
            shared.clone(),
            Plugins {
                key_manager: Arc::new(MemoryKeyManager::new()),
                upstream_authority: None,
            },
            ds.clone(),
        )
        .await
        .unwrap();
        let mut ctx = ApiContext::new(td, ds.clone(), ca.ca(), shared);
        adjust(&mut ctx);
        let (feed_stop, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(ctx.entries.clone().run(secs(1), stop));
        let channel = serve(&dir, "admin.sock", spire_server_api::admin_routes(&ctx)).await;
        let tcp_channel = serve(&dir, "tcp.sock", spire_server_api::tcp_routes(&ctx)).await;
        Self {
            dir,
            clock,
            ds,
            ctx,
            ca: Arc::new(ca),
            channel,
            tcp_channel,
            feed_stop,
        }
    }

    /// Brings the authorized-entry cache up to date with writes made directly through `ds`.
    pub async fn refresh_entries(&self) {
        self.ctx.entries.refresh().await.unwrap();
    }

    pub fn td(&self) -> TrustDomain {
        TrustDomain::new(TD).unwrap()
    }

    pub fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }

    /// Stores an attested node directly.
    pub async fn add_node(&self, path: &str, serial: &str, attestation_type: &str) -> SpiffeId {
        let id = id(path);
        let node = AttestedNode {
            spiffe_id: id.clone(),
            attestation_type: attestation_type.into(),
            cert_serial_number: serial.into(),
            cert_not_after: self.now() + 3600,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            can_reattest: false,
            selectors: SelectorSet::new(),
        };
        self.ds.create_attested_node(node).await.unwrap();
        id
    }

    /// Stores an entry directly.
    pub async fn add_entry(&self, entry: RegistrationEntry) -> RegistrationEntry {
        let mut out = self
            .ds
            .create_registration_entries(vec![entry])
            .await
            .unwrap();
        out.pop().unwrap().unwrap()
    }
}

async fn serve(dir: &tempfile::TempDir, name: &str, routes: Routes) -> Channel {
    let path = dir.path().join(name);
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(tower::util::MapRequestLayer::new(inject_caller))
            .add_routes(routes)
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
    Endpoint::from_shared(format!("unix:{}", path.display()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The test transport's caller classification (see the module docs).
fn inject_caller<B>(mut request: http::Request<B>) -> http::Request<B> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let some_id = || id("/test/caller");
    let caller = match header("x-test-caller").as_deref() {
        Some("local") => Some(Caller::Local),
        Some("admin") => Some(Caller::Admin(some_id())),
        Some("agent") => Some(Caller::Agent(id("/spire/agent/test/caller"))),
        Some("downstream") => Some(Caller::Downstream(some_id())),
        Some("any") => Some(Caller::Anonymous),
        _ => header("x-test-peer").map(|peer| {
            // `<id>;<serial>` or `<id>;<serial>;<expires_at>`.
            let mut parts = peer.split(';');
            let id = parts.next().unwrap();
            let serial = parts.next().unwrap();
            let expires_at = parts.next().map_or(i64::MAX, |e| e.parse().unwrap());
            Caller::X509Svid(PeerSvid {
                id: SpiffeId::parse(id).unwrap(),
                serial_number: serial.to_owned(),
                expires_at,
            })
        }),
    };
    let addr = header("x-test-addr");
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    if let Some(addr) = addr {
        let extensions = request.extensions_mut();
        extensions.remove::<tonic::transport::server::UdsConnectInfo>();
        extensions.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(addr.parse().unwrap()),
        });
    }
    request
}

/// Makes `request` look as if it came over TCP from `addr` (`<ip>:<port>`).
pub fn from_addr<T>(mut request: Request<T>, addr: &str) -> Request<T> {
    request
        .metadata_mut()
        .insert("x-test-addr", addr.parse().unwrap());
    request
}

/// Marks a request as coming from `class` (see the module docs).
pub fn as_caller<T>(class: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-test-caller", class.parse().unwrap());
    request
}

/// Marks a request as coming from a TLS peer with this X509-SVID.
pub fn as_peer<T>(id: &str, serial: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-test-peer", format!("{id};{serial}").parse().unwrap());
    request
}

pub fn id(path: &str) -> SpiffeId {
    SpiffeId::from_path(TrustDomain::new(TD).unwrap(), path).unwrap()
}

pub fn pid(td: &str, path: &str) -> types::Spiffeid {
    types::Spiffeid {
        trust_domain: td.into(),
        path: path.into(),
    }
}

pub fn sel(t: &str, v: &str) -> types::Selector {
    types::Selector {
        r#type: t.into(),
        value: v.into(),
    }
}

/// A valid proto entry: `/workload` under `/spire/agent/a` with `unix:uid:1000`.
pub fn proto_entry(path: &str) -> types::Entry {
    types::Entry {
        spiffe_id: Some(pid(TD, path)),
        parent_id: Some(pid(TD, "/spire/agent/a")),
        selectors: vec![sel("unix", "uid:1000")],
        ..types::Entry::default()
    }
}

/// A domain entry for direct inserts.
pub fn domain_entry(path: &str, parent: &str, selector: &str) -> RegistrationEntry {
    RegistrationEntry {
        id: String::new(),
        spiffe_id: id(path),
        parent_id: id(parent),
        selectors: SelectorSet::non_empty([Selector::parse(selector).unwrap()]).unwrap(),
        x509_svid_ttl: 0,
        jwt_svid_ttl: 0,
        federates_with: Vec::new(),
        admin: false,
        downstream: false,
        expires_at: 0,
        dns_names: Vec::new(),
        revision_number: 0,
        store_svid: false,
        hint: String::new(),
        created_at: 0,
    }
}

/// A self-signed certificate usable as an X.509 authority in bundles.
pub fn ca_cert(cn: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().to_vec()
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
