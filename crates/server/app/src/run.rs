//! Starting, serving and stopping the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spire_metrics::rpc::{RpcMetrics, RpcMetricsLayer};
use spire_metrics::{CallCounter, Code, Registry};
use spire_server_api::logger::LogLevelControl;
use spire_server_api::ratelimit::RateLimits;
use spire_server_api::{ApiContext, ChangeFeed, SvidSource};
use spire_server_ca::{CaManager, Plugins};
use spire_server_datastore::DataStore;
use spire_server_datastore_sql::SqlStore;
use spire_server_plugin::keymanager::{DiskKeyManager, KeyIds, KeyManager, MemoryKeyManager};
use spire_server_plugin::nodeattestor::{
    JoinTokenAttestor, K8sPsatAttestor, NodeAttestors, X509PopAttestor,
};
use spire_server_plugin::upstreamauthority::{DiskUpstreamAuthority, UpstreamAuthority};
use spire_svid::X509Svid;
use spire_task::{Shutdown, Supervisor};
use spire_time::{SharedClock, refresh_at};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::config::{KeyManagerChoice, NodeAttestorChoice, ServerConfig};
use crate::datastore_metrics::Metered;
use crate::publish::BundleOutlets;
use crate::tls::{self, BundleVerifier, SvidResolver};
use crate::{Error, federation, uds};

/// A TLS handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight requests (and every task) get this long after a stop signal.
const GRACE: Duration = Duration::from_secs(10);

/// Runs the server until `stop`: opens the datastore and plugins, starts the CA and its
/// rotator, and serves the admin API on the Unix socket and the agent/admin API on the TLS
/// port. Every long-running task is supervised: the first one that panics, fails or ends
/// early stops the server, which returns [`Error::Task`] naming it. `stop` is also
/// triggered then.
pub async fn run(config: ServerConfig, clock: SharedClock, stop: Shutdown) -> Result<(), Error> {
    run_with(config, clock, stop, |_| {}).await
}

/// [`run`], with the Logger API on the admin socket reading and changing the process's log
/// level through `logger`.
pub async fn run_with_logger(
    config: ServerConfig,
    clock: SharedClock,
    stop: Shutdown,
    logger: Arc<dyn LogLevelControl>,
) -> Result<(), Error> {
    serve(config, clock, stop, Some(logger), |_| {}).await
}

/// [`run`], with `extra` called once every task is started (tests add faulty tasks).
async fn run_with(
    config: ServerConfig,
    clock: SharedClock,
    stop: Shutdown,
    extra: impl FnOnce(&mut Supervisor),
) -> Result<(), Error> {
    serve(config, clock, stop, None, extra).await
}

async fn serve(
    config: ServerConfig,
    clock: SharedClock,
    stop: Shutdown,
    logger: Option<Arc<dyn LogLevelControl>>,
    extra: impl FnOnce(&mut Supervisor),
) -> Result<(), Error> {
    // Tasks started before a start-up error are aborted when `tasks` is dropped.
    let mut tasks = Supervisor::new(stop.clone());
    let metrics = config.telemetry.registry(config.trust_domain.name());
    spire_metrics::start(
        &metrics,
        &config.telemetry,
        env!("CARGO_PKG_VERSION"),
        config.trust_domain.name(),
        &mut tasks,
    )
    .await
    .map_err(|e| Error::Config(e.to_string()))?;
    let plugins = &config.plugins;
    let datastore: Arc<dyn DataStore> = Arc::new(Metered::new(
        Arc::new(SqlStore::open_with_clock(&plugins.datastore, clock.clone()).await?),
        &metrics,
    ));
    let key_manager: Arc<dyn KeyManager> = match &plugins.key_manager {
        KeyManagerChoice::Disk(path) => Arc::new(DiskKeyManager::open_for(path, KeyIds::Server)?),
        KeyManagerChoice::Memory => Arc::new(MemoryKeyManager::new()),
    };
    let upstream_authority = match &plugins.upstream_authority {
        Some(disk) => Some(Arc::new(DiskUpstreamAuthority::load(disk, clock.clone())?)
            as Arc<dyn UpstreamAuthority>),
        None => None,
    };
    let ca_manager = Arc::new(
        CaManager::new(
            config.ca.clone(),
            clock.clone(),
            Plugins {
                key_manager,
                upstream_authority,
            },
            datastore.clone(),
        )
        .await?,
    );
    tasks.spawn("ca-manager", ca_manager.clone().run(stop.watch()));
    tasks.spawn(
        "ca-metrics",
        follow_ca(
            ca_manager.clone(),
            metrics.clone(),
            config.trust_domain.name().to_owned(),
            clock.clone(),
            stop.clone(),
        ),
    );

    let (svid_chain, svid_key) = mint_server_svid(&ca_manager)?;
    let resolver = Arc::new(SvidResolver::new(svid_chain.clone(), svid_key.clone())?);
    let (svid_tx, svid_rx) = watch::channel(svid_chain.clone());
    let (identity_tx, identity_rx) = watch::channel(server_identity(svid_chain.clone(), svid_key)?);
    let verifier = Arc::new(BundleVerifier::new(
        &bundle_roots(&datastore, &config).await?,
    )?);
    tasks.spawn(
        "server-svid-rotator",
        rotate_server_svid(
            ca_manager.clone(),
            clock.clone(),
            resolver.clone(),
            (svid_tx, identity_tx),
            metrics.call(&["svid", "rotate"], &[]),
            stop.clone(),
        ),
    );
    let mut context = ApiContext::new(
        config.trust_domain.clone(),
        datastore.clone(),
        ca_manager.ca(),
        clock.clone(),
    );
    // The one follower of this server: the authorized-entry cache and the change feed. The
    // CA's own bundle writes (new roots and JWT keys) wake it at once.
    let feed = context.entries.clone();
    ca_manager.on_bundle_change(move || feed.notify());
    context.ca_manager = Some(ca_manager.clone());
    context
        .entries
        .refresh()
        .await
        .map_err(|e| Error::Config(format!("loading the authorized-entry cache: {e}")))?;
    tasks.spawn(
        "change-feed",
        context
            .entries
            .clone()
            .run(config.cache_reload_interval, stop.watch()),
    );
    // Change events, expired entries and join tokens, and (when configured) long-expired
    // agents are deleted on their own schedules.
    crate::prune::Pruner::new(datastore.clone(), clock.clone(), &config)
        .notifying(context.entries.clone())
        .spawn(&mut tasks, &stop);
    tasks.spawn(
        "tls-verifier-refresher",
        refresh_verifier(
            datastore.clone(),
            config.clone(),
            verifier.clone(),
            context.entries.clone(),
            stop.clone(),
        ),
    );
    context.logger = logger;
    context.admin_ids = config.admin_ids.clone();
    context.audit_log = config.audit_log_enabled;
    context.rate_limits = Arc::new(RateLimits::new(
        clock.clone(),
        config.rate_limit_attestation,
        config.rate_limit_signing,
    ));
    context.default_x509_svid_ttl = config.ca.default_x509_svid_ttl;
    context.server_svid = Some(Arc::new(svid_rx) as Arc<dyn SvidSource>);
    context.node_attestors = Arc::new(node_attestors(&config, &datastore, &clock)?);
    // The bundle's copies outside the server (k8sbundle, k8s_configmap): a notifier that
    // cannot take the loaded bundle stops the server before it serves.
    let outlets = BundleOutlets::build(plugins)?;
    if !outlets.is_empty() {
        let bundle = datastore
            .fetch_bundle(&config.trust_domain)
            .await
            .map_err(|e| Error::Config(format!("reading the trust bundle: {e}")))?
            .ok_or_else(|| Error::Config("the trust bundle is missing".into()))?;
        outlets.loaded(&bundle).await?;
        tasks.spawn(
            "bundle-publisher",
            outlets.follow(
                datastore.clone(),
                config.trust_domain.clone(),
                context.entries.clone(),
                stop.clone(),
                bundle,
            ),
        );
    }
    // health_checks: the checks run (and log) even without the listener, as in SPIRE. A
    // listener that cannot start is logged and the server goes on serving.
    let checkers = crate::health::server_checkers(
        config.socket_path.clone(),
        &config.trust_domain,
        datastore.clone(),
        ca_manager.clone(),
    );
    let health = config.health.clone();
    let health_stop = stop.clone();
    tasks.spawn("health-checks", async move {
        if let Err(error) = spire_health::serve(&health, checkers, health_stop.stopped()).await {
            tracing::error!(%error, "Error serving health checks");
            health_stop.stopped().await;
        }
    });
    context.push = !config.disable_push;
    let refresher = federation::start(
        &config,
        federation::Services {
            datastore: datastore.clone(),
            clock: clock.clone(),
            feed: context.entries.clone(),
            server_svid: identity_rx,
        },
        &mut tasks,
    )
    .await?;
    context.bundle_refresher = Some(refresher);

    let uds_listener = uds::bind_admin_socket(&config.socket_path)?;
    let addr: SocketAddr = format!("{}:{}", config.bind_address, config.bind_port)
        .parse()
        .map_err(|e| Error::Config(format!("invalid bind address: {e}")))?;
    let tcp_listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding {addr}"), e))?;
    let tls_config = Arc::new(tls::server_config(resolver, verifier, clock.clone())?);
    tracing::info!(
        trust_domain = %config.trust_domain,
        admin_socket = %config.socket_path.display(),
        address = %addr,
        "Starting Server APIs"
    );

    let (conn_tx, conn_rx) = mpsc::channel(128);
    tasks.spawn(
        "tls-acceptor",
        accept_tls(
            tcp_listener,
            TlsAcceptor::from(tls_config),
            conn_tx,
            stop.clone(),
        ),
    );
    // One call counter per method, shared by both listeners (SPIRE's `rpc.<service>.<method>`).
    let policy: Vec<String> = spire_server_api::authz::policy().map(|(m, _)| m).collect();
    let rpc = RpcMetricsLayer::new(RpcMetrics::new(&metrics, policy.iter().map(String::as_str)));
    // After a stop signal both servers refuse new calls and finish the ones in flight.
    tasks.spawn(
        "admin-api",
        Server::builder()
            .layer(rpc.clone())
            .add_routes(spire_server_api::admin_routes(&context))
            .serve_with_incoming_shutdown(spire_uds::incoming(uds_listener), stop.stopped()),
    );
    tasks.spawn(
        "tcp-api",
        Server::builder()
            .layer(rpc)
            .add_routes(spire_server_api::tcp_routes(&context))
            .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), stop.stopped()),
    );
    extra(&mut tasks);

    let result = tasks.run(GRACE).await;
    let _ = std::fs::remove_file(&config.socket_path);
    result?;
    tracing::info!("Server stopped");
    Ok(())
}

/// The configured NodeAttestors, each built from its resolved configuration.
fn node_attestors(
    config: &ServerConfig,
    datastore: &Arc<dyn DataStore>,
    clock: &SharedClock,
) -> Result<NodeAttestors, Error> {
    let mut attestors = NodeAttestors::new();
    for choice in &config.plugins.node_attestors {
        attestors.insert(match choice {
            NodeAttestorChoice::JoinToken => Arc::new(JoinTokenAttestor::new(
                config.trust_domain.clone(),
                datastore.clone(),
                clock.clone(),
            )),
            NodeAttestorChoice::X509Pop(x509pop) => Arc::new(X509PopAttestor::load(
                x509pop,
                config.trust_domain.clone(),
                clock.clone(),
            )?),
            NodeAttestorChoice::K8sPsat(k8s_psat) => Arc::new(
                K8sPsatAttestor::new(k8s_psat, config.trust_domain.clone())
                    .map_err(|e| Error::Config(format!("NodeAttestor \"k8s_psat\": {e}")))?,
            ),
        });
    }
    Ok(attestors)
}

fn mint_server_svid(ca: &CaManager) -> Result<(Vec<Vec<u8>>, Vec<u8>), Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Tls(format!("server SVID key: {e}")))?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let chain = ca.ca().sign_server_x509_svid(&spki)?;
    Ok((chain, key.serialize_der()))
}

/// The server SVID as the bundle endpoint presents it.
fn server_identity(chain: Vec<Vec<u8>>, key: Vec<u8>) -> Result<Arc<X509Svid>, Error> {
    X509Svid::from_chain(chain, key)
        .map(Arc::new)
        .map_err(|e| Error::Tls(format!("server SVID: {e}")))
}

/// Re-mints the server SVID at half its lifetime (or as soon as the CA has rotated), and
/// publishes each new one as a chain (Debug API) and as an SVID (bundle endpoint).
async fn rotate_server_svid(
    ca: Arc<CaManager>,
    clock: SharedClock,
    resolver: Arc<SvidResolver>,
    (published, identity): (watch::Sender<Vec<Vec<u8>>>, watch::Sender<Arc<X509Svid>>),
    rotations: CallCounter,
    stop: Shutdown,
) {
    let mut chain = published.borrow().clone();
    let mut activations = ca.activations();
    loop {
        let wait = match spire_server_plugin::x509::parse_certificate(&chain[0]) {
            Ok(leaf) => {
                let not_before =
                    spire_time::from_unix_seconds(leaf.validity().not_before.timestamp());
                let not_after = spire_server_plugin::x509::not_after(&leaf);
                refresh_at(not_before, not_after, (1, 2), None)
                    .duration_since(clock.now())
                    .unwrap_or_default()
            }
            Err(_) => Duration::ZERO,
        };
        tokio::select! {
            // Half-life reached: mint a fresh SVID.
            _ = tokio::time::sleep(wait.max(Duration::from_secs(1))) => {}
            // Another CA became active: move off the old one before it can be tainted.
            Ok(()) = activations.changed() => {}
            // Stopping.
            () = stop.stopped() => return,
        }
        let rotation = rotations.start();
        match mint_server_svid(&ca) {
            Ok((new_chain, key)) => match resolver.set(new_chain.clone(), key.clone()) {
                Ok(()) => {
                    rotation.finish(Code::Ok);
                    tracing::debug!("server SVID rotated");
                    match server_identity(new_chain.clone(), key) {
                        Ok(svid) => {
                            identity.send_replace(svid);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not publish rotated server SVID")
                        }
                    }
                    published.send_replace(new_chain.clone());
                    chain = new_chain;
                }
                Err(error) => {
                    rotation.finish(Code::Internal);
                    tracing::warn!(%error, "could not install rotated server SVID")
                }
            },
            Err(error) => {
                rotation.finish(Code::Internal);
                tracing::warn!(%error, "could not rotate server SVID")
            }
        }
    }
}

/// SPIRE's X.509 CA rotation series, from the CA manager's activations: the counter
/// `ca.manager.x509_ca.activate` (the authority active at start-up counts, as in SPIRE) and
/// the gauges `manager.x509_ca.rotate.expiration` (unix seconds) and `…ttl` (seconds left at
/// activation), labelled with the trust domain.
async fn follow_ca(
    ca: Arc<CaManager>,
    metrics: Registry,
    trust_domain: String,
    clock: SharedClock,
    stop: Shutdown,
) {
    let activate = metrics.counter(&["ca", "manager", "x509_ca", "activate"], &[]);
    let labels = [("trust_domain_id", trust_domain.as_str())];
    let expiration = metrics.gauge(&["manager", "x509_ca", "rotate", "expiration"], &labels);
    let ttl = metrics.gauge(&["manager", "x509_ca", "rotate", "ttl"], &labels);
    let mut activations = ca.activations();
    loop {
        if let Some((_, current)) = ca.current().await {
            activate.inc();
            let not_after = current.not_after();
            expiration.set(spire_time::to_unix_seconds(not_after));
            let left = not_after.duration_since(clock.now()).unwrap_or_default();
            ttl.set(i64::try_from(left.as_secs()).unwrap_or(i64::MAX));
        }
        tokio::select! {
            changed = activations.changed() => if changed.is_err() {
                stop.stopped().await;
                return;
            },
            () = stop.stopped() => return,
        }
    }
}

async fn bundle_roots(
    datastore: &Arc<dyn DataStore>,
    config: &ServerConfig,
) -> Result<Vec<Vec<u8>>, Error> {
    let bundle = datastore
        .fetch_bundle(&config.trust_domain)
        .await
        .map_err(|e| Error::Config(format!("reading the trust bundle: {e}")))?;
    Ok(bundle
        .map(|b| b.x509_authorities.into_iter().map(|a| a.asn1).collect())
        .unwrap_or_default())
}

/// Reloads the TLS verifier's roots whenever the change feed reports a bundle change (from
/// this server or, within `cache_reload_interval`, another one).
async fn refresh_verifier(
    datastore: Arc<dyn DataStore>,
    config: ServerConfig,
    verifier: Arc<BundleVerifier>,
    feed: Arc<ChangeFeed>,
    stop: Shutdown,
) {
    let mut states = feed.subscribe();
    let mut last = Vec::new();
    loop {
        let seen = *states.borrow_and_update();
        match bundle_roots(&datastore, &config).await {
            Ok(roots) if roots != last && !roots.is_empty() => match verifier.set_roots(&roots) {
                Ok(()) => last = roots,
                Err(error) => tracing::warn!(%error, "could not load the trust bundle into TLS"),
            },
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not read the trust bundle"),
        }
        tokio::select! {
            // A bundle (or, after a reload, anything) changed.
            changed = states.wait_for(|s| {
                s.bundles_revision != seen.bundles_revision || s.loads != seen.loads
            }) => if changed.is_err() {
                return;
            },
            // Stopping.
            () = stop.stopped() => return,
        }
    }
}

/// Accepts TCP connections and runs each TLS handshake in its own task, so one slow client
/// never holds up the others; finished streams go to the gRPC server.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: mpsc::Sender<Result<tokio_rustls::server::TlsStream<TcpStream>, std::io::Error>>,
    stop: Shutdown,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            // A new connection.
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            // Stopping: close the listener.
            () = stop.stopped() => return,
        };
        // gRPC writes small frames and waits for the answer: with Nagle's algorithm each
        // reply could sit behind the peer's delayed ACK (~40 ms per round trip).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(caller_addr = %peer, %error, "could not set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = connections.send(Ok(stream)).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(caller_addr = %peer, %error, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(caller_addr = %peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests;
