//! The checks SPIRE's datastore makes on entries (reported, as SPIRE reports them, with the
//! `datastore-validation:` prefix) and the federated-bundle lookup.

use std::collections::HashMap;

use spire_id::TrustDomain;
use spire_server_datastore::{DataStore, EntryMask, RegistrationEntry};
use tonic::Code;

/// SPIRE's limit on an entry ID, in bytes.
pub(crate) const ENTRY_ID_MAX_LEN: usize = 255;

/// A failed datastore-level check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    /// What SPIRE's datastore validation says.
    #[error("datastore-validation: invalid registration entry: {0}")]
    Entry(&'static str),
}

/// A `federates_with` trust domain without a bundle, or the lookup failing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleCheck {
    /// No bundle is stored for the trust domain.
    #[error("unable to find federated bundle \"{0}\"")]
    Missing(String),
    /// The datastore failed.
    #[error(transparent)]
    DataStore(#[from] spire_server_datastore::Error),
}

/// Which trust domains have a bundle, remembered for one batch.
#[derive(Debug, Default)]
pub(crate) struct BundleCache {
    known: HashMap<TrustDomain, bool>,
}

/// Checks a new entry as SPIRE's datastore does.
pub(crate) fn for_create(entry: &RegistrationEntry) -> Result<(), Invalid> {
    check_store_svid(entry)?;
    if entry.id.len() > ENTRY_ID_MAX_LEN {
        return Err(Invalid::Entry("entry ID too long"));
    }
    if !entry
        .id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        return Err(Invalid::Entry("entry ID contains invalid characters"));
    }
    check_ttls(entry, &EntryMask::ALL)
}

/// Checks the masked fields of an update as SPIRE's datastore does.
pub(crate) fn for_update(entry: &RegistrationEntry, mask: &EntryMask) -> Result<(), Invalid> {
    if mask.store_svid && mask.selectors {
        check_store_svid(entry)?;
    }
    check_ttls(entry, mask)
}

fn check_store_svid(entry: &RegistrationEntry) -> Result<(), Invalid> {
    let mut types = entry.selectors.iter().map(|s| s.selector_type());
    if entry.store_svid
        && let Some(first) = types.next()
        && types.any(|t| t != first)
    {
        return Err(Invalid::Entry(
            "selector types must be the same when store SVID is enabled",
        ));
    }
    Ok(())
}

fn check_ttls(entry: &RegistrationEntry, mask: &EntryMask) -> Result<(), Invalid> {
    if mask.x509_svid_ttl && entry.x509_svid_ttl < 0 {
        return Err(Invalid::Entry("X509SvidTtl is not set"));
    }
    if mask.jwt_svid_ttl && entry.jwt_svid_ttl < 0 {
        return Err(Invalid::Entry("JwtSvidTtl is not set"));
    }
    Ok(())
}

// === impl BundleCheck ===

impl BundleCheck {
    /// SPIRE reports a missing bundle from the datastore without a code, which its API
    /// turns into `Internal`.
    pub(crate) fn code(&self) -> Code {
        match self {
            Self::Missing(_) => Code::Internal,
            Self::DataStore(e) => crate::status::ds_code(e),
        }
    }
}

// === impl BundleCache ===

impl BundleCache {
    /// Fails for the first trust domain that has no bundle.
    pub(crate) async fn check(
        &mut self,
        ds: &dyn DataStore,
        trust_domains: &[TrustDomain],
    ) -> Result<(), BundleCheck> {
        for td in trust_domains {
            let exists = match self.known.get(td) {
                Some(&exists) => exists,
                None => {
                    let exists = ds.fetch_bundle(td).await?.is_some();
                    self.known.insert(td.clone(), exists);
                    exists
                }
            };
            if !exists {
                return Err(BundleCheck::Missing(td.id_string()));
            }
        }
        Ok(())
    }
}
