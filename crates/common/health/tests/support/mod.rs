//! Scriptable checkers for the health tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // shared by several test binaries

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use spire_health::{Checker, State};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// A checker whose answer the test sets, recording when it was called.
#[derive(Debug)]
pub struct Fake {
    name: &'static str,
    healthy: AtomicBool,
    /// Answers of the next calls, before falling back to `healthy`.
    script: Mutex<Vec<bool>>,
    /// Held until released, when set.
    gate: Option<Notify>,
    /// Never answers, when set.
    hang: bool,
    calls: watch::Sender<u64>,
    times: Mutex<Vec<Instant>>,
}

impl Fake {
    pub fn new(name: &'static str, healthy: bool) -> Self {
        Self {
            name,
            healthy: AtomicBool::new(healthy),
            script: Mutex::new(Vec::new()),
            gate: None,
            hang: false,
            calls: watch::channel(0).0,
            times: Mutex::new(Vec::new()),
        }
    }

    /// Answers `answers` in order, then `healthy`.
    pub fn scripted(name: &'static str, answers: &[bool], then: bool) -> Self {
        let fake = Self::new(name, then);
        *fake.script.lock().unwrap() = answers.iter().rev().copied().collect();
        fake
    }

    /// Answers (healthy) only after [`Fake::release`].
    pub fn gated(name: &'static str) -> Self {
        Self {
            gate: Some(Notify::new()),
            ..Self::new(name, true)
        }
    }

    /// Never answers.
    pub fn hanging(name: &'static str) -> Self {
        Self {
            hang: true,
            ..Self::new(name, true)
        }
    }

    pub fn release(&self) {
        self.gate.as_ref().unwrap().notify_one();
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn calls(&self) -> u64 {
        *self.calls.borrow()
    }

    /// Waits until the checker has been called `n` times.
    pub async fn wait_calls(&self, n: u64) {
        let mut rx = self.calls.subscribe();
        rx.wait_for(|c| *c >= n).await.unwrap();
    }

    pub fn times(&self) -> Vec<Instant> {
        self.times.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Checker for Fake {
    fn name(&self) -> &str {
        self.name
    }

    async fn check(&self) -> State {
        self.times.lock().unwrap().push(Instant::now());
        self.calls.send_modify(|c| *c += 1);
        if self.hang {
            std::future::pending::<()>().await;
        }
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        let scripted = self.script.lock().unwrap().pop();
        let healthy = scripted.unwrap_or_else(|| self.healthy.load(Ordering::SeqCst));
        if healthy {
            State::healthy()
        } else {
            State::new(
                false,
                json!({ "fake_err": format!("{} is broken", self.name) }),
            )
        }
    }
}
