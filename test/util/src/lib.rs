//! Shared test support: finding the users' real files in `../shared/testdata`, and skipping a
//! test that needs something absent — except in CI, where a skip would hide a gap; and small
//! TLS helpers ([`tls`]).
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub mod tls;

/// True when running under CI (`CI=true`), where missing prerequisites are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (returns after saying why) outside CI; panics with the same reason in CI.
pub fn skip(reason: &str) {
    assert!(!in_ci(), "required in CI: {reason}");
    eprintln!("skipping: {reason}");
}

/// Runs `python3 -c <script> <args…>` — the tests' independent writer of other programs' file
/// formats (with `cryptography`, which CI installs) — and returns its standard output, or
/// `None` after [`skip`] when python3 or a module the script imports is missing.
pub fn python(script: &str, args: &[&std::ffi::OsStr]) -> Option<Vec<u8>> {
    let why = match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
    {
        Ok(out) if out.status.success() => return Some(out.stdout),
        Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    skip(&format!("python3 with cryptography is unavailable: {why}"));
    None
}

/// `../shared/testdata/<sub>` beside the checkout, or `None` (after [`skip`]) when a plain
/// clone has no shared folder.
pub fn shared_testdata(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(sub);
    if dir.exists() {
        Some(dir)
    } else {
        skip(&format!(
            "{} is absent (a plain clone has no shared testdata)",
            dir.display()
        ));
        None
    }
}

/// Every object of a multi-document YAML manifest (the files users `kubectl apply`).
pub fn manifest_objects(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `data[key]` of ConfigMap `namespace/name` among a manifest's objects (a file a pod
/// mounts, such as `server.conf`).
pub fn config_map_data(
    objects: &[serde_json::Value],
    namespace: &str,
    name: &str,
    key: &str,
) -> String {
    objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["namespace"] == namespace
                && o["metadata"]["name"] == name
        })
        .and_then(|o| o["data"][key].as_str())
        .unwrap_or_else(|| panic!("no ConfigMap {namespace}/{name} with data[{key:?}]"))
        .to_owned()
}
