//! `audit_log_enabled`: a real `spire-server run` writing JSON lines records one `API accessed`
//! line per admin-socket call, and one per item of a batch, with the caller's credentials.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use std::path::Path;

use common::{Server, entry_id_of, ok, write_config};
use serde_json::{Map, Value};

/// Writes the server config with JSON logs in `<dir>/spire.log` and the audit log on or off.
fn configure(dir: &Path, audit: bool) -> std::path::PathBuf {
    let path = write_config(dir);
    let log = dir.join("spire.log");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("log_level = \"WARN\""));
    let keys = format!(
        "log_level = \"INFO\"\n    log_format = \"json\"\n    log_file = \"{}\"\n    \
         audit_log_enabled = {audit}",
        log.display()
    );
    std::fs::write(&path, text.replace("log_level = \"WARN\"", &keys)).unwrap();
    log
}

/// Three entries for one BatchCreateEntry; the second has no selectors and is refused.
fn write_batch(dir: &Path) -> std::path::PathBuf {
    let entry = |path: &str, selectors: Value| {
        serde_json::json!({
            "spiffe_id": {"trust_domain": "example.org", "path": path},
            "parent_id": {"trust_domain": "example.org", "path": "/node"},
            "selectors": selectors,
            "x509_svid_ttl": 600,
        })
    };
    let batch = serde_json::json!({"entries": [
        entry("/one", serde_json::json!([{"type": "unix", "value": "uid:1001"}])),
        entry("/two", serde_json::json!([])),
        entry("/three", serde_json::json!([{"type": "unix", "value": "uid:1003"}, {"type": "unix", "value": "gid:7"}])),
    ]});
    let path = dir.join("batch.json");
    std::fs::write(&path, batch.to_string()).unwrap();
    path
}

/// Every JSON line of the log that is an audit record.
fn audit_records(log: &Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|v| v.as_object().unwrap().clone())
        .filter(|o| o.get("type").and_then(Value::as_str) == Some("audit"))
        .collect()
}

fn str_of<'a>(record: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    record.get(key).and_then(Value::as_str)
}

#[test]
fn a_batch_of_three_is_three_records_and_a_plain_call_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = configure(dir.path(), true);
    let server = Server::start(dir.path());
    let batch = write_batch(dir.path());
    let out = server.cli(&["entry", "create", "-data", batch.to_str().unwrap()]);
    // One item failed, so the command reports failure; the other two were created.
    assert!(!out.status.success());
    let created = String::from_utf8(out.stdout.clone()).unwrap();
    let first_id = entry_id_of(&created);

    let records = audit_records(&log);
    let batch: Vec<_> = records
        .iter()
        .filter(|r| str_of(r, "method") == Some("BatchCreateEntry"))
        .collect();
    assert_eq!(batch.len(), 3, "{batch:#?}");
    let request_id = str_of(batch[0], "request_id").unwrap();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let cli = std::fs::canonicalize(common::BIN).unwrap();
    for (record, (path, status)) in batch.iter().zip([
        ("/one", "success"),
        ("/two", "error"),
        ("/three", "success"),
    ]) {
        assert_eq!(str_of(record, "level"), Some("info"), "{record:?}");
        assert_eq!(str_of(record, "msg"), Some("API accessed"), "{record:?}");
        assert_eq!(str_of(record, "status"), Some(status), "{record:?}");
        assert_eq!(
            str_of(record, "service"),
            Some("spire.api.server.entry.v1.Entry")
        );
        assert_eq!(str_of(record, "request_id"), Some(request_id));
        assert_eq!(
            str_of(record, "spiffe_id"),
            Some(format!("spiffe://example.org{path}").as_str())
        );
        assert_eq!(
            str_of(record, "parent_id"),
            Some("spiffe://example.org/node")
        );
        assert_eq!(record.get("x509_svid_ttl"), Some(&Value::from(600)));
        assert_eq!(record.get("admin"), Some(&Value::Bool(false)));
        assert_eq!(record.get("caller_uid"), Some(&Value::from(uid)));
        assert_eq!(record.get("caller_gid"), Some(&Value::from(gid)));
        assert_eq!(str_of(record, "caller_path"), cli.to_str());
        assert!(!record.contains_key("caller_addr"), "{record:?}");
        // The request's fields: these entries asked for no ID.
        assert!(!record.contains_key("entry_id"), "{record:?}");
        if status == "success" {
            assert!(!record.contains_key("status_code"), "{record:?}");
        } else {
            // A Go `codes.Code` in a JSON line: its number (InvalidArgument).
            assert_eq!(record.get("status_code"), Some(&Value::from(3)));
            assert!(
                str_of(record, "status_message").is_some_and(|m| !m.is_empty()),
                "{record:?}"
            );
        }
    }
    assert_eq!(str_of(batch[0], "selectors"), Some("unix:uid:1001"));
    assert_eq!(
        str_of(batch[2], "selectors"),
        Some("unix:uid:1003,unix:gid:7")
    );

    // A plain call: one record, with the request's entry ID and its own request ID.
    ok(&server.cli(&["entry", "show", "-entryID", &first_id]));
    let records = audit_records(&log);
    let shown: Vec<_> = records
        .iter()
        .filter(|r| str_of(r, "method") == Some("GetEntry"))
        .collect();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert_eq!(str_of(shown[0], "status"), Some("success"));
    assert_eq!(str_of(shown[0], "entry_id"), Some(first_id.as_str()));
    assert_ne!(str_of(shown[0], "request_id"), Some(request_id));
    assert_eq!(shown[0].get("caller_uid"), Some(&Value::from(uid)));

    // A failing plain call: the error status and message the client got.
    let out = server.cli(&["entry", "show", "-entryID", "missing"]);
    assert!(!out.status.success());
    let records = audit_records(&log);
    let failed: Vec<_> = records
        .iter()
        .filter(|r| {
            str_of(r, "method") == Some("GetEntry") && str_of(r, "entry_id") == Some("missing")
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(str_of(failed[0], "status"), Some("error"));
    assert_eq!(failed[0].get("status_code"), Some(&Value::from(5)));
    assert_eq!(str_of(failed[0], "status_message"), Some("entry not found"));

    // The other services' batches are itemised too, with SPIRE's field names.
    ok(&server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "other.org",
        "-bundleEndpointURL",
        "https://other.org:8443",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    let out = server.cli(&["bundle", "delete", "-id", "spiffe://missing.org"]);
    assert!(!out.status.success());
    let records = audit_records(&log);
    let method = |name: &str| -> Vec<&Map<String, Value>> {
        records
            .iter()
            .filter(|r| str_of(r, "method") == Some(name))
            .collect()
    };
    let created = method("BatchCreateFederationRelationship");
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(str_of(created[0], "status"), Some("success"));
    assert_eq!(str_of(created[0], "trust_domain_id"), Some("other.org"));
    assert_eq!(
        str_of(created[0], "bundle_endpoint_url"),
        Some("https://other.org:8443")
    );
    assert_eq!(
        str_of(created[0], "bundle_endpoint_profile"),
        Some("https_web")
    );
    let deleted = method("BatchDeleteFederatedBundle");
    assert_eq!(deleted.len(), 1, "{deleted:#?}");
    assert_eq!(str_of(deleted[0], "status"), Some("error"));
    assert_eq!(
        str_of(deleted[0], "trust_domain_id"),
        Some("spiffe://missing.org")
    );
    assert_eq!(deleted[0].get("status_code"), Some(&Value::from(5)));
}

#[test]
fn audit_log_off_writes_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = configure(dir.path(), false);
    let server = Server::start(dir.path());
    let batch = write_batch(dir.path());
    let out = server.cli(&["entry", "create", "-data", batch.to_str().unwrap()]);
    assert!(!out.status.success());
    let created = String::from_utf8(out.stdout.clone()).unwrap();
    ok(&server.cli(&["entry", "show", "-entryID", &entry_id_of(&created)]));
    // The log is in use (startup lines at info), but holds no audit record.
    assert!(std::fs::metadata(&log).unwrap().len() > 0);
    assert_eq!(audit_records(&log), Vec::<Map<String, Value>>::new());
}
