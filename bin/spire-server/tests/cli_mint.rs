//! End to end: `x509 mint -write` checked with `openssl verify`, `bundle show`, `token
//! generate`, and client-side validation. Run with `cargo test -p spire-server --test cli_mint`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn x509_mint_write_bundle_and_token() {
    use std::os::unix::fs::PermissionsExt as _;

    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let out_dir = tmp.path().join("minted");
    std::fs::create_dir_all(&out_dir).unwrap();
    let written = ok(&server.cli(&[
        "x509",
        "mint",
        "-spiffeID",
        "spiffe://example.org/ns/default/sa/minted",
        "-dns",
        "first.example",
        "-dns",
        "second.example",
        "-ttl",
        "30m",
        "-write",
        out_dir.to_str().unwrap(),
    ]));
    let svid = out_dir.join("svid.pem");
    let key = out_dir.join("key.pem");
    let bundle = out_dir.join("bundle.pem");
    assert_eq!(
        written,
        format!(
            "X509-SVID written to {}\nPrivate key written to {}\nRoot CAs written to {}\n",
            svid.display(),
            key.display(),
            bundle.display()
        )
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );

    // The bundle printed by `bundle show` is the one written next to the SVID.
    let shown = ok(&server.cli(&["bundle", "show"]));
    assert_eq!(shown, std::fs::read_to_string(&bundle).unwrap());
    let spiffe = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    let doc: serde_json::Value = serde_json::from_str(&spiffe).unwrap();
    assert_eq!(doc["keys"][0]["use"], "x509-svid");

    if openssl_available() {
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&bundle)
            .arg(&svid)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "openssl verify failed: {}{}",
            stdout(&verify),
            stderr(&verify)
        );
        let text = Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(&svid)
            .output()
            .unwrap();
        let text = stdout(&text);
        assert!(
            text.contains("URI:spiffe://example.org/ns/default/sa/minted"),
            "{text}"
        );
        let first = text.find("DNS:first.example").unwrap();
        let second = text.find("DNS:second.example").unwrap();
        assert!(first < second, "{text}");
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is required in CI"
        );
        eprintln!("skipping openssl verify: openssl is not installed");
    }

    // Printed form (no -write).
    let printed = ok(&server.cli(&["x509", "mint", "-spiffeID", "spiffe://example.org/printed"]));
    assert!(
        printed.starts_with("X509-SVID:\n-----BEGIN CERTIFICATE-----\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\n\nPrivate key:\n-----BEGIN PRIVATE KEY-----\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\n\nRoot CAs:\n-----BEGIN CERTIFICATE-----\n"),
        "{printed}"
    );
    assert!(
        printed.ends_with("-----END CERTIFICATE-----\n\n"),
        "{printed}"
    );

    let token = ok(&server.cli(&["token", "generate", "-ttl", "60"]));
    let value = token.strip_prefix("Token: ").unwrap().trim_end();
    assert!(!value.is_empty());
    assert_eq!(ok(&server.cli(&["bundle", "count"])), "1 bundle\n");
}

#[test]
fn client_side_validation_needs_no_server() {
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["-socketPath", "/nonexistent/api.sock"])
            .output()
            .unwrap()
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://td/x",
                "-parentID",
                "spiffe://td/p",
            ],
            "Error: at least one selector is required\n",
        ),
        (
            &[
                "entry",
                "create",
                "-selector",
                "a:b",
                "-node",
                "-federatesWith",
                "spiffe://o",
                "-spiffeID",
                "spiffe://td/x",
            ],
            "Error: node entries can not federate\n",
        ),
        (
            &[
                "entry",
                "create",
                "-selector",
                "a:b",
                "-spiffeID",
                "spiffe://td/x",
            ],
            "Error: a parent ID is required if the node flag is not set\n",
        ),
        (
            &["entry", "create", "-selector", "a:b", "-node"],
            "Error: a SPIFFE ID is required\n",
        ),
        (
            &[
                "entry",
                "create",
                "-selector",
                "a:b",
                "-node",
                "-spiffeID",
                "spiffe://td/x",
                "-x509SVIDTTL",
                "-1",
            ],
            "Error: a positive x509-SVID TTL is required\n",
        ),
        (
            &["entry", "update", "-selector", "a:b"],
            "Error: entry ID is required\n",
        ),
        (
            &[
                "entry",
                "show",
                "-entryID",
                "x",
                "-spiffeID",
                "spiffe://td/x",
            ],
            "Error: the -entryID flag can't be combined with others\n",
        ),
        (&["entry", "delete"], "Error: an entry ID is required\n"),
        (&["x509", "mint"], "Error: spiffeID must be specified\n"),
        (&["bundle", "set"], "Error: id flag is required\n"),
        (
            &["bundle", "show", "-format", "der"],
            "Error: invalid format: \"der\"\n",
        ),
    ];
    for (args, expected) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), *expected, "{args:?}");
    }
    let unhealthy = run(&["healthcheck"]);
    assert_eq!(unhealthy.status.code(), Some(1));
    assert_eq!(stdout(&unhealthy), "");
    assert_eq!(
        stderr(&unhealthy),
        "Server is unhealthy: unable to determine health\n"
    );
}
