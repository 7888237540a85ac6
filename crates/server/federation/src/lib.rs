//! SPIFFE federation for spire-server: the bundle endpoint that serves this trust domain's
//! bundle document over HTTPS ([`BundleEndpoint`]), the client that fetches another trust
//! domain's document ([`BundleClient`]), and the [`Refresher`] that keeps every federated
//! bundle in the datastore fresh on SPIRE's schedule.
#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use spire_id::{SpiffeId, TrustDomain};
use spire_svid::BundleError;

mod client;
mod endpoint;
mod refresher;
mod tls;

pub use client::{BundleClient, ClientOptions, EndpointAuth};
pub use endpoint::{
    BundleEndpoint, DEFAULT_FILE_SYNC_INTERVAL, DEFAULT_REFRESH_HINT, EndpointConfig,
    EndpointLimits, ServingCertFile, ServingIdentity,
};
pub use refresher::schedule::{MINIMUM_REFRESH_HINT, RETRY_BASE, next_poll, refresh_hint};
pub use refresher::{RefreshOutcome, RefreshStatus, Refresher, RefresherConfig, RefresherHandle};

/// A federation failure. Messages follow SPIRE's where SPIRE has one, since they reach
/// `spire-server federation refresh` and the logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle endpoint cannot listen on its address.
    #[error("unable to listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why binding failed.
        source: io::Error,
    },
    /// `https_web` with `acme` was configured; only `serving_cert_file` is implemented.
    #[error(
        "bundle endpoint profile \"https_web\" with \"acme\" is not supported by spire-rs; \
         use \"serving_cert_file\" (or the \"https_spiffe\" profile)"
    )]
    AcmeUnsupported,
    /// A `serving_cert_file` certificate or key cannot be read or used.
    #[error("unable to load serving certificate from {path}: {reason}")]
    ServingCertificate {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key or TLS setting rustls refuses.
    #[error("tls: {0}")]
    Tls(String),
    /// `bundle_endpoint_url` is not an `https` URL with a host.
    #[error("invalid bundle endpoint URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `https_spiffe` needs the bundle of the endpoint ID's trust domain, and there is none.
    #[error("can't perform SPIFFE Authentication: local copy of bundle not found")]
    NoEndpointBundle {
        /// The trust domain whose bundle is missing.
        trust_domain: TrustDomain,
    },
    /// The TCP connection to the endpoint failed.
    #[error("failed to fetch bundle: unable to connect to {address}: {source}")]
    Connect {
        /// `host:port`.
        address: String,
        /// Why connecting failed.
        source: io::Error,
    },
    /// The endpoint's certificate was not accepted, or the TLS handshake failed otherwise.
    #[error("failed to fetch bundle: TLS handshake failed: {0}")]
    Handshake(String),
    /// `https_spiffe`: the endpoint's X509-SVID names another SPIFFE ID.
    #[error("failed to fetch bundle: unexpected ID {found:?}, expected \"{expected}\"")]
    PeerIdMismatch {
        /// `endpoint_spiffe_id`.
        expected: SpiffeId,
        /// The ID the endpoint presented.
        found: String,
    },
    /// `https_web`: Web PKI refused a certificate that carries a SPIFFE ID.
    #[error(
        "failed to authenticate bundle endpoint using web authentication but the server \
         certificate contains SPIFFE ID {spiffe_id:?}: maybe use https_spiffe instead of \
         https_web: {reason}"
    )]
    WebAuthWithSpiffeId {
        /// The certificate's SPIFFE ID.
        spiffe_id: String,
        /// Why Web PKI refused it.
        reason: String,
    },
    /// The HTTP exchange failed.
    #[error("failed to fetch bundle: {0}")]
    Http(String),
    /// The endpoint answered with a status other than 200.
    #[error("unexpected status {status} fetching bundle: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The response body is larger than [`ClientOptions::max_body_size`].
    #[error("failed to fetch bundle: response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The whole fetch took longer than [`ClientOptions::timeout`].
    #[error("failed to fetch bundle: timed out after {0:?}")]
    Timeout(Duration),
    /// The body is not a SPIFFE bundle document.
    #[error("invalid bundle from endpoint: {0}")]
    InvalidBundle(#[from] BundleError),
    /// The document holds no X.509 authority, so it could neither authenticate the next
    /// `https_spiffe` fetch nor any X509-SVID; the stored bundle is kept.
    #[error("invalid bundle from endpoint: no X.509 authorities")]
    NoX509Authorities,
    /// An X.509 authority of the document names another trust domain in its URI SAN.
    #[error(
        "invalid bundle from endpoint: X.509 authority {index} belongs to {found:?}, \
         not to trust domain \"{expected}\""
    )]
    WrongTrustDomain {
        /// The trust domain the bundle was fetched for.
        expected: TrustDomain,
        /// The authority's URI SAN.
        found: String,
        /// Position of the authority in the document.
        index: usize,
    },
    /// Reading or storing a bundle failed.
    #[error("datastore: {0}")]
    DataStore(#[from] spire_server_datastore::Error),
    /// The refresher is no longer running.
    #[error("the bundle refresher has stopped")]
    Stopped,
}
