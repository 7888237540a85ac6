//! [`WorkloadUpdate`] construction, content comparison and the per-update memo.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, PoisonError};

use spire_id::TrustDomain;
use spire_svid::Bundle;

use crate::{Identity, Memo, WorkloadUpdate};

// === impl WorkloadUpdate ===

impl WorkloadUpdate {
    /// The value of type `T` derived from this update, built by `build` on first use and
    /// shared afterwards. Concurrent callers for the same `T` wait for the one build; `build`
    /// must not ask for a memo of the same `T` again.
    pub fn memo<T: Any + Send + Sync>(&self, build: impl FnOnce(&Self) -> T) -> Arc<T> {
        let cell = self.memo.cell::<T>();
        Arc::clone(cell.get_or_init(|| Arc::new(build(self))))
    }

    pub(crate) fn new(
        identities: Vec<Identity>,
        bundle: Arc<Bundle>,
        federated_bundles: BTreeMap<TrustDomain, Arc<Bundle>>,
    ) -> Self {
        Self {
            identities,
            bundle,
            federated_bundles,
            memo: Memo::default(),
        }
    }

    /// True when both updates would send the same thing (SVIDs compared by identity: each
    /// stored SVID has one `Arc`).
    pub(crate) fn same_content(&self, other: &Self) -> bool {
        self.identities.len() == other.identities.len()
            && self.identities.iter().zip(&other.identities).all(|(a, b)| {
                Arc::ptr_eq(&a.svid, &b.svid)
                    && (Arc::ptr_eq(&a.entry, &b.entry) || a.entry == b.entry)
            })
            && same_bundle(&self.bundle, &other.bundle)
            && self.federated_bundles.len() == other.federated_bundles.len()
            && self
                .federated_bundles
                .iter()
                .zip(&other.federated_bundles)
                .all(|((ta, a), (tb, b))| ta == tb && same_bundle(a, b))
    }
}

fn same_bundle(a: &Arc<Bundle>, b: &Arc<Bundle>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

// === impl Memo ===

impl Memo {
    /// The build-once cell for type `T`, created on first use.
    fn cell<T: Any + Send + Sync>(&self) -> Arc<OnceLock<Arc<T>>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in slots.iter() {
            if let Ok(cell) = Arc::clone(slot).downcast::<OnceLock<Arc<T>>>() {
                return cell;
            }
        }
        let cell = Arc::new(OnceLock::<Arc<T>>::new());
        slots.push(Arc::clone(&cell) as Arc<dyn Any + Send + Sync>);
        cell
    }
}
