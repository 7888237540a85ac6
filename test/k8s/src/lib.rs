//! A test kube-apiserver and kubelet speaking the real JSON shapes, for tests.
//!
//! [`TestApiServer`] is a generic object store behind the apiserver's REST paths (core
//! `/api/v1` and `/apis/<group>/<version>`, namespaced and cluster-scoped), with one
//! resourceVersion counter, the real `Status` errors, TokenReview, a request log and fault
//! injection. [`TestKubelet`] serves `/pods` with switchable misbehaviour. The builders make
//! realistic pods, nodes, ConfigMaps and TokenReview users. Everything runs on the calling
//! tokio runtime; nothing here needs a binary.
#![forbid(unsafe_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

mod apiserver;
mod builders;
mod kubelet;
mod pki;
mod serve;

pub use apiserver::{DEFAULT_AUDIENCE, Fault, RecordedRequest, TestApiServer, TokenReviewOutcome};
pub use builders::{
    PodBuilder, config_map_json, node_json, service_account_username, token_review_user,
};
pub use kubelet::{
    KubeletBehavior, KubeletRequest, TestKubelet, TestKubeletAuth, TestKubeletConfig,
};
pub use pki::{IssuedCert, TestCa};

/// Locks, ignoring poisoning (a panicking test thread must not hide a fake's state).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
