//! The unmodified py-spiffe client (PyPI `spiffe==0.3.2`, gRPC C-core underneath) against our
//! endpoint. C-core sends the socket path as `:authority`, which h2 rejects unless the
//! listener rewrites it (`spire-uds`).
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

const SCRIPT: &str = r#"
import sys
from spiffe import WorkloadApiClient
with WorkloadApiClient(socket_path="unix://" + sys.argv[1], default_timeout=20) as client:
    svid = client.fetch_x509_svid()
    print("svid", svid.spiffe_id, len(svid.cert_chain))
    bundles = client.fetch_x509_bundles()
    for bundle in bundles.bundles:
        print("bundle", bundle.trust_domain, len(bundle.x509_authorities))
"#;

/// Whether `python3` with the `spiffe` package is present (skips, or fails in CI, if not).
fn py_spiffe_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import spiffe"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        spire_test::skip(
            "python3 with py-spiffe is missing (pip install --break-system-packages spiffe==0.3.2)",
        );
    }
    found
}

#[tokio::test]
async fn py_spiffe_fetches_svid_and_bundles() {
    if !py_spiffe_available() {
        return;
    }
    let ca = TestCa::new();
    let cache = cache(&ca);
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-py", "python", &[my_uid_selector()])],
    );
    let served = serve(&cache, false);

    let output = tokio::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&served.socket)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "py-spiffe failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["svid spiffe://example.org/python 1", "bundle example.org 1"],
        "{stderr}"
    );
}
