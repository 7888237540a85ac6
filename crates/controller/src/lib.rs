//! The Kubernetes registration controller: one engine behind two front doors.
//!
//! * `spire-controller-manager` semantics: `ClusterSPIFFEID`, `ClusterStaticEntry` and
//!   `ClusterFederatedTrustDomain` objects declare the entries and federation relationships
//!   spire-server should hold; everything else the controller may own is deleted.
//! * `k8s-workload-registrar` CRD-mode semantics (the 2022 Istio quickstart): one `SpiffeID`
//!   object per pod and node, each synced to one entry.
//!
//! Both talk to spire-server only through its admin API on the Unix socket.
#![forbid(unsafe_code)]

pub mod config;
pub mod crd;
pub mod informer;
pub mod leader;
pub mod manager;
pub mod registrar;
pub mod runtime;
pub mod spire;
pub mod webhook;
