//! TLS pieces both sides share: the aws-lc-rs provider, rustls's clock read from ours, and
//! signing keys made from DER.

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use spire_time::SharedClock;

use crate::Error;

/// rustls's clock, read from ours, so certificate validity follows the injected clock.
#[derive(Debug)]
pub(crate) struct ClockTime(pub(crate) SharedClock);

// === impl ClockTime ===

impl rustls::time_provider::TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        self.0
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(UnixTime::since_unix_epoch)
    }
}

/// The one crypto provider (aws-lc-rs), built once per configuration.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// A certificate chain (DER, leaf first) with its key, ready for a resolver.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
) -> Result<Arc<CertifiedKey>, Error> {
    let signing_key =
        aws_lc_rs::sign::any_supported_type(key).map_err(|e| Error::Tls(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    // Refuse a key that does not belong to the leaf rather than failing every handshake.
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(e) => Err(Error::Tls(e.to_string())),
    }
}
