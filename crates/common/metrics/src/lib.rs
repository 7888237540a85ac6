//! SPIRE's telemetry for both binaries: `telemetry { Prometheus { host port } }`.
//!
//! A [`Registry`] hands out pre-resolved handles ([`Counter`], [`Gauge`], [`CallCounter`]):
//! each is an `Arc` of atomics registered once, so recording is an atomic add with no lookup,
//! lock or allocation. [`Registry::render`] writes the Prometheus text exposition with SPIRE's
//! naming: `<prefix>_<key parts joined by _>` (`spire_server_ca_manager_x509_ca_prepare`),
//! counters without `_total`, call counters as a counter plus a millisecond summary
//! `<key>_elapsed_time` (sum and count), each labelled with the gRPC status name, and the
//! process-wide labels (`host`, optionally `trust_domain_id`) on every series.
//! [`rpc`] names gRPC methods as SPIRE does and times them in one place per binary;
//! [`listener`] serves the exposition over HTTP; [`config`] reads the `telemetry` section.
//!
//! Why not a crate: `prometheus` (the tikv crate) brings protobuf and a global registry, and
//! `prometheus-client` has no summary type, which SPIRE's call timers are. What SPIRE's names
//! need is four series types and a text encoder, a few hundred lines here.
#![forbid(unsafe_code)]

pub mod config;
pub mod listener;
pub mod rpc;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Go's names of the gRPC codes (`codes.Code.String()`): SPIRE's `status` label values.
use spire_id::go_fmt::GRPC_CODE_NAMES as CODE_NAMES;

pub use config::TelemetryConfig;
pub use listener::{MetricsListener, start};
pub use tonic::Code;

/// The number of gRPC status codes (`OK` … `Unauthenticated`).
const CODES: usize = CODE_NAMES.len();

/// Go's name of `code` (`OK`, `PermissionDenied`, …).
pub fn code_name(code: Code) -> &'static str {
    CODE_NAMES
        .get(code_index(code))
        .copied()
        .unwrap_or("Unknown")
}

fn code_index(code: Code) -> usize {
    usize::try_from(code as i32)
        .ok()
        .filter(|i| *i < CODES)
        .unwrap_or(2)
}

/// The series of one process. Cheap to clone (one `Arc`); handles registered on any clone
/// render together.
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `spire_server`, `spire_agent` (or `MetricPrefix`).
    prefix: String,
    /// `name="value"` pairs added to every series, already escaped (`host`, …).
    common_labels: String,
    series: Mutex<Vec<Series>>,
}

#[derive(Debug)]
struct Series {
    /// The full metric name.
    name: String,
    /// The series' own labels, rendered (`a="x",b="y"`), without the common ones.
    labels: String,
    value: Value,
}

#[derive(Debug)]
enum Value {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicI64>),
    Call(Arc<CallCells>),
}

/// A monotonic count (SPIRE's counters; no `_total`).
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

/// A value that goes up and down, or is set (whole numbers).
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

/// SPIRE's call counter: per gRPC status, the number of calls and their total duration.
#[derive(Clone, Debug)]
pub struct CallCounter(Arc<CallCells>);

#[derive(Debug, Default)]
struct CallCells {
    count: [AtomicU64; CODES],
    nanos: [AtomicU64; CODES],
}

/// One call in progress, from [`CallCounter::start`]; [`CallTimer::finish`] records it.
#[derive(Debug)]
#[must_use = "a call is recorded by finish"]
pub struct CallTimer {
    counter: CallCounter,
    started: tokio::time::Instant,
}

// === impl Registry ===

impl Default for Registry {
    /// A registry named `spire` with no common labels (tests, components built alone).
    fn default() -> Self {
        Self::new("spire", &[])
    }
}

impl Registry {
    /// A registry whose series are named `<prefix>_…` and carry `common_labels`.
    pub fn new(prefix: &str, common_labels: &[(&str, &str)]) -> Self {
        Self {
            inner: Arc::new(Inner {
                prefix: sanitize(prefix),
                common_labels: render_labels(common_labels),
                series: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The counter `key` with `labels`; the same handle for the same name and labels.
    pub fn counter(&self, key: &[&str], labels: &[(&str, &str)]) -> Counter {
        match self.register(key, labels, || Value::Counter(Arc::default())) {
            Value::Counter(c) => Counter(c),
            _ => Counter(Arc::default()),
        }
    }

    /// The gauge `key` with `labels`; the same handle for the same name and labels.
    pub fn gauge(&self, key: &[&str], labels: &[(&str, &str)]) -> Gauge {
        match self.register(key, labels, || Value::Gauge(Arc::default())) {
            Value::Gauge(g) => Gauge(g),
            _ => Gauge(Arc::default()),
        }
    }

    /// The call counter `key` with `labels` (rendered as the counter `key` and the summary
    /// `key_elapsed_time`, both with a `status` label); the same handle for the same name and
    /// labels.
    pub fn call(&self, key: &[&str], labels: &[(&str, &str)]) -> CallCounter {
        match self.register(key, labels, || Value::Call(Arc::default())) {
            Value::Call(c) => CallCounter(c),
            _ => CallCounter(Arc::default()),
        }
    }

    /// The metric name of `key`: the prefix and the parts joined by `_`, every character
    /// outside `[a-zA-Z0-9_:]` replaced by `_`.
    pub fn name(&self, key: &[&str]) -> String {
        let mut name = self.inner.prefix.clone();
        for part in key {
            if !name.is_empty() {
                name.push('_');
            }
            name.push_str(&sanitize(part));
        }
        name
    }

    fn register(
        &self,
        key: &[&str],
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Value,
    ) -> Value {
        let name = self.name(key);
        let labels = render_labels(labels);
        let mut series = self.inner.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = series.iter().find(|s| s.name == name && s.labels == labels) {
            return found.value.share();
        }
        let value = make();
        let handle = value.share();
        series.push(Series {
            name,
            labels,
            value,
        });
        handle
    }

    /// The Prometheus text exposition (format 0.0.4) of every series with data: families
    /// sorted by name, one `# HELP` and `# TYPE` line each. Call counters show only the
    /// statuses that occurred.
    pub fn render(&self) -> String {
        let common = &self.inner.common_labels;
        // name → (type, sample lines)
        let mut families: std::collections::BTreeMap<String, (&'static str, String)> =
            std::collections::BTreeMap::new();
        let series = self.inner.series.lock().unwrap_or_else(|e| e.into_inner());
        for s in series.iter() {
            match &s.value {
                Value::Counter(c) => {
                    let lines = &mut families
                        .entry(s.name.clone())
                        .or_insert(("counter", String::new()))
                        .1;
                    sample(
                        lines,
                        &s.name,
                        "",
                        &[&s.labels, common],
                        &c.load(Ordering::Relaxed).to_string(),
                    );
                }
                Value::Gauge(g) => {
                    let lines = &mut families
                        .entry(s.name.clone())
                        .or_insert(("gauge", String::new()))
                        .1;
                    sample(
                        lines,
                        &s.name,
                        "",
                        &[&s.labels, common],
                        &g.load(Ordering::Relaxed).to_string(),
                    );
                }
                Value::Call(cells) => {
                    let timer = format!("{}_elapsed_time", s.name);
                    for (i, status) in CODE_NAMES.iter().enumerate() {
                        let count = cells.count[i].load(Ordering::Relaxed);
                        if count == 0 {
                            continue;
                        }
                        let nanos = cells.nanos[i].load(Ordering::Relaxed);
                        let status = format!("status=\"{status}\"");
                        let labels = [s.labels.as_str(), &status, common];
                        let lines = &mut families
                            .entry(s.name.clone())
                            .or_insert(("counter", String::new()))
                            .1;
                        sample(lines, &s.name, "", &labels, &count.to_string());
                        let lines = &mut families
                            .entry(timer.clone())
                            .or_insert(("summary", String::new()))
                            .1;
                        #[allow(clippy::cast_precision_loss)] // display only
                        let millis = nanos as f64 / 1e6;
                        sample(lines, &timer, "_sum", &labels, &millis.to_string());
                        sample(lines, &timer, "_count", &labels, &count.to_string());
                    }
                }
            }
        }
        drop(series);
        let mut out = String::new();
        for (name, (kind, lines)) in families {
            let _ = write!(out, "# HELP {name} {name}\n# TYPE {name} {kind}\n{lines}");
        }
        out
    }
}

fn sample(out: &mut String, name: &str, suffix: &str, label_sets: &[&str], value: &str) {
    out.push_str(name);
    out.push_str(suffix);
    let mut first = true;
    for set in label_sets.iter().filter(|s| !s.is_empty()) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(set);
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// `a="x",b="y"` with Prometheus' escapes in the values.
fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&sanitize(name));
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Every character outside `[a-zA-Z0-9_:]` replaced by `_` (go-metrics' Prometheus names).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// === impl Value ===

impl Value {
    fn share(&self) -> Value {
        match self {
            Value::Counter(c) => Value::Counter(c.clone()),
            Value::Gauge(g) => Value::Gauge(g.clone()),
            Value::Call(c) => Value::Call(c.clone()),
        }
    }
}

// === impl Counter ===

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

// === impl Gauge ===

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds one now and subtracts it when the guard drops (a connection or stream in progress).
    pub fn track(&self) -> GaugeGuard {
        self.inc();
        GaugeGuard(self.clone())
    }
}

/// Holds one unit of a [`Gauge`] until dropped; see [`Gauge::track`].
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

// === impl CallCounter ===

impl CallCounter {
    /// Starts timing one call.
    pub fn start(&self) -> CallTimer {
        CallTimer {
            counter: self.clone(),
            started: tokio::time::Instant::now(),
        }
    }

    /// Records one call that ended with `code` after `elapsed`.
    pub fn record(&self, code: Code, elapsed: Duration) {
        let i = code_index(code);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.nanos[i].fetch_add(nanos, Ordering::Relaxed);
        self.0.count[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Times `call` and records it with the status `code_of` gives its result.
    pub async fn time<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        code_of: impl FnOnce(&E) -> Code,
    ) -> Result<T, E> {
        let timer = self.start();
        let result = call.await;
        timer.finish(match &result {
            Ok(_) => Code::Ok,
            Err(e) => code_of(e),
        });
        result
    }

    /// The number of calls that ended with `code`.
    pub fn count(&self, code: Code) -> u64 {
        self.0.count[code_index(code)].load(Ordering::Relaxed)
    }
}

// === impl CallTimer ===

impl CallTimer {
    /// Records the call with its status.
    pub fn finish(self, code: Code) {
        self.counter.record(code, self.started.elapsed());
    }
}

/// The host name as Go's `os.Hostname` reads it on Linux (`/proc/sys/kernel/hostname`),
/// `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests;
