//! The end-to-end suite: a real server and a real agent in this process, over real TCP mTLS
//! and Unix sockets, on temp dirs and SQLite files (PostgreSQL for the HA test); this test
//! process is the workload (selector `unix:uid:<uid>`), served through the unmodified
//! rust-spiffe `WorkloadApiClient`.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod common;
mod entries;
mod federation;
mod grpcio;
mod jwt;
mod localauthority;
mod localauthority_ha;
mod postgres;
mod resilience;
mod rotation;
mod sds;
mod takeover;
