//! A real `spire-server run` logs as SPIRE does: logrus text or JSON lines in `log_file`, and
//! the file reopened on a real SIGUSR2 after logrotate-style renames, with no line lost.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, write_config};
use serde_json::Value;

/// Writes the server config with these logging keys instead of `log_level = "WARN"`.
fn configure(dir: &Path, logging: &str) {
    let path = write_config(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("log_level = \"WARN\""));
    std::fs::write(&path, text.replace("log_level = \"WARN\"", logging)).unwrap();
}

/// A logfmt line as logrus writes it: `key=value` pairs, values bare or Go-quoted.
fn parse_logfmt(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').unwrap();
        assert!(!key.contains(' ') && !key.is_empty(), "{line}");
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            't' => value.push('\t'),
                            e => value.push(e),
                        },
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.unwrap()..])
            }
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        assert!(after.is_empty() || after.starts_with(' '), "{line}");
        pairs.push((key.to_owned(), value));
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    pairs
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every line of a text log, parsed; each starts `time=… level=…` with a whole-second time.
fn text_lines(path: &Path) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let pairs = parse_logfmt(line);
            assert_eq!(pairs[0].0, "time", "{line}");
            assert_eq!(pairs[1].0, "level", "{line}");
            let time = &pairs[0].1;
            assert!(time.len() == 20 && time.ends_with('Z'), "{line}");
            pairs
        })
        .collect()
}

/// One line logged by the server per call: GetEntry of an unknown ID fails with NotFound,
/// which the server logs at error level before it answers.
fn log_one_line(server: &Server, n: usize) {
    let out = server.cli(&["entry", "show", "-entryID", &format!("missing-{n}")]);
    assert!(!out.status.success());
}

fn not_found_lines(path: &Path) -> usize {
    text_lines(path)
        .iter()
        .filter(|pairs| field(pairs, "msg") == Some("Entry not found"))
        .inspect(|pairs| assert_eq!(field(pairs, "level"), Some("error")))
        .count()
}

fn sigusr2(server: &Server) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(server.pid()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::USR2).unwrap();
}

/// Polls `condition` (the server reacts to a signal on its own schedule) for up to 30 s.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..300 {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn sigusr2_reopens_the_renamed_log_file_without_losing_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("spire.log");
    configure(
        dir.path(),
        &format!("log_level = \"INFO\"\n    log_file = \"{}\"", log.display()),
    );
    let server = Server::start(dir.path());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&log).unwrap().permissions());
    // 0640 as created (the umask may take more away, never add).
    assert!(mode & 0o137 == 0 && mode & 0o600 == 0o600, "{mode:o}");

    for n in 0..5 {
        log_one_line(&server, n);
    }
    // logrotate: rename, then signal. Lines logged in between still reach the renamed file.
    let first = dir.path().join("spire.log.1");
    std::fs::rename(&log, &first).unwrap();
    for n in 5..10 {
        log_one_line(&server, n);
    }
    assert!(!log.exists());
    sigusr2(&server);
    wait_for("the log file to be reopened", || log.exists());
    for n in 10..15 {
        log_one_line(&server, n);
    }
    assert_eq!(not_found_lines(&first), 10);
    assert_eq!(not_found_lines(&log), 5);

    // A reopen that fails (a directory now sits at the path) is logged to the old file, which
    // stays in use.
    let second = dir.path().join("spire.log.2");
    std::fs::rename(&log, &second).unwrap();
    std::fs::create_dir(&log).unwrap();
    sigusr2(&server);
    let failure = || {
        text_lines(&second)
            .into_iter()
            .find(|pairs| field(pairs, "msg") == Some("failed to rotate log after signal"))
    };
    wait_for("the failed rotation to be logged", || failure().is_some());
    let failure = failure().unwrap();
    assert_eq!(field(&failure, "level"), Some("error"));
    assert!(
        field(&failure, "error").is_some_and(|e| e.contains("directory")),
        "{failure:?}"
    );
    for n in 15..17 {
        log_one_line(&server, n);
    }
    assert_eq!(not_found_lines(&second), 7);
    let out = server.cli(&["healthcheck"]);
    assert!(out.status.success());
}

#[test]
fn json_lines_with_source_locations() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("spire.log");
    configure(
        dir.path(),
        &format!(
            "log_level = \"INFO\"\n    log_format = \"json\"\n    log_source_location = true\n    \
             log_file = \"{}\"",
            log.display()
        ),
    );
    let server = Server::start(dir.path());
    log_one_line(&server, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut found = false;
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let object = value.as_object().unwrap();
        for key in ["level", "msg", "time", "file", "func"] {
            assert!(object.contains_key(key), "{key} missing: {line}");
        }
        // Go marshals a map: keys in byte order.
        let mut keys: Vec<(usize, &String)> = object
            .keys()
            .map(|k| (line.find(&format!("\"{k}\":")).unwrap(), k))
            .collect();
        keys.sort();
        assert!(keys.windows(2).all(|w| w[0].1 < w[1].1), "{line}");
        let time = object["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() > 20, "{line}");
        if object["msg"] == "Entry not found" {
            found = true;
            assert_eq!(object["level"], "error");
            let file = object["file"].as_str().unwrap();
            assert!(file.starts_with("status.rs:"), "{line}");
            assert_eq!(object["func"], "spire_server_api::status");
        }
    }
    assert!(found, "{text}");
    drop(server);
}
