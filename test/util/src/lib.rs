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

/// The value of `<key>: |` (a literal block scalar, as ConfigMaps in Kubernetes manifests
/// carry files) in a YAML manifest: the indented lines below it, de-indented. `None` when the
/// key is absent.
pub fn manifest_block(manifest: &str, key: &str) -> Option<String> {
    let mut lines = manifest.lines();
    let header = format!("{key}: |");
    let start = lines.by_ref().find(|l| l.trim() == header)?;
    let key_indent = start.len() - start.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut text: String = body
        .iter()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect();
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_block_reads_a_literal_block() {
        let manifest = "data:\n  a.conf: |\n    one {\n      two = 2\n    }\n\n    three\n  b.conf: |\n    x\n---\n";
        assert_eq!(
            manifest_block(manifest, "a.conf").unwrap(),
            "one {\n  two = 2\n}\n\nthree\n"
        );
        assert_eq!(manifest_block(manifest, "b.conf").unwrap(), "x\n");
        assert!(manifest_block(manifest, "c.conf").is_none());
    }
}
