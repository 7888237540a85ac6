//! The server CA: X.509 authority and JWT key slots with prepare/activate rotation, their
//! journal in the datastore, and minting of workload, agent and server X509-SVIDs and of
//! workload JWT-SVIDs.
//!
//! Credentials follow SPIRE's profiles exactly (see `ARCHITECTURE.md`); the SPIFFE ID, DNS
//! names and TTL of a workload SVID always come from the caller's entry, never from a CSR.
#![forbid(unsafe_code)]

mod config;
mod journal;
mod jwtkey;
mod manager;
mod x509ca;

pub use config::{CaConfig, CaSubject};
pub use jwtkey::{JwtKey, JwtSvid, KID_LEN};
pub use manager::authority::{AuthorityState, AuthorityStates, Refusal, RefusalCode};
pub use manager::{BUNDLE_SAFETY_MARGIN, CaManager, Plugins, ROTATE_INTERVAL, SlotId};
pub use x509ca::{Ca, X509Ca, X509SvidParams};

/// A CA failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No X.509 authority is active yet (the manager has not initialized).
    #[error("no active X.509 authority")]
    NoActiveAuthority,
    /// No JWT key is active (JWT-SVIDs are disabled, or the manager has not initialized).
    #[error("JWT key is not available for signing")]
    NoActiveJwtKey,
    /// Signing a JWT-SVID, or loading a JWT key into a signer, failed.
    #[error(transparent)]
    Jwt(#[from] spire_svid::jwt::JwtError),
    /// The system random source failed.
    #[error("random source failed")]
    Random,
    /// The CSR was refused; the message is SPIRE's ("malformed CSR", …).
    #[error(transparent)]
    Csr(#[from] spire_svid::CsrError),
    /// A name could not be put in a certificate.
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    /// Building or signing a certificate failed.
    #[error("{context}: {source}")]
    Certificate {
        /// What was being built.
        context: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A key manager or upstream authority failed.
    #[error(transparent)]
    Plugin(#[from] spire_server_plugin::Error),
    /// The datastore failed.
    #[error(transparent)]
    DataStore(#[from] spire_server_datastore::Error),
    /// A stored journal could not be read.
    #[error("corrupt CA journal: {0}")]
    CorruptJournal(String),
}

/// Result alias for CA calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Key manager failures surface as plugin failures.
impl From<spire_server_plugin::keymanager::Error> for Error {
    fn from(e: spire_server_plugin::keymanager::Error) -> Self {
        Self::Plugin(e.into())
    }
}

/// The "authority ID" SPIRE gives the CA whose key has this DER `SubjectPublicKeyInfo`: the
/// lowercase hex of SHA-1 over the key's bits (the subject key identifier SPIRE puts in its
/// CA certificates). Empty for a malformed key.
pub fn authority_id(spki_der: &[u8]) -> String {
    spire_server_plugin::x509::subject_key_id(spki_der)
        .map(hex::encode)
        .unwrap_or_default()
}

/// The key identifier journals were stored under before IDs followed SPIRE (SHA-256 over the
/// SPKI, first 160 bits); still looked up so that an existing journal is resumed.
pub(crate) fn legacy_authority_id(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    hex::encode(&digest.as_ref()[..20])
}
