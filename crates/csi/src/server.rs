//! Serving the Identity and Node services on the CSI Unix socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use spire_task::{Shutdown, Supervisor};
use tokio::net::UnixListener;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::config::Config;
use crate::identity::{IdentityService, VENDOR_VERSION};
use crate::mount::{Mounter, SystemMounter};
use crate::node::NodeService;

/// Mode of the CSI socket's directory when the driver has to create it.
const SOCKET_DIR_MODE: u32 = 0o755;
/// Mode of the CSI socket: the kubelet and the registrar run as root; nobody else dials it.
const SOCKET_MODE: u32 = 0o660;
/// How long in-flight CSI calls get to finish once the driver stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Errors of serving the CSI socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be set up.
    #[error("unable to listen on the CSI socket {}: {source}", path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: spire_uds::Error,
    },
    /// The gRPC server failed.
    #[error("serving the CSI socket failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The supervised server task failed.
    #[error(transparent)]
    Task(#[from] spire_task::Error),
}

/// The driver's two gRPC services.
#[derive(Debug, Clone)]
pub struct Driver {
    identity: IdentityService,
    node: NodeService,
}

// === impl Driver ===

impl Driver {
    /// The driver for `config`, mounting for real.
    pub fn new(config: &Config) -> Self {
        Self::with_mounter(config, Arc::new(SystemMounter::new()))
    }

    /// The driver for `config`, mounting through `mounter`.
    pub fn with_mounter(config: &Config, mounter: Arc<dyn Mounter>) -> Self {
        Self {
            identity: IdentityService::new(config.plugin_name()),
            node: NodeService::new(config.node_id(), config.workload_api_socket_dir(), mounter),
        }
    }

    /// `csi.v1.Identity` and `csi.v1.Node`; any other service or method is Unimplemented.
    pub fn routes(self) -> Routes {
        Routes::new(self.identity.into_server()).add_service(self.node.into_server())
    }
}

/// Binds the CSI socket at `path` (a stale socket there is replaced; any other file is
/// refused and left alone). Call inside a tokio runtime.
pub fn listen(path: &Path) -> Result<UnixListener, Error> {
    spire_uds::bind(path, SOCKET_DIR_MODE, SOCKET_MODE).map_err(|source| Error::Listen {
        path: path.to_owned(),
        source,
    })
}

/// Serves `driver` on `listener` until `stop`. Every connection goes through spire-uds's
/// `:authority` adapter, so kubelets that send the socket path as `:authority` are served.
pub async fn serve(listener: UnixListener, driver: Driver, stop: Shutdown) -> Result<(), Error> {
    Server::builder()
        .add_routes(driver.routes())
        .serve_with_incoming_shutdown(spire_uds::incoming(listener), stop.stopped())
        .await?;
    Ok(())
}

/// The driver process: binds the CSI socket and serves on it, supervised, until `stop` (which
/// the caller triggers on SIGTERM/SIGINT) or until serving fails.
pub async fn run(config: Config, stop: Shutdown) -> Result<(), Error> {
    tracing::info!(
        version = VENDOR_VERSION,
        node_id = config.node_id(),
        workload_api_socket_dir = %config.workload_api_socket_dir().display(),
        csi_socket_path = %config.csi_socket_path().display(),
        plugin_name = config.plugin_name(),
        "Starting"
    );
    let listener = listen(config.csi_socket_path())?;
    tracing::info!(
        path = %config.csi_socket_path().display(),
        "Serving the CSI socket"
    );
    let mut supervisor = Supervisor::new(stop.clone());
    supervisor.spawn("csi-server", serve(listener, Driver::new(&config), stop));
    supervisor.run(STOP_GRACE).await?;
    tracing::info!("Done");
    Ok(())
}
