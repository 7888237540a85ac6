//! SPIRE's logs for every binary: logrus's text and JSON lines ([`format`]), `log_file` opened
//! as SPIRE opens it and reopened on SIGUSR2 ([`file`]), and a level that can be changed while
//! the process runs ([`LogHandle`], behind the Logger API).
//!
//! The subscriber is tracing-subscriber's registry with three layers: the level filter inside a
//! `reload` layer, a layer that keeps each span's fields (they are flattened into every line
//! logged inside the span, as logrus's `WithFields` loggers are), and the `fmt` layer with our
//! [`format::Logrus`] event format, which builds each line in `fmt`'s one buffer and writes it
//! with one `write`.

mod file;
mod format;
mod runtime;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use spire_proto::spire::api::types::{self, LogLevel as ApiLevel};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

pub use format::LogFormat;
pub use runtime::{RUNTIME_FIELDS, RuntimeFields};

use file::{LogWriter, ReopenableFile};

/// Crates whose logs stay at `warn` unless the level is `trace` (below `warn`, they follow the
/// level): a DEBUG server log is not drowned in SQL statements and HTTP/2 frames.
const LIBRARIES: &[&str] = &[
    "sqlx",
    "h2",
    "hyper",
    "rustls",
    "tonic",
    "tower",
    "loona_hpack",
];

/// logrus's levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `panic`.
    Panic,
    /// `fatal`.
    Fatal,
    /// `error`.
    Error,
    /// `warning` (`warn` when parsed).
    Warn,
    /// `info`.
    Info,
    /// `debug`.
    Debug,
    /// `trace`.
    Trace,
}

/// What the logger is started with: SPIRE's `log_level`, `log_format`, `log_file` and
/// `log_source_location`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// A logrus level name, any case (`INFO`, `warn`, `warning`, …).
    pub level: String,
    /// `""` (logrus's default text format), `text` or `json`, any case.
    pub format: String,
    /// Append to this file (created 0640) instead of writing to stderr; reopened on SIGUSR2.
    pub file: Option<PathBuf>,
    /// Add `file` (base name:line) and `func` to every line.
    pub source_location: bool,
}

/// The running logger's level: read it, change it, reset it to the launch level. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct LogHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    reload: reload::Handle<EnvFilter, Registry>,
    launch: LogLevel,
    current: Mutex<LogLevel>,
}

// === impl LogLevel ===

impl LogLevel {
    /// Every level, most severe first.
    pub const ALL: [Self; 7] = [
        Self::Panic,
        Self::Fatal,
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    /// logrus's `ParseLevel`: a level name in any case, `warning` for `warn`; otherwise its
    /// error, `not a valid logrus Level: "<text>"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_lowercase().as_str() {
            "panic" => Ok(Self::Panic),
            "fatal" => Ok(Self::Fatal),
            "error" => Ok(Self::Error),
            "warn" | "warning" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            "trace" => Ok(Self::Trace),
            _ => Err(format!(
                "not a valid logrus Level: {}",
                spire_id::go_fmt::quote(text)
            )),
        }
    }

    /// The name logrus prints (`warning` for [`LogLevel::Warn`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warn => "warning",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }

    /// The Logger API's level (`spire.api.types.LogLevel`).
    pub fn to_api(self) -> ApiLevel {
        match self {
            Self::Panic => ApiLevel::Panic,
            Self::Fatal => ApiLevel::Fatal,
            Self::Error => ApiLevel::Error,
            Self::Warn => ApiLevel::Warn,
            Self::Info => ApiLevel::Info,
            Self::Debug => ApiLevel::Debug,
            Self::Trace => ApiLevel::Trace,
        }
    }

    /// The level of a Logger API level (none for `UNSPECIFIED`).
    pub fn from_api(level: ApiLevel) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.to_api() == level)
    }

    /// The tracing filter for spire-rs's own events. spire-rs logs nothing above `error`, so
    /// `panic` and `fatal` let its errors through rather than silencing it.
    fn filter(self) -> LevelFilter {
        match self {
            Self::Panic | Self::Fatal | Self::Error => LevelFilter::ERROR,
            Self::Warn => LevelFilter::WARN,
            Self::Info => LevelFilter::INFO,
            Self::Debug => LevelFilter::DEBUG,
            Self::Trace => LevelFilter::TRACE,
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The filter for `level`: spire-rs at `level`, the noisy libraries at `warn` at most (all of
/// them at `trace`).
fn filter_for(level: LogLevel) -> EnvFilter {
    let own = level.filter();
    let libraries = if own == LevelFilter::TRACE {
        own
    } else {
        own.min(LevelFilter::WARN)
    };
    let mut directives = own.to_string();
    for library in LIBRARIES {
        directives.push_str(&format!(",{library}={libraries}"));
    }
    EnvFilter::new(directives)
}

// === impl LogHandle ===

impl LogHandle {
    /// The level the process started with.
    pub fn launch_level(&self) -> LogLevel {
        self.inner.launch
    }

    /// The level in force.
    pub fn current_level(&self) -> LogLevel {
        *self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `level` the level in force, for every line logged from now on.
    pub fn set_level(&self, level: LogLevel) -> Result<(), String> {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner
            .reload
            .reload(filter_for(level))
            .map_err(|e| format!("could not change the log level: {e}"))?;
        *current = level;
        Ok(())
    }
}

/// Builds the subscriber `settings` describe, writing to `writer`, and its level handle.
fn build(
    level: LogLevel,
    format: LogFormat,
    source_location: bool,
    writer: LogWriter,
    filter: EnvFilter,
) -> (impl tracing::Subscriber + Send + Sync, LogHandle) {
    let (filter, reload) = reload::Layer::new(filter);
    let lines = tracing_subscriber::fmt::layer()
        .event_format(format::Logrus::new(format, source_location))
        .fmt_fields(format::NoFields)
        .with_ansi(false)
        .with_writer(writer);
    let subscriber = Registry::default()
        .with(filter)
        .with(format::SpanFields)
        .with(lines);
    let handle = LogHandle {
        inner: Arc::new(HandleInner {
            reload,
            launch: level,
            current: Mutex::new(level),
        }),
    };
    (subscriber, handle)
}

/// Starts the process's logger as `settings` ask (SPIRE's messages for a bad level or
/// format). `SPIRE_LOG` (an `EnvFilter`) replaces the level filter until the level is
/// changed at run time. With a `log_file`, SIGUSR2 reopens it (for logrotate); a failed reopen
/// is logged to the old file, which stays in use.
pub fn start_logging(settings: &LogSettings) -> anyhow::Result<LogHandle> {
    let level = LogLevel::parse(&settings.level)
        .map_err(|e| anyhow::anyhow!("could not start logger: {e}"))?;
    let format = LogFormat::parse(&settings.format)
        .map_err(|e| anyhow::anyhow!("could not start logger: {e}"))?;
    let file = match &settings.file {
        Some(path) => Some(Arc::new(ReopenableFile::open(path).with_context(|| {
            format!("could not start logger: opening {}", path.display())
        })?)),
        None => None,
    };
    let writer = file.clone().map_or(LogWriter::Stderr, LogWriter::File);
    let filter = EnvFilter::try_from_env("SPIRE_LOG").unwrap_or_else(|_| filter_for(level));
    let (subscriber, handle) = build(level, format, settings.source_location, writer, filter);
    subscriber
        .try_init()
        .map_err(|e| anyhow::anyhow!("could not start logger: {e}"))?;
    if let Some(file) = file {
        file::reopen_on_signal(file).context("could not start logger: SIGUSR2 handler")?;
    }
    Ok(handle)
}

/// [`start_logging`] for binaries that never change their level (the controllers, the CSI
/// driver): `level` and `format` as SPIRE names them, and an optional log file.
pub fn init_logging(
    level: &str,
    format: &str,
    file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    start_logging(&LogSettings {
        level: level.to_owned(),
        format: format.to_owned(),
        file: file.map(ToOwned::to_owned),
        source_location: false,
    })
    .map(drop)
}

/// `logger set -level`: SPIRE's messages for a missing level and for one logrus does not know.
pub fn parse_set_level(level: &str) -> anyhow::Result<LogLevel> {
    if level.is_empty() {
        anyhow::bail!("a value (-level) must be set");
    }
    LogLevel::parse(level).map_err(|_| {
        anyhow::anyhow!(
            "the value {} is not a valid setting",
            spire_id::go_fmt::quote(level)
        )
    })
}

/// The `logger` commands' pretty output: `Logger Level : <current>` and `Launch Level :
/// <launch>` with logrus's names, then a blank line.
pub fn print_logger(out: &mut dyn std::io::Write, logger: &types::Logger) -> anyhow::Result<()> {
    let Some(current) = LogLevel::from_api(logger.current_level()) else {
        anyhow::bail!(
            "internal error: returned current log level is undefined; please report this as a bug"
        );
    };
    let Some(launch) = LogLevel::from_api(logger.launch_level()) else {
        anyhow::bail!(
            "internal error: returned launch log level is undefined; please report this as a bug"
        );
    };
    write!(out, "Logger Level : {current}\nLaunch Level : {launch}\n\n")?;
    Ok(())
}
