//! Lines as SPIRE writes them: each format parsed (logfmt by the small parser below, JSON by
//! serde_json) and compared field by field with the line logrus prints for the same entry.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::file::{LogWriter, ReopenableFile};
use super::format::write_time;
use super::*;

/// Runs `f` under a logger with `format` (level debug) and returns what it wrote.
fn capture(format: LogFormat, source_location: bool, f: impl FnOnce(&LogHandle)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spire.log");
    let file = Arc::new(ReopenableFile::open(&path).unwrap());
    let (subscriber, handle) = build(
        LogLevel::Debug,
        format,
        source_location,
        LogWriter::File(file),
        filter_for(LogLevel::Debug),
    );
    tracing::subscriber::with_default(subscriber, || f(&handle));
    std::fs::read_to_string(&path).unwrap()
}

/// A logfmt line as logrus's text formatter writes it: `key=value` pairs separated by one
/// space, values bare or Go-quoted. Keeps the order.
fn parse_logfmt(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("key=value");
        assert!(!key.is_empty() && !key.contains(' '), "bad key in {line:?}");
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            unquote(quoted)
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        pairs.push((key.to_owned(), value));
        rest = after.strip_prefix(' ').unwrap_or(after);
        assert!(
            after.is_empty() || after.starts_with(' '),
            "junk after a value in {line:?}"
        );
    }
    pairs
}

/// Reads a Go-quoted string's body up to its closing quote; returns it and what follows.
fn unquote(text: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &text[i + 1..]),
            '\\' => {
                let (_, e) = chars.next().expect("escape");
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'x' | 'u' => {
                        let n = if e == 'x' { 2 } else { 4 };
                        let hex: String = (0..n).map(|_| chars.next().unwrap().1).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                    }
                    other => panic!("unexpected escape \\{other}"),
                }
            }
            c => out.push(c),
        }
    }
    panic!("unterminated quoted value: {text:?}")
}

/// `time` is RFC 3339 in UTC: whole seconds, or (`nanos`) with a fraction of 1 to 9 digits
/// whose last digit is not 0.
fn assert_time(time: &str, nanos: bool) {
    let (main, zone) = time.split_at(19);
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let b = main.as_bytes();
    assert!(
        digits(&main[0..4])
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':',
        "{time}"
    );
    let fraction = zone.strip_suffix('Z').expect("UTC");
    if nanos {
        if let Some(f) = fraction.strip_prefix('.') {
            assert!(
                (1..=9).contains(&f.len()) && digits(f) && !f.ends_with('0'),
                "{time}"
            );
        } else {
            assert!(fraction.is_empty(), "{time}");
        }
    } else {
        assert!(fraction.is_empty(), "{time}");
    }
}

/// Compares a line with the one SPIRE prints (same fields, same order, same values), time
/// aside; returns the line's time.
fn assert_same_line(ours: &str, spire: &str) -> String {
    let ours = parse_logfmt(ours);
    let spire = parse_logfmt(spire);
    assert_eq!(ours.len(), spire.len(), "{ours:?}\n{spire:?}");
    assert_eq!(ours[0].0, "time");
    for (a, b) in ours.iter().zip(&spire).skip(1) {
        assert_eq!(a, b);
    }
    ours[0].1.clone()
}

fn one_line(text: &str) -> &str {
    let mut lines = text.lines();
    let line = lines.next().expect("a line");
    assert_eq!(lines.next(), None, "one line expected: {text}");
    assert!(text.ends_with('\n'));
    line
}

fn entry_created() {
    let span = tracing::info_span!("task", subsystem_name = "entry_api");
    let _entered = span.enter();
    tracing::info!(
        spiffe_id = "spiffe://example.org/ns/default/sa/sleep",
        entry_id = "6d2b9c5e-4bd8-4fd4-9f0e-0a1f2b3c4d5e",
        count = 3,
        admin = false,
        "Entry created"
    );
}

#[test]
fn default_format_is_logrus_text_with_whole_second_times() {
    let out = capture(LogFormat::Default, false, |_| entry_created());
    let time = assert_same_line(
        one_line(&out),
        r#"time="2026-12-07T14:01:12Z" level=info msg="Entry created" admin=false count=3 entry_id=6d2b9c5e-4bd8-4fd4-9f0e-0a1f2b3c4d5e spiffe_id="spiffe://example.org/ns/default/sa/sleep" subsystem_name=entry_api"#,
    );
    assert_time(&time, false);
    assert!(out.starts_with("time=\""), "{out}");
}

#[test]
fn text_format_has_nanosecond_times() {
    let out = capture(LogFormat::Text, false, |_| entry_created());
    let time = assert_same_line(
        one_line(&out),
        r#"time="2026-12-07T14:01:12.123456789Z" level=info msg="Entry created" admin=false count=3 entry_id=6d2b9c5e-4bd8-4fd4-9f0e-0a1f2b3c4d5e spiffe_id="spiffe://example.org/ns/default/sa/sleep" subsystem_name=entry_api"#,
    );
    assert_time(&time, true);
}

#[test]
fn json_lines_have_every_key_sorted_with_typed_values() {
    let out = capture(LogFormat::Json, false, |_| entry_created());
    let line = one_line(&out);
    let ours: Value = serde_json::from_str(line).unwrap();
    let time = ours["time"].as_str().unwrap().to_owned();
    assert_time(&time, true);
    let spire = json!({
        "admin": false, "count": 3,
        "entry_id": "6d2b9c5e-4bd8-4fd4-9f0e-0a1f2b3c4d5e", "level": "info",
        "msg": "Entry created", "spiffe_id": "spiffe://example.org/ns/default/sa/sleep",
        "subsystem_name": "entry_api", "time": time,
    });
    assert_eq!(ours, spire);
    // Go marshals a map: every key in byte order, level/msg/time among the fields.
    let keys = [
        "admin",
        "count",
        "entry_id",
        "level",
        "msg",
        "spiffe_id",
        "subsystem_name",
        "time",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.is_sorted(), "{line}");
    assert!(line.starts_with("{\"admin\":false,\"count\":3,"), "{line}");
}

#[test]
fn warn_is_warning_and_errors_go_in_the_error_field() {
    let failure = std::io::Error::other("connection refused");
    for format in [LogFormat::Default, LogFormat::Json] {
        let out = capture(format, false, |_| {
            tracing::warn!(error = %failure, "Failed to fetch bundle");
            tracing::error!(error = %failure, "Failed to rotate");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        if format == LogFormat::Json {
            let warn: Value = serde_json::from_str(lines[0]).unwrap();
            assert_eq!(warn["level"], "warning");
            assert_eq!(warn["error"], "connection refused");
            let error: Value = serde_json::from_str(lines[1]).unwrap();
            assert_eq!(error["level"], "error");
        } else {
            assert_same_line(
                lines[0],
                r#"time="2026-12-07T14:01:12Z" level=warning msg="Failed to fetch bundle" error="connection refused""#,
            );
            assert_same_line(
                lines[1],
                r#"time="2026-12-07T14:01:12Z" level=error msg="Failed to rotate" error="connection refused""#,
            );
        }
    }
}

#[test]
fn values_are_quoted_only_when_logrus_quotes_them() {
    let out = capture(LogFormat::Default, false, |_| {
        tracing::info!(
            empty = "",
            bare = "a-b.c_d/e@f^g+h9",
            space = "a b",
            equals = "a=b",
            colon = "host:8081",
            accent = "café",
            quote = "say \"hi\"\n",
            "Started"
        );
    });
    let line = one_line(&out);
    let tail = line.split_once(" level=").unwrap().1;
    assert_eq!(
        tail,
        r#"info msg=Started accent="café" bare=a-b.c_d/e@f^g+h9 colon="host:8081" empty= equals="a=b" quote="say \"hi\"\n" space="a b""#
    );
    let fields = parse_logfmt(line);
    assert!(fields.contains(&("quote".into(), "say \"hi\"\n".into())));
    assert!(fields.contains(&("empty".into(), String::new())));
}

#[test]
fn json_strings_are_escaped_as_go_escapes_them() {
    let out = capture(LogFormat::Json, false, |_| {
        tracing::info!(html = "<a href=\"x\">&</a>", ctl = "\u{1}\t\u{2028}", "m");
    });
    let line = one_line(&out);
    assert!(
        line.contains(r#""html":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#),
        "{line}"
    );
    assert!(line.contains(r#""ctl":"\u0001\t\u2028""#), "{line}");
    let parsed: Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["html"], "<a href=\"x\">&</a>");
}

#[test]
fn reserved_names_are_renamed_and_an_empty_message_is_left_out() {
    let out = capture(LogFormat::Default, false, |_| {
        tracing::info!(time = 1, msg = "x", level = "y", zone = "z");
    });
    assert_same_line(
        one_line(&out),
        r#"time="2026-12-07T14:01:12Z" level=info fields.level=y fields.msg=x fields.time=1 zone=z"#,
    );
    let out = capture(LogFormat::Json, false, |_| tracing::info!(zone = "z"));
    let parsed: Value = serde_json::from_str(one_line(&out)).unwrap();
    assert_eq!(parsed["msg"], "");
}

#[test]
fn inner_values_win_over_outer_ones() {
    let out = capture(LogFormat::Default, false, |_| {
        let outer = tracing::info_span!("outer", spiffe_id = "spiffe://td/outer", a = 1);
        let _o = outer.enter();
        let inner = tracing::info_span!("inner", spiffe_id = "spiffe://td/inner");
        let _i = inner.enter();
        tracing::info!(b = 2, "m");
        tracing::info!(spiffe_id = "spiffe://td/event", "m");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_same_line(
        lines[0],
        r#"time="2026-12-07T14:01:12Z" level=info msg=m a=1 b=2 spiffe_id="spiffe://td/inner""#,
    );
    assert_same_line(
        lines[1],
        r#"time="2026-12-07T14:01:12Z" level=info msg=m a=1 spiffe_id="spiffe://td/event""#,
    );
}

#[test]
fn source_location_adds_file_and_func() {
    let mut line_no = 0;
    let out = capture(LogFormat::Default, true, |_| {
        line_no = line!() + 1;
        tracing::info!(zone = "z", "here");
    });
    assert_same_line(
        one_line(&out),
        &format!(
            r#"time="2026-12-07T14:01:12Z" level=info msg=here file="tests.rs:{line_no}" func="spire_cli::logging::tests" zone=z"#
        ),
    );
    let out = capture(LogFormat::Json, true, |_| tracing::info!("here"));
    let parsed: Value = serde_json::from_str(one_line(&out)).unwrap();
    assert!(parsed["file"].as_str().unwrap().starts_with("tests.rs:"));
    assert_eq!(parsed["func"], "spire_cli::logging::tests");
}

#[test]
fn the_level_changes_while_running_and_resets_to_the_launch_level() {
    let out = capture(LogFormat::Default, false, |handle| {
        assert_eq!(handle.launch_level(), LogLevel::Debug);
        tracing::debug!("one");
        handle.set_level(LogLevel::Warn).unwrap();
        assert_eq!(handle.current_level(), LogLevel::Warn);
        tracing::debug!("two");
        tracing::info!("three");
        tracing::warn!("four");
        handle.set_level(handle.launch_level()).unwrap();
        tracing::debug!("five");
    });
    let messages: Vec<String> = out
        .lines()
        .map(|l| {
            parse_logfmt(l)
                .into_iter()
                .find(|(k, _)| k == "msg")
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(messages, ["one", "four", "five"]);
}

#[test]
fn levels_and_formats_parse_as_spire_parses_them() {
    assert_eq!(LogLevel::parse("WARN"), Ok(LogLevel::Warn));
    assert_eq!(LogLevel::parse("warning"), Ok(LogLevel::Warn));
    assert_eq!(LogLevel::parse("Debug"), Ok(LogLevel::Debug));
    assert_eq!(
        LogLevel::parse("loud"),
        Err("not a valid logrus Level: \"loud\"".into())
    );
    let names: Vec<&str> = LogLevel::ALL.iter().map(|l| l.as_str()).collect();
    assert_eq!(
        names,
        [
            "panic", "fatal", "error", "warning", "info", "debug", "trace"
        ]
    );
    assert_eq!(LogFormat::parse(""), Ok(LogFormat::Default));
    assert_eq!(LogFormat::parse("TEXT"), Ok(LogFormat::Text));
    assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
    assert_eq!(
        LogFormat::parse("yaml"),
        Err("unknown logger format: \"yaml\"".into())
    );
}

#[test]
fn times_are_rfc3339_as_go_prints_them() {
    let at =
        |nanos: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_nanos(nanos);
    let text = |nanos: u64, nano_format: bool| {
        let mut s = String::new();
        write_time(&mut s, at(nanos), nano_format).unwrap();
        s
    };
    assert_eq!(text(120_000_000, false), "2023-11-14T22:13:20Z");
    assert_eq!(text(120_000_000, true), "2023-11-14T22:13:20.12Z");
    assert_eq!(text(0, true), "2023-11-14T22:13:20Z");
    assert_eq!(text(5, true), "2023-11-14T22:13:20.000000005Z");
    let mut leap = String::new();
    write_time(
        &mut leap,
        UNIX_EPOCH + Duration::from_secs(951_782_400),
        false,
    )
    .unwrap();
    assert_eq!(leap, "2000-02-29T00:00:00Z");
}

#[test]
fn a_reopened_file_takes_later_lines_and_a_failed_reopen_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spire.log");
    let file = Arc::new(ReopenableFile::open(&path).unwrap());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777 & !0o022, 0o640 & !0o022, "{mode:o}");
    let writer = LogWriter::File(file.clone());
    let write = |text: &str| {
        use std::io::Write as _;
        tracing_subscriber::fmt::MakeWriter::make_writer(&writer)
            .write_all(text.as_bytes())
            .unwrap();
    };
    write("one\n");
    std::fs::rename(&path, dir.path().join("spire.log.1")).unwrap();
    write("two\n");
    file.reopen().unwrap();
    write("three\n");
    std::fs::rename(&path, dir.path().join("spire.log.2")).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert!(file.reopen().is_err());
    write("four\n");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("spire.log.1"), "one\ntwo\n");
    assert_eq!(read("spire.log.2"), "three\nfour\n");
}

/// Fields named at run time sort among the others; a dual value is a number in JSON and its
/// name in text, as logrus prints a Go `codes.Code`.
#[test]
fn runtime_fields_are_fields_of_their_own() {
    let log = || {
        let mut fields = RuntimeFields::default();
        fields
            .dual("status_code", 3, "InvalidArgument")
            .string("x509_authorities_asn1_sha256.0", "ab")
            .bare("refresh_hint", 300);
        tracing::info!(
            runtime_fields = fields.as_str(),
            type_ = "audit",
            "API accessed"
        );
    };
    let json = capture(LogFormat::Json, false, |_| log());
    let ours: Value = serde_json::from_str(one_line(&json)).unwrap();
    let time = ours["time"].as_str().unwrap().to_owned();
    assert_eq!(
        ours,
        json!({
            "level": "info", "msg": "API accessed", "refresh_hint": 300, "status_code": 3,
            "time": time, "type_": "audit", "x509_authorities_asn1_sha256.0": "ab",
        })
    );
    let text = capture(LogFormat::Text, false, |_| log());
    let pairs = parse_logfmt(one_line(&text));
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "time",
            "level",
            "msg",
            "refresh_hint",
            "status_code",
            "type_",
            "x509_authorities_asn1_sha256.0"
        ]
    );
    assert_eq!(pairs[4].1, "InvalidArgument");
}
