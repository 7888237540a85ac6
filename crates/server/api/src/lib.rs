//! The server's gRPC APIs, wire-compatible with SPIRE, behind one authorization layer.
//!
//! One module per service ([`entry`], [`bundle`], [`agent`], [`svid`], [`trust_domain`],
//! [`debug`], [`logger`], and spire-rs's own [`push`]), each a `Config` → `new` → tonic server type; proto ⇄ domain
//! conversion at the edge ([`convert`]); one error-to-status helper that logs; SPIRE's per-IP
//! rate limits ([`ratelimit`]), applied by the limited handlers.
//! [`admin_routes`] (the admin Unix socket: everything, including Debug, Health and Logger)
//! and [`tcp_routes`] (Agent, Bundle, Entry, SVID, TrustDomain, LocalAuthority, Push) return
//! tonic [`Routes`] whose every service is already wrapped by [`authz::Authorized`], so a
//! transport only has to serve them:
//!
//! ```ignore
//! tonic::transport::Server::builder()
//!     .add_routes(spire_server_api::admin_routes(&ctx))
//!     .serve_with_incoming(uds_stream)
//!     .await?;
//! ```
//!
//! Callers are classified from tonic's connection info (`UdsConnectInfo` → local,
//! `TlsConnectInfo<TcpConnectInfo>` peer certificates → X509-SVID), unless the transport
//! inserts an [`authz::Caller`] request extension itself.
#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod authz;
pub mod bundle;
pub mod convert;
pub mod debug;
pub mod dns;
pub mod entry;
pub mod health;
pub mod local_authority;
pub mod logger;
pub mod push;
pub mod ratelimit;
mod status;
mod stubs;
pub mod svid;
pub mod trust_domain;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::{
    agent::v1::agent_server::AgentServer, bundle::v1::bundle_server::BundleServer,
    debug::v1::debug_server::DebugServer, entry::v1::entry_server::EntryServer,
    localauthority::v1::local_authority_server::LocalAuthorityServer,
    logger::v1::logger_server::LoggerServer, svid::v1::svid_server::SvidServer,
    trustdomain::v1::trust_domain_server::TrustDomainServer,
};
use spire_proto::spirers::server::push::v1::push_server::PushServer;
use spire_server_ca::{Ca, CaManager};
use spire_server_datastore::DataStore;
use spire_server_plugin::nodeattestor::NodeAttestors;
use spire_time::SharedClock;
use tonic::service::Routes;
use tonic_health::pb::health_server::HealthServer;

pub use authz::{AuthorizedCaller, Caller, CallerClass, PeerSvid};
pub use spire_server_cache::{ChangeFeed, FeedState};
pub use trust_domain::BundleRefresher;

use authz::{Authorized, Authorizer};

/// Everything the services need, shared by all of them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiContext {
    /// The server's trust domain.
    pub trust_domain: TrustDomain,
    /// The datastore.
    pub datastore: Arc<dyn DataStore>,
    /// The minting handle of the server CA.
    pub ca: Ca,
    /// Wall time.
    pub clock: SharedClock,
    /// `admin_ids`: SPIFFE IDs (any trust domain) with admin rights over mTLS.
    pub admin_ids: Vec<SpiffeId>,
    /// `default_x509_svid_ttl`, used by MintX509SVID when the request has no TTL.
    pub default_x509_svid_ttl: Duration,
    /// When the server started (Debug.GetInfo's uptime).
    pub started_at: SystemTime,
    /// The server's own X509-SVID, shown by Debug.GetInfo when set.
    pub server_svid: Option<Arc<dyn SvidSource>>,
    /// The change feed and authorized-entry cache over `datastore`. Services that write call
    /// [`ChangeFeed::notify`] after each committed write; the server runs
    /// [`ChangeFeed::run`] (one follower per server).
    pub entries: Arc<ChangeFeed>,
    /// The configured NodeAttestors by name (`AttestAgent`'s `data.type`); none by default.
    pub node_attestors: Arc<NodeAttestors>,
    /// Serve `spirers.server.push.v1.Push` (default true). When false the service is not
    /// routed and Watch answers Unimplemented, as a SPIRE server does: agents then poll.
    pub push: bool,
    /// The federation refresher behind TrustDomain's `RefreshBundle`; none by default (every
    /// refresh then answers SPIRE's "no relationship with trust domain").
    pub bundle_refresher: Option<Arc<dyn BundleRefresher>>,
    /// The process's log level, behind the Logger service on the admin socket; none by
    /// default (the Logger methods then answer `Unimplemented`).
    pub logger: Option<Arc<dyn logger::LogLevelControl>>,
    /// `audit_log_enabled`: one `API accessed` record per call, or per batch item
    /// ([`audit`]); off by default.
    pub audit_log: bool,
    /// The CA manager behind the LocalAuthority service; none by default (its methods then
    /// answer `Unimplemented`).
    pub ca_manager: Option<Arc<CaManager>>,
    /// `ratelimit { }`: per-IP token buckets for AttestAgent and the signing methods, TCP
    /// callers only ([`ratelimit`]); both limits on by default, as in SPIRE.
    pub rate_limits: Arc<ratelimit::RateLimits>,
}

/// Where the server's current X509-SVID chain (leaf first, DER) can be read.
pub trait SvidSource: Send + Sync + fmt::Debug + 'static {
    /// The current chain; empty when the server has none yet.
    fn x509_svid_chain(&self) -> Vec<Vec<u8>>;
}

// === impl ApiContext ===

impl ApiContext {
    /// A context with SPIRE's defaults: no `admin_ids`, a 1 h default X509-SVID TTL, started
    /// now, no server SVID, no bundle refresher, and a change feed over `datastore` (loaded on first use; the
    /// caller spawns its [`ChangeFeed::run`]).
    pub fn new(
        trust_domain: TrustDomain,
        datastore: Arc<dyn DataStore>,
        ca: Ca,
        clock: SharedClock,
    ) -> Self {
        Self {
            trust_domain,
            entries: Arc::new(ChangeFeed::new(datastore.clone())),
            node_attestors: Arc::default(),
            datastore,
            ca,
            started_at: clock.now(),
            rate_limits: Arc::new(ratelimit::RateLimits::new(clock.clone(), true, true)),
            clock,
            admin_ids: Vec::new(),
            default_x509_svid_ttl: Duration::from_secs(3600),
            server_svid: None,
            push: true,
            bundle_refresher: None,
            logger: None,
            audit_log: false,
            ca_manager: None,
        }
    }
}

impl SvidSource for tokio::sync::watch::Receiver<Vec<Vec<u8>>> {
    fn x509_svid_chain(&self) -> Vec<Vec<u8>> {
        self.borrow().clone()
    }
}

/// Every service, for the admin Unix socket: Agent, Bundle, Entry, SVID, TrustDomain,
/// LocalAuthority, Push, Debug, Logger (over [`ApiContext::logger`]; `Unimplemented` without
/// one) and `grpc.health.v1.Health` (SERVING while the server's own bundle can be read, see
/// [`health`]), each wrapped by the authorization check.
pub fn admin_routes(ctx: &ApiContext) -> Routes {
    let authorizer = Authorizer::new(ctx);
    let health = HealthServer::new(health::HealthService::new(health::Config::from(ctx)));
    let routes = common_routes(ctx, &authorizer)
        .add_service(Authorized::new(
            DebugServer::new(debug::DebugService::new(debug::Config::from(ctx))),
            authorizer.clone(),
        ))
        .add_service(Authorized::new(health, authorizer.clone()));
    match &ctx.logger {
        Some(control) => routes.add_service(Authorized::new(
            LoggerServer::new(logger::LoggerService::new(control.clone())),
            authorizer,
        )),
        None => routes.add_service(Authorized::new(stubs::Logger, authorizer)),
    }
}

/// The services of the TCP (mTLS) listener: Agent, Bundle, Entry, SVID, TrustDomain,
/// LocalAuthority and spire-rs's Push (unless [`ApiContext::push`] is false), each wrapped by
/// the authorization check. Debug, Health and Logger are not routed (`Unimplemented`).
pub fn tcp_routes(ctx: &ApiContext) -> Routes {
    common_routes(ctx, &Authorizer::new(ctx))
}

fn common_routes(ctx: &ApiContext, authorizer: &Authorizer) -> Routes {
    let routes = Routes::new(Authorized::new(
        AgentServer::new(agent::AgentService::new(agent::Config::from(ctx))),
        authorizer.clone(),
    ))
    .add_service(Authorized::new(
        BundleServer::new(bundle::BundleService::new(bundle::Config::from(ctx))),
        authorizer.clone(),
    ))
    .add_service(Authorized::new(
        EntryServer::new(entry::EntryService::new(entry::Config::from(ctx))),
        authorizer.clone(),
    ))
    .add_service(Authorized::new(
        SvidServer::new(svid::SvidService::new(svid::Config::from(ctx))),
        authorizer.clone(),
    ))
    .add_service(Authorized::new(
        TrustDomainServer::new(trust_domain::TrustDomainService::new(
            trust_domain::Config::from(ctx),
        )),
        authorizer.clone(),
    ));
    let routes = match &ctx.ca_manager {
        Some(manager) => routes.add_service(Authorized::new(
            LocalAuthorityServer::new(local_authority::LocalAuthorityService::new(manager.clone())),
            authorizer.clone(),
        )),
        None => routes.add_service(Authorized::new(stubs::LocalAuthority, authorizer.clone())),
    };
    if !ctx.push {
        return routes;
    }
    routes.add_service(Authorized::new(
        PushServer::new(push::PushService::new(push::Config::from(ctx))),
        authorizer.clone(),
    ))
}
