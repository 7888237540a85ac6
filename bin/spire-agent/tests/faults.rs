//! The fault-injection cases that need a real agent beside a real server (`docs/faults.md`):
//! each prints the figure it reports. Run with
//! `cargo test -p spire-agent --test faults -- --nocapture` (`cargo build -p spire-server`
//! first when running it alone).
#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed step should abort the test

mod faults {
    pub mod agent_state;
    pub mod postgres;
    pub mod support;
}
