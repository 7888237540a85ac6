#![allow(clippy::unwrap_used)]
//! The driver over a real Unix socket, as the node-driver-registrar and the kubelet use it.
//! One test binary (fewer links): `support` builds the harness, the other modules test.

mod authority;
mod identity;
mod istio;
mod mount;
mod publish;
mod support;
