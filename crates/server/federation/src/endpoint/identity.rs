//! What the bundle endpoint presents: the server's X509-SVID (`https_spiffe`), rotated by the
//! caller through a `watch`, or a certificate and key read from files (`https_web` with
//! `serving_cert_file`) and reloaded when they change. Both sit behind one rustls resolver,
//! so a new identity reaches the next handshake without restarting the listener.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spire_svid::X509Svid;
use spire_task::Shutdown;
use tokio::sync::watch;

use crate::Error;
use crate::tls::certified_key;

/// SPIRE's default `file_sync_interval` for `serving_cert_file`.
pub const DEFAULT_FILE_SYNC_INTERVAL: Duration = Duration::from_secs(3600);

/// The certificate the bundle endpoint presents.
#[derive(Debug)]
pub enum ServingIdentity {
    /// `https_spiffe`: the server's X509-SVID; the caller publishes each rotated SVID.
    Svid(watch::Receiver<Arc<X509Svid>>),
    /// `https_web`: a Web PKI certificate and key, e.g. from [`ServingCertFile::subscribe`].
    Certificate(watch::Receiver<Arc<CertifiedKey>>),
}

/// `serving_cert_file`: a PEM certificate chain and a PEM key (PKCS#8, PKCS#1 or SEC1),
/// checked every `file_sync_interval` and reloaded when either file's content changed. A
/// reload that fails keeps the previous certificate.
#[derive(Debug)]
pub struct ServingCertFile {
    cert_file_path: PathBuf,
    key_file_path: PathBuf,
    file_sync_interval: Duration,
    current: watch::Sender<Arc<CertifiedKey>>,
    /// File contents behind `current`, to notice changes.
    loaded: (Vec<u8>, Vec<u8>),
}

/// The rustls resolver over a [`ServingIdentity`].
#[derive(Debug)]
pub(crate) struct IdentityResolver {
    identity: ServingIdentity,
    /// The key built from the SVID last seen, reused until the SVID changes.
    svid_key: Mutex<Option<(Arc<X509Svid>, Arc<CertifiedKey>)>>,
}

// === impl ServingCertFile ===

impl ServingCertFile {
    /// Reads and checks both files now; a missing or unusable file is an error here, at
    /// startup, rather than at the first handshake.
    pub fn load(
        cert_file_path: impl Into<PathBuf>,
        key_file_path: impl Into<PathBuf>,
        file_sync_interval: Duration,
    ) -> Result<Self, Error> {
        let cert_file_path = cert_file_path.into();
        let key_file_path = key_file_path.into();
        let cert = read(&cert_file_path)?;
        let key = read(&key_file_path)?;
        let certified = parse(&cert_file_path, &cert, &key_file_path, &key)?;
        let (current, _) = watch::channel(certified);
        Ok(Self {
            cert_file_path,
            key_file_path,
            file_sync_interval,
            current,
            loaded: (cert, key),
        })
    }

    /// The certificate in force, updated on every successful reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CertifiedKey>> {
        self.current.subscribe()
    }

    /// The endpoint identity that follows these files.
    pub fn identity(&self) -> ServingIdentity {
        ServingIdentity::Certificate(self.subscribe())
    }

    /// Checks the files every `file_sync_interval` until `stop`.
    pub async fn run(mut self, stop: Shutdown) {
        let mut ticks =
            tokio::time::interval(self.file_sync_interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the files were read by `load`.
        ticks.tick().await;
        loop {
            tokio::select! {
                // Server shutdown.
                () = stop.stopped() => return,
                // Time to look at the files again.
                _ = ticks.tick() => self.sync().await,
            }
        }
    }

    /// Reloads when either file's content differs from what was loaded.
    async fn sync(&mut self) {
        let files = tokio::try_join!(
            tokio::fs::read(&self.cert_file_path),
            tokio::fs::read(&self.key_file_path)
        );
        let (cert, key) = match files {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(%error, "Unable to read serving certificate files; keeping the current certificate");
                return;
            }
        };
        if (&cert, &key) == (&self.loaded.0, &self.loaded.1) {
            return;
        }
        match parse(&self.cert_file_path, &cert, &self.key_file_path, &key) {
            Ok(certified) => {
                tracing::info!(
                    cert_file_path = %self.cert_file_path.display(),
                    "Serving certificate reloaded"
                );
                self.loaded = (cert, key);
                self.current.send_replace(certified);
            }
            // A half-written pair (certificate renewed, key not yet) lands here; the next
            // check picks up the complete pair.
            Err(error) => {
                tracing::warn!(%error, "Unable to reload serving certificate; keeping the current certificate");
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::ServingCertificate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn parse(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, Error> {
    let cert_error = |reason: String| Error::ServingCertificate {
        path: cert_path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block found".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::ServingCertificate {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    certified_key(chain, &key).map_err(|e| Error::ServingCertificate {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })
}

// === impl IdentityResolver ===

impl IdentityResolver {
    pub(crate) fn new(identity: ServingIdentity) -> Self {
        Self {
            identity,
            svid_key: Mutex::new(None),
        }
    }

    fn svid_key(&self, svids: &watch::Receiver<Arc<X509Svid>>) -> Option<Arc<CertifiedKey>> {
        let svid = svids.borrow().clone();
        let mut cached = self.svid_key.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, key)) = cached.as_ref()
            && Arc::ptr_eq(seen, &svid)
        {
            return Some(key.clone());
        }
        let chain = svid
            .cert_chain()
            .iter()
            .cloned()
            .map(CertificateDer::from)
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.private_key()));
        match certified_key(chain, &key) {
            Ok(key) => {
                *cached = Some((svid, key.clone()));
                Some(key)
            }
            Err(error) => {
                tracing::error!(%error, spiffe_id = %svid.spiffe_id(), "Unable to serve the server SVID on the bundle endpoint");
                cached.as_ref().map(|(_, key)| key.clone())
            }
        }
    }
}

impl ResolvesServerCert for IdentityResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match &self.identity {
            ServingIdentity::Svid(svids) => self.svid_key(svids),
            ServingIdentity::Certificate(current) => Some(current.borrow().clone()),
        }
    }
}
