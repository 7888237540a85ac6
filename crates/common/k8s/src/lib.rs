//! A small typed Kubernetes client: the apiserver and kubelet calls the server and agent make.
//!
//! [`ApiClient`] speaks to the kube-apiserver (TokenReview, pod / node / ConfigMap reads,
//! the two ConfigMap writes of the bundle notifier and publisher) over one pooled HTTPS
//! client; [`kubelet::KubeletClient`] fetches the kubelet's `/pods`. Credentials come from a
//! kubeconfig or from the in-cluster service account ([`ClientConfig`]). kube-rs is not used
//! here on purpose: these few calls do not need its weight.
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
pub mod kubelet;
mod transport;
pub mod types;

pub use client::ApiClient;
pub use config::{ClientConfig, TOKEN_FILE_REFRESH};
pub use error::{ApiError, Error};
