//! UpstreamAuthority: an outside CA that signs the server's CA, making it an intermediate.

mod disk;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use disk::{DiskUpstreamAuthority, DiskUpstreamConfig};

use crate::Result;

/// Signs the server's intermediate CA.
#[async_trait]
pub trait UpstreamAuthority: Send + Sync + fmt::Debug + 'static {
    /// The plugin name used in configuration.
    fn name(&self) -> &'static str;
    /// Signs the CA described by `csr_der` (subject and URI SAN as requested, key from the CSR)
    /// for at most `preferred_ttl`, capped by the upstream's own lifetime.
    async fn mint_x509_ca(&self, csr_der: &[u8], preferred_ttl: Duration) -> Result<MintedX509Ca>;
}

/// What an upstream returns for a signed CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintedX509Ca {
    /// The signed CA first, then any upstream intermediates up to (not including) a root.
    pub x509_ca_chain: Vec<Vec<u8>>,
    /// The upstream roots that belong in the trust bundle.
    pub upstream_x509_roots: Vec<Vec<u8>>,
}
