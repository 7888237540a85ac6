//! The controller's metrics in Prometheus text format on `metrics.bindAddress` (manager) or
//! `metrics_bind_addr` (registrar), beside the probes. Names are spire-rs's own (upstream's
//! controller-runtime series describe its work queues, which this controller does not have):
//!
//! | Series | Type | Meaning |
//! |---|---|---|
//! | `spire_controller_reconcile_passes_total{result}` | counter | passes, `success` or `error` |
//! | `spire_controller_entry_writes_total{operation}` | counter | entries `create`d, `update`d, `delete`d |
//! | `spire_controller_entry_write_failures_total` | counter | entries spire-server refused |
//! | `spire_controller_render_failures_total` | counter | objects or pods that declared nothing (bad template, invalid spec) |
//! | `spire_controller_declared_entries` | gauge | entries the cluster declares after the last pass |
//! | `spire_controller_last_pass_seconds` | gauge | duration of the last pass |
//! | `spire_controller_leader` | gauge | 1 while this replica reconciles |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges, updated by the reconcilers.
#[derive(Debug, Default)]
pub struct Metrics {
    passes_ok: AtomicU64,
    passes_failed: AtomicU64,
    created: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
    write_failures: AtomicU64,
    render_failures: AtomicU64,
    declared: AtomicU64,
    last_pass_micros: AtomicU64,
    leader: AtomicU64,
}

impl Metrics {
    /// Records one pass.
    pub fn pass(&self, ok: bool, duration: std::time::Duration) {
        let counter = if ok {
            &self.passes_ok
        } else {
            &self.passes_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.last_pass_micros.store(micros, Ordering::Relaxed);
    }

    /// Records entry writes that succeeded.
    pub fn writes(&self, created: usize, updated: usize, deleted: usize) {
        self.created.fetch_add(as_u64(created), Ordering::Relaxed);
        self.updated.fetch_add(as_u64(updated), Ordering::Relaxed);
        self.deleted.fetch_add(as_u64(deleted), Ordering::Relaxed);
    }

    /// Records entries the server refused.
    pub fn write_failures(&self, count: usize) {
        self.write_failures
            .fetch_add(as_u64(count), Ordering::Relaxed);
    }

    /// Records objects or pods that declared nothing.
    pub fn render_failures(&self, count: usize) {
        self.render_failures
            .fetch_add(as_u64(count), Ordering::Relaxed);
    }

    /// Sets the number of declared entries.
    pub fn declared(&self, count: usize) {
        self.declared.store(as_u64(count), Ordering::Relaxed);
    }

    /// Sets whether this replica reconciles.
    pub fn leader(&self, leading: bool) {
        self.leader.store(u64::from(leading), Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        family(
            "spire_controller_reconcile_passes_total",
            "counter",
            "Reconciliation passes by result.",
            &[
                ("{result=\"success\"}", get(&self.passes_ok)),
                ("{result=\"error\"}", get(&self.passes_failed)),
            ],
        );
        family(
            "spire_controller_entry_writes_total",
            "counter",
            "Entries written to spire-server by operation.",
            &[
                ("{operation=\"create\"}", get(&self.created)),
                ("{operation=\"update\"}", get(&self.updated)),
                ("{operation=\"delete\"}", get(&self.deleted)),
            ],
        );
        family(
            "spire_controller_entry_write_failures_total",
            "counter",
            "Entries spire-server refused.",
            &[("", get(&self.write_failures))],
        );
        family(
            "spire_controller_render_failures_total",
            "counter",
            "Objects or pods that declared nothing.",
            &[("", get(&self.render_failures))],
        );
        family(
            "spire_controller_declared_entries",
            "gauge",
            "Entries declared by the cluster after the last pass.",
            &[("", get(&self.declared))],
        );
        let seconds = get(&self.last_pass_micros) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP spire_controller_last_pass_seconds Duration of the last pass.\n\
             # TYPE spire_controller_last_pass_seconds gauge\nspire_controller_last_pass_seconds {seconds}"
        );
        let _ = writeln!(
            out,
            "# HELP spire_controller_leader 1 while this replica reconciles.\n\
             # TYPE spire_controller_leader gauge\nspire_controller_leader {}",
            get(&self.leader)
        );
        out
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lists_every_series_with_its_value() {
        let metrics = Metrics::default();
        metrics.pass(true, std::time::Duration::from_millis(1500));
        metrics.writes(3, 1, 2);
        metrics.write_failures(1);
        metrics.declared(42);
        metrics.leader(true);
        let text = metrics.render();
        for line in [
            "spire_controller_reconcile_passes_total{result=\"success\"} 1",
            "spire_controller_reconcile_passes_total{result=\"error\"} 0",
            "spire_controller_entry_writes_total{operation=\"create\"} 3",
            "spire_controller_entry_writes_total{operation=\"delete\"} 2",
            "spire_controller_entry_write_failures_total 1",
            "spire_controller_declared_entries 42",
            "spire_controller_last_pass_seconds 1.5",
            "spire_controller_leader 1",
            "# TYPE spire_controller_declared_entries gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
