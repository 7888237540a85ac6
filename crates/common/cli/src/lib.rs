//! What SPIRE's two command lines share: Go `flag` syntax, Unix-socket dialing with gRPC-Go's
//! error wording, Go flag values, `-output`, and injected standard streams.
#![forbid(unsafe_code)]

mod argv;
mod client;
mod files;
mod health;
mod logging;
mod process;
pub mod protojson;
mod values;

use std::io::{Read, Write};

use clap::{Args, ValueEnum};

pub use argv::normalize;
pub use client::{Client, SocketSpec, code_name, go_errno_text, rpc_err, rpc_error};
pub use files::{pem_blocks, write_file};
pub use health::healthcheck;
pub use logging::{
    LogFormat, LogHandle, LogLevel, LogSettings, RUNTIME_FIELDS, RuntimeFields, init_logging,
    parse_set_level, print_logger, start_logging,
};
pub use process::{
    prepare_daemon, raise_open_file_limit, report_validation, tighten_umask, wait_for_signal,
};
pub use values::{
    go_bool, go_duration, go_duration_string, go_i32, go_i64, go_quote, go_rfc3339_utc,
    go_utc_time, pluralize,
};

/// The standard streams a command writes to, injected so output is testable.
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    /// Standard input (`-data -`, `bundle set` without `-path`).
    pub stdin: &'a mut dyn Read,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

/// A failure the command already reported on stderr in SPIRE's words; `main` exits 1 without
/// printing `Error: …` again (e.g. `Server is unhealthy: …`).
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
pub struct Reported;

/// `-output pretty|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text (the default).
    #[default]
    Pretty,
    /// protojson of the RPC response.
    Json,
}

/// The `-output` flag.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// How to print the result: pretty (text) or json (the API response)
    #[arg(
        long = "output",
        value_name = "value",
        value_enum,
        ignore_case = true,
        default_value_t
    )]
    pub output: OutputFormat,
}
