//! The registration controller against a real spire-server (its admin socket) and the test
//! kube-apiserver (real watches, paging, status subresources and finalizers).
#![allow(clippy::unwrap_used)]

mod manager;
mod registrar;
mod support;
