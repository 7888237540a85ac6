//! Where lines go: stderr, or `log_file` (append, create 0640, as SPIRE opens it), reopened
//! by path on SIGUSR2 so that logrotate's rename-then-signal works without losing a line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use tracing_subscriber::fmt::MakeWriter;

/// The `fmt` layer's writer: one `write` per line.
#[derive(Clone, Debug)]
pub(super) enum LogWriter {
    /// Standard error (no `log_file`).
    Stderr,
    /// `log_file`.
    File(Arc<ReopenableFile>),
}

/// One line's writer.
#[derive(Debug)]
pub(super) enum LineWriter {
    Stderr(io::Stderr),
    File(Arc<File>),
}

/// A log file that can be reopened by path. A line being written while the file is reopened
/// finishes in the old file (it holds its own reference); every later line goes to the new one.
#[derive(Debug)]
pub(super) struct ReopenableFile {
    path: PathBuf,
    current: RwLock<Arc<File>>,
}

// === impl LogWriter ===

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        match self {
            Self::Stderr => LineWriter::Stderr(io::stderr()),
            Self::File(file) => LineWriter::File(file.current()),
        }
    }
}

// === impl LineWriter ===

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stderr(stderr) => stderr.write(buf),
            Self::File(file) => (&**file).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stderr(stderr) => stderr.flush(),
            Self::File(_) => Ok(()),
        }
    }
}

// === impl ReopenableFile ===

impl ReopenableFile {
    /// Opens `path` for appending, creating it with mode 0640.
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(open_append(path)?)),
        })
    }

    /// The file lines go to now.
    fn current(&self) -> Arc<File> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Opens the path again and sends later lines there. On failure the old file stays in use.
    pub(super) fn reopen(&self) -> io::Result<()> {
        let file = Arc::new(open_append(&self.path)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = file;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Reopens `file` on every SIGUSR2, from a thread of its own (the controllers start logging
/// before their runtime exists). The handler is installed before this returns, so a signal
/// sent afterwards never takes SIGUSR2's default action (terminating the process). A failed
/// reopen is logged as SPIRE logs it, to the old file, and the process goes on.
pub(super) fn reopen_on_signal(file: Arc<ReopenableFile>) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let mut signals = {
        let _entered = runtime.enter();
        signal(SignalKind::user_defined2())?
    };
    std::thread::Builder::new()
        .name("log-reopen".into())
        .spawn(move || {
            runtime.block_on(async move {
                while signals.recv().await.is_some() {
                    if let Err(error) = file.reopen() {
                        tracing::error!(%error, "failed to rotate log after signal");
                    }
                }
            });
        })?;
    Ok(())
}
