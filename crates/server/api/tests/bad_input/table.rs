//! The bad-input catalogue's files (`test/bad-input/*.tsv`) as tables that drive requests.
//!
//! Columns: `surface`, `case`, `code`, `message`, `input`, `status`. `message` ending in `…` is
//! a prefix; `\n` and `\t` in it are escapes. `input` is a JSON object the surface's test turns
//! into a request; a key the test does not consume fails the row (nothing is skipped
//! silently). `status` is `run` or `known-gap`: every row is tried, a `run` row must pass, and
//! a `known-gap` row must still fail (so the marker is removed once it is fixed).
//!
//! Shared by the server's and the integration suite's table tests (`#[path]`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]
#![allow(clippy::print_stdout)] // the tables report their counts (rows tried, passing)

use std::path::PathBuf;

use serde_json::{Map, Value};
use tonic::Code;

/// One catalogue row.
#[derive(Clone, Debug)]
pub struct Row {
    pub line: usize,
    pub surface: String,
    pub case: String,
    pub code: Code,
    pub message: String,
    pub input: Map<String, Value>,
    pub known_gap: bool,
}

/// The catalogue directory (`test/bad-input/`), found from this crate's manifest directory.
pub fn dir() -> PathBuf {
    let mut here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = here.join("test/bad-input");
        if candidate.is_dir() {
            return candidate;
        }
        assert!(here.pop(), "test/bad-input not found above the manifest");
    }
}

/// Every row of `file`; a malformed row fails the test.
pub fn load(file: &str) -> Vec<Row> {
    let path = dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().expect("header");
    assert_eq!(
        header, "surface\tcase\tcode\tmessage\tinput\tstatus",
        "{file}: header"
    );
    let mut rows = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 6, "{file}:{}: six columns: {line:?}", n + 1);
        let input: Value = serde_json::from_str(fields[4])
            .unwrap_or_else(|e| panic!("{file}:{}: input is not JSON: {e}", n + 1));
        let Value::Object(input) = input else {
            panic!("{file}:{}: input is not a JSON object", n + 1)
        };
        let known_gap = match fields[5] {
            "run" => false,
            "known-gap" => true,
            other => panic!("{file}:{}: unknown status {other:?}", n + 1),
        };
        rows.push(Row {
            line: n + 1,
            surface: fields[0].to_owned(),
            case: fields[1].to_owned(),
            code: code(fields[2]).unwrap_or_else(|| panic!("{file}:{}: code", n + 1)),
            message: unescape(fields[3]),
            input,
            known_gap,
        });
    }
    assert!(!rows.is_empty(), "{file}: no rows");
    rows
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

/// A gRPC code by its Go/tonic name.
pub fn code(name: &str) -> Option<Code> {
    Some(match name {
        "OK" => Code::Ok,
        "Cancelled" => Code::Cancelled,
        "Unknown" => Code::Unknown,
        "InvalidArgument" => Code::InvalidArgument,
        "DeadlineExceeded" => Code::DeadlineExceeded,
        "NotFound" => Code::NotFound,
        "AlreadyExists" => Code::AlreadyExists,
        "PermissionDenied" => Code::PermissionDenied,
        "ResourceExhausted" => Code::ResourceExhausted,
        "FailedPrecondition" => Code::FailedPrecondition,
        "Aborted" => Code::Aborted,
        "OutOfRange" => Code::OutOfRange,
        "Unimplemented" => Code::Unimplemented,
        "Internal" => Code::Internal,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "Unauthenticated" => Code::Unauthenticated,
        _ => return None,
    })
}

/// The input object of a row, consumed key by key.
#[derive(Debug)]
pub struct Input(Map<String, Value>);

impl Input {
    pub fn new(row: &Row) -> Self {
        Self(row.input.clone())
    }

    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// A string value; `{"repeat": "x", "times": n}` stands for `x` repeated n times.
    pub fn string(&mut self, key: &str) -> Option<String> {
        self.take(key).map(|v| string(&v))
    }

    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        self.take(key).map(|v| match v {
            Value::Array(items) => items.iter().map(string).collect(),
            other => panic!("{key}: expected an array, got {other}"),
        })
    }

    pub fn i64(&mut self, key: &str) -> Option<i64> {
        self.take(key).map(|v| {
            v.as_i64()
                .unwrap_or_else(|| panic!("{key}: not an integer"))
        })
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        self.take(key)
            .map(|v| v.as_bool().unwrap_or_else(|| panic!("{key}: not a bool")))
    }

    /// Fails when the row had keys its test did not use.
    pub fn done(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "input keys the test does not map: {:?}",
                self.0.keys().collect::<Vec<_>>()
            ))
        }
    }
}

/// A JSON string, or `{"repeat": "x", "times": n}`.
pub fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let unit = o["repeat"].as_str().unwrap();
            let times = usize::try_from(o["times"].as_u64().unwrap()).unwrap();
            unit.repeat(times)
        }
        other => panic!("expected a string, got {other}"),
    }
}

/// What a row's request produced, and what else the test checked (datastore revision
/// unchanged, the batch's good items landed).
#[derive(Debug)]
pub struct Outcome {
    pub code: Code,
    pub message: String,
    /// Failures of the side checks, empty when they held.
    pub side: Vec<String>,
}

impl Outcome {
    pub fn status(status: &tonic::Status) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            side: Vec::new(),
        }
    }

    pub fn ok() -> Self {
        Self {
            code: Code::Ok,
            message: "OK".into(),
            side: Vec::new(),
        }
    }

    pub fn of<T>(result: &Result<T, tonic::Status>) -> Self {
        match result {
            Ok(_) => Self::ok(),
            Err(status) => Self::status(status),
        }
    }

    /// A per-item status of a batch response.
    pub fn item(status: Option<&spire_proto::spire::api::types::Status>) -> Self {
        let status = status.expect("a per-item status");
        Self {
            code: Code::from(status.code),
            message: status.message.clone(),
            side: Vec::new(),
        }
    }

    pub fn check(&mut self, holds: bool, what: impl Into<String>) {
        if !holds {
            self.side.push(what.into());
        }
    }
}

/// Rows tried and passing for one file; `finish` prints the count and fails on any `run` row
/// that did not pass (or `known-gap` row that did).
#[derive(Debug)]
pub struct Tally {
    file: String,
    tried: usize,
    passing: usize,
    failures: Vec<String>,
}

impl Tally {
    pub fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            tried: 0,
            passing: 0,
            failures: Vec::new(),
        }
    }

    pub fn record(&mut self, row: &Row, outcome: Result<Outcome, String>) {
        self.tried += 1;
        let verdict = outcome.and_then(|o| {
            let matches = match row.message.strip_suffix('…') {
                Some(prefix) => o.message.starts_with(prefix),
                None => o.message == row.message,
            };
            if o.code != row.code || !matches {
                Err(format!(
                    "got {:?} {:?}, want {:?} {:?}",
                    o.code, o.message, row.code, row.message
                ))
            } else if !o.side.is_empty() {
                Err(o.side.join("; "))
            } else {
                Ok(())
            }
        });
        match (verdict, row.known_gap) {
            (Ok(()), false) => self.passing += 1,
            (Ok(()), true) => {
                self.passing += 1;
                self.failures.push(format!(
                    "{}:{} {} / {}: passes now; drop its known-gap status",
                    self.file, row.line, row.surface, row.case
                ));
            }
            (Err(e), false) => self.failures.push(format!(
                "{}:{} {} / {}: {e}",
                self.file, row.line, row.surface, row.case
            )),
            (Err(e), true) => println!(
                "known gap {}:{} {} / {}: {e}",
                self.file, row.line, row.surface, row.case
            ),
        }
    }

    pub fn finish(self) {
        println!(
            "bad-input {}: {} rows tried, {} passing",
            self.file, self.tried, self.passing
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} rows failed:\n{}",
            self.failures.len(),
            self.tried,
            self.failures.join("\n")
        );
    }
}
