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
