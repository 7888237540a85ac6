//! A test kube-apiserver and kubelet speaking the real JSON shapes, for tests.
//!
//! [`TestApiServer`] is a generic object store behind the apiserver's REST paths (core
//! `/api/v1` and `/apis/<group>/<version>`, namespaced and cluster-scoped), with one
//! resourceVersion counter, the real `Status` errors, TokenReview, a request log and fault
//! injection. It serves what a kube-rs controller relies on:
//!
//! - lists with label (`=`, `==`, `!=`, `in`, `notin`, `k`, `!k`) and field selectors,
//!   cluster-wide lists of namespaced resources, and `limit`/`continue` paging over a
//!   consistent snapshot (`<Kind>List` with `metadata.resourceVersion` and `continue`);
//! - watches (`?watch=true`): synthetic ADDED events for `resourceVersion` `""`/`"0"`,
//!   replay from a bounded history for a later one (`410 Expired` ERROR event when it is
//!   older), selector transitions as ADDED/DELETED, periodic BOOKMARKs with
//!   `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`, over HTTP/1.1 chunked or
//!   HTTP/2;
//! - the `status` subresource (SPIRE's CRDs and built-ins have it; tests can declare more),
//!   `metadata.generation`, optimistic concurrency (`409 Conflict` on a stale
//!   `resourceVersion`, `409 AlreadyExists`), JSON merge, strategic merge (by the merge keys
//!   of the common lists, e.g. `webhooks` by `name`; refused for custom resources), JSON
//!   (RFC 6902) and simplified server-side apply patches, on objects and on `/status`;
//! - finalizers (`deletionTimestamp` until they are cleared), garbage collection of
//!   dependents by `ownerReferences` (background, foreground, orphan), namespaces that empty
//!   before they go (at once: the namespace controller's work is immediate), CRDs that
//!   declare their resource when stored and, when deleted, delete their objects and go once
//!   the last one's finalizers are cleared (their resource then answers 404);
//! - what `kubectl` needs with validation on: legacy discovery (`/api`, `/apis`, per
//!   group/version, CRD groups included while their CRD exists), OpenAPI v3 documents that
//!   advertise server-side field validation, strict field validation
//!   (`fieldValidation=Strict`: duplicate and unknown fields refused with the apiserver's
//!   `strict decoding error`; built-in kinds checked against `k8s-openapi`'s types, custom
//!   resources against their CRD's structural schema), and server-side `Table`s (`Name`,
//!   `Age`) for `kubectl get`.
//!
//! Test knobs expire the watch history or continue tokens, close watches, count open ones,
//! and await a stored state ([`TestApiServer::wait_for`]) without polling.
//! [`TestKubelet`] serves `/pods` with switchable misbehaviour. [`Kubectl`] runs the real
//! `kubectl` against the apiserver, printing each command as a user would see it. The builders make realistic
//! pods, nodes, namespaces, Endpoints, ConfigMaps and TokenReview users. Everything runs on
//! the calling tokio runtime; nothing here needs a binary.
#![forbid(unsafe_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

mod apiserver;
mod builders;
mod kubectl;
mod kubelet;
mod pki;
mod serve;

pub use apiserver::{
    DEFAULT_AUDIENCE, Fault, ManifestError, RecordedRequest, TestApiServer, TokenReviewOutcome,
};
pub use builders::{
    EndpointsBuilder, PodBuilder, config_map_json, namespace_json, node_json,
    service_account_username, token_review_user,
};
pub use kubectl::{Kubectl, KubectlRun};
pub use kubelet::{
    KubeletBehavior, KubeletRequest, TestKubelet, TestKubeletAuth, TestKubeletConfig,
};
pub use pki::{IssuedCert, TestCa};

/// Locks, ignoring poisoning (a panicking test thread must not hide a fake's state).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
