//! BundlePublisher: publishes the trust bundle somewhere consumers can fetch it.
//!
//! Built-in: [`K8sConfigMapPublisher`] (`BundlePublisher "k8s_configmap"`), which server-side
//! applies the bundle into a ConfigMap per configured cluster.

mod k8s_configmap;

use std::fmt;

use async_trait::async_trait;
use spire_svid::Bundle;

pub use k8s_configmap::{
    BundleFormat, K8sConfigMapCluster, K8sConfigMapConfig, K8sConfigMapPublisher,
};

use crate::Result;

/// A bundle publisher plugin.
#[async_trait]
pub trait BundlePublisher: Send + Sync + fmt::Debug + 'static {
    /// The plugin name.
    fn name(&self) -> &str;

    /// Publishes `bundle` (the server calls this on every bundle change and periodically;
    /// the publisher skips what it has already published).
    async fn publish(&self, bundle: &Bundle) -> Result<()>;
}
