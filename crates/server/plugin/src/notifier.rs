//! Notifier: told when the server has loaded its trust bundle and whenever it changes.
//!
//! Built-in: [`K8sBundleNotifier`] (`Notifier "k8sbundle"`), which keeps the bundle's X.509
//! roots in a Kubernetes ConfigMap that agents mount as their bootstrap bundle.

mod k8sbundle;

use std::fmt;

use async_trait::async_trait;
use spire_svid::Bundle;

pub use k8sbundle::{K8sBundleCluster, K8sBundleConfig, K8sBundleNotifier};

use crate::Result;

/// A notifier plugin.
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug + 'static {
    /// The plugin name.
    fn name(&self) -> &str;

    /// The server loaded its bundle at startup. An error here stops the server (SPIRE's
    /// `NotifyAndAdvise(BundleLoaded)`).
    async fn bundle_loaded(&self, bundle: &Bundle) -> Result<()>;

    /// The bundle changed. Errors are logged by the caller.
    async fn bundle_updated(&self, bundle: &Bundle) -> Result<()>;
}
