//! SVID, key, CSR and trust-bundle types shared by server and agent, and the SPIFFE bundle
//! document (`keys` with `use` x509-svid / jwt-svid, `spiffe_sequence`, `spiffe_refresh_hint`),
//! and JWT-SVIDs ([`jwt`]).
#![forbid(unsafe_code)]

mod bundle;
mod csr;
mod document;
pub mod jwt;
mod key;
mod pem_bundle;
mod public_key;
pub mod serde_der;
mod x509_svid;

#[cfg(test)]
mod test_util;

pub use bundle::{Bundle, JwtAuthority, X509Authority};
pub use csr::{CsrError, verify_csr};
pub use document::{BundleError, JWT_SVID_USE, X509_SVID_USE};
pub use key::{KeyType, UnknownKeyType};
pub use pem_bundle::{encode_certificates_pem, parse_x509_authorities_pem};
pub use public_key::PublicKeyError;
pub use x509_svid::{X509Svid, X509SvidError};
