//! The listener both fakes share: accepts on a loopback port, TLS (or plain TCP), HTTP/2 or
//! HTTP/1.1 by ALPN, one task per connection, and can be taken down and brought back up on
//! the same port.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Response bodies of the fakes.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What the handler learns about the connection a request came on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    /// The verified client certificate's subject: common name and organisations.
    pub(crate) client_cert: Option<(String, Vec<String>)>,
}

/// An error that makes hyper drop the connection without answering.
#[derive(Debug)]
pub(crate) struct Abort(pub(crate) String);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Abort {}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Abort>> + Send>>;

/// Answers one request.
pub(crate) type Handler = Arc<dyn Fn(Arc<Peer>, Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// A running listener. Dropping it stops accepting and aborts every connection.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
    connections: Arc<AtomicUsize>,
    /// Whether the listener should be open.
    up: watch::Sender<bool>,
    /// Whether it is (as the accept loop last reported).
    bound: watch::Receiver<bool>,
}

// === impl Server ===

impl Server {
    /// Listens on `127.0.0.1:<random port>`.
    pub(crate) async fn start(tls: Option<Arc<ServerConfig>>, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let connections = Arc::new(AtomicUsize::new(0));
        let (up, up_rx) = watch::channel(true);
        let (bound_tx, bound) = watch::channel(true);
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            tls.map(TlsAcceptor::from),
            handler,
            up_rx,
            bound_tx,
            connections.clone(),
        ));
        Self {
            addr,
            task,
            connections,
            up,
            bound,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Closes the listener and resets every open connection (`up == false`), or listens
    /// again on the same port; returns once that is done.
    pub(crate) async fn set_up(&self, up: bool) {
        self.up.send_replace(up);
        let mut bound = self.bound.clone();
        bound
            .wait_for(|b| *b == up)
            .await
            .expect("the accept loop runs as long as the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    mut up: watch::Receiver<bool>,
    bound: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
) {
    let mut listener = Some(listener);
    // Dropping the set (when this task is aborted) aborts every connection task.
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        if !*up.borrow_and_update() {
            tasks.abort_all();
            listener = None;
            bound.send_replace(false);
            if up.changed().await.is_err() {
                return;
            }
            continue;
        }
        let Some(open) = &listener else {
            listener = Some(rebind(addr).await);
            bound.send_replace(true);
            continue;
        };
        tokio::select! {
            // A new connection: serve it on its own task.
            accepted = open.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                tasks.spawn(serve_connection(tcp, tls.clone(), handler.clone()));
            }
            // Taken down or brought up: re-evaluated at the top of the loop.
            changed = up.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Binds `addr` again after a listener was closed; the port is normally free at once.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if attempts < 200 => {
                attempts += 1;
                eprintln!("spire-test-k8s: rebinding {addr}: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("unable to listen on {addr} again: {error}"),
        }
    }
}

async fn serve_connection(tcp: TcpStream, tls: Option<TlsAcceptor>, handler: Handler) {
    let _ = tcp.set_nodelay(true);
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let peer = Arc::new(Peer {
                client_cert: stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| subject(leaf)),
            });
            let service = service_fn(move |request| handler(peer.clone(), request));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        None => {
            let peer = Arc::new(Peer::default());
            let service = service_fn(move |request| handler(peer.clone(), request));
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        }
    }
}

/// The common name and organisations of a certificate's subject.
fn subject(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_owned();
    let orgs = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some((cn, orgs))
}

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt as _;
    http_body_util::Full::new(bytes.into()).boxed()
}
