//! The server's `health_checks` subsystems, named and detailed as SPIRE's:
//!
//! | Subsystem | Check | Details on failure |
//! |---|---|---|
//! | `server` | `Bundle.GetBundle` over the server's own admin socket | `{"get_bundle_err": "unable to fetch bundle"}` |
//! | `catalog.datastore` | the datastore lists bundles | `{"list_bundle_err": "<error>"}` |
//! | `server.ca` | the CA signs a throwaway X509-SVID for `spiffe://<td>/for/health/check/only` | `{"sign_x509_svid_err": "<error>"}` |
//! | `server.ca.rotator` | no more than 10 rotation ticks in a row failed | `{"rotation_err": "rotations exceed the threshold number of failures"}` |
//!
//! Each is live and ready alike, with the same details for both (`{}` when fine).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use spire_health::{Checker, State};
use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::bundle::v1::{GetBundleRequest, bundle_client::BundleClient};
use spire_server_ca::{Ca, CaManager, X509SvidParams};
use spire_server_datastore::{DataStore, Pagination};

/// How long the admin API may take to answer `GetBundle`.
const ADMIN_API_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the datastore may take to list (SPIRE: 1 min).
const DATASTORE_TIMEOUT: Duration = Duration::from_secs(60);
/// Rotation ticks that may fail in a row before the rotator is unhealthy (SPIRE's threshold).
const FAILED_ROTATION_THRESHOLD: u64 = 10;
/// The SPIFFE ID path of the throwaway SVID (SPIRE's).
const CA_CHECK_PATH: &str = "/for/health/check/only";

/// The server's checkers, for [`spire_health::serve`]: its admin API (dialed on
/// `admin_socket`), the datastore, the CA (a throwaway SVID in `trust_domain`) and the CA
/// rotator of `ca_manager`.
pub fn server_checkers(
    admin_socket: PathBuf,
    trust_domain: &TrustDomain,
    datastore: Arc<dyn DataStore>,
    ca_manager: Arc<CaManager>,
) -> Vec<Arc<dyn Checker>> {
    let ca = ca_manager.ca();
    vec![
        Arc::new(AdminApiCheck {
            socket: admin_socket,
            timeout: ADMIN_API_TIMEOUT,
        }),
        Arc::new(DataStoreCheck { datastore }),
        Arc::new(CaCheck::new(ca, trust_domain)),
        Arc::new(RotatorCheck {
            failures: Arc::new(move || ca_manager.consecutive_rotation_failures()),
        }),
    ]
}

/// `server`: the admin API answers `Bundle.GetBundle` on the admin socket.
#[derive(Debug)]
struct AdminApiCheck {
    socket: PathBuf,
    timeout: Duration,
}

/// `catalog.datastore`: the datastore lists bundles.
#[derive(Debug)]
struct DataStoreCheck {
    datastore: Arc<dyn DataStore>,
}

/// `server.ca`: the CA signs a throwaway workload X509-SVID, which is discarded.
#[derive(Debug)]
struct CaCheck {
    ca: Ca,
    /// The SVID's ID and public key (a P-256 key made once; its private half is dropped).
    subject: Result<(SpiffeId, Vec<u8>), String>,
}

/// `server.ca.rotator`: the CA manager's rotation ticks are not failing.
struct RotatorCheck {
    failures: Arc<dyn Fn() -> u64 + Send + Sync>,
}

// === impl AdminApiCheck ===

impl AdminApiCheck {
    async fn get_bundle(&self) -> Result<(), String> {
        let call = async {
            let channel = spire_health::unix_channel(&self.socket)
                .await
                .map_err(|e| format!("dialing {}: {e}", self.socket.display()))?;
            BundleClient::new(channel)
                .get_bundle(GetBundleRequest::default())
                .await
                .map_err(|status| status.to_string())?;
            Ok(())
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

#[async_trait::async_trait]
impl Checker for AdminApiCheck {
    fn name(&self) -> &str {
        "server"
    }

    async fn check(&self) -> State {
        match self.get_bundle().await {
            Ok(()) => State::healthy(),
            Err(cause) => {
                tracing::debug!(%cause, "Health check: the admin API did not return the bundle");
                State::new(false, json!({ "get_bundle_err": "unable to fetch bundle" }))
            }
        }
    }
}

// === impl DataStoreCheck ===

#[async_trait::async_trait]
impl Checker for DataStoreCheck {
    fn name(&self) -> &str {
        "catalog.datastore"
    }

    async fn check(&self) -> State {
        let page = Pagination {
            token: String::new(),
            page_size: 1,
        };
        let listed =
            tokio::time::timeout(DATASTORE_TIMEOUT, self.datastore.list_bundles(Some(page)));
        match listed.await {
            Ok(Ok(_)) => State::healthy(),
            Ok(Err(error)) => State::new(false, json!({ "list_bundle_err": error.to_string() })),
            Err(_) => State::new(
                false,
                json!({ "list_bundle_err": format!("no answer within {DATASTORE_TIMEOUT:?}") }),
            ),
        }
    }
}

// === impl CaCheck ===

impl CaCheck {
    fn new(ca: Ca, trust_domain: &TrustDomain) -> Self {
        let id =
            SpiffeId::from_path(trust_domain.clone(), CA_CHECK_PATH).map_err(|e| e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(|key| rcgen::PublicKeyData::subject_public_key_info(&key))
            .map_err(|e| format!("generating the health check key: {e}"));
        Self {
            ca,
            subject: id.and_then(|id| Ok((id, key?))),
        }
    }

    fn sign(&self) -> Result<(), String> {
        let (id, public_key) = self.subject.as_ref().map_err(Clone::clone)?;
        self.ca
            .sign_workload_x509_svid(
                public_key,
                X509SvidParams {
                    spiffe_id: id,
                    dns_names: &[],
                    ttl: Duration::ZERO,
                },
            )
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl Checker for CaCheck {
    fn name(&self) -> &str {
        "server.ca"
    }

    async fn check(&self) -> State {
        match self.sign() {
            Ok(()) => State::healthy(),
            Err(error) => State::new(false, json!({ "sign_x509_svid_err": error })),
        }
    }
}

// === impl RotatorCheck ===

#[async_trait::async_trait]
impl Checker for RotatorCheck {
    fn name(&self) -> &str {
        "server.ca.rotator"
    }

    async fn check(&self) -> State {
        if (self.failures)() > FAILED_ROTATION_THRESHOLD {
            State::new(
                false,
                json!({ "rotation_err": "rotations exceed the threshold number of failures" }),
            )
        } else {
            State::healthy()
        }
    }
}

impl fmt::Debug for RotatorCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatorCheck")
            .field("failures", &(self.failures)())
            .finish()
    }
}

#[cfg(test)]
mod tests;
