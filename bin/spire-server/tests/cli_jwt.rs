//! End to end: `jwt mint` against a real server, its token checked with
//! `spire_svid::jwt::validate_jwt_svid` against `bundle show -format spiffe`; `-write`,
//! `-output json`, the TTL cap warning, and errors. Run with
//! `cargo test -p spire-server --test cli_jwt`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::Value;
use spire_id::TrustDomain;
use spire_svid::Bundle;
use spire_svid::jwt::validate_jwt_svid;
use spire_time::{Clock as _, SystemClock};

fn bundle(server: &Server) -> Bundle {
    let json = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    Bundle::from_spiffe_json(TrustDomain::new("example.org").unwrap(), json.as_bytes()).unwrap()
}

fn segment(token: &str, n: usize) -> Value {
    let part = token.split('.').nth(n).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn jwt_mint_prints_writes_and_refuses() {
    use std::os::unix::fs::PermissionsExt as _;

    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());

    // Pretty: the token and a newline; it validates against the published bundle.
    let printed = ok(&server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/ns/default/sa/minted",
        "-audience",
        "first",
        "-audience",
        "second",
        "-ttl",
        "10m",
    ]));
    let token = printed.strip_suffix('\n').unwrap();
    assert!(!token.contains('\n'));
    let bundle = bundle(&server);
    let now = SystemClock.unix_seconds();
    let validated = validate_jwt_svid(token, &["second".to_owned()], now, |_| Some(&bundle))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        validated.spiffe_id.to_string(),
        "spiffe://example.org/ns/default/sa/minted"
    );
    let claims = &validated.claims;
    assert_eq!(claims["aud"], serde_json::json!(["first", "second"]));
    let (exp, iat) = (
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600);
    assert!((iat - now).abs() <= 60, "iat {iat} vs now {now}");
    let header = segment(token, 0);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("ES256"), Some("JWT"))
    );
    assert!(
        bundle
            .jwt_authorities
            .iter()
            .any(|k| Some(k.key_id.as_str()) == header["kid"].as_str())
    );
    // The bundle document carries the key as a `jwt-svid` JWK.
    let doc: Value =
        serde_json::from_str(&ok(&server.cli(&["bundle", "show", "-format", "spiffe"]))).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["use"] == "jwt-svid" && k["kid"] == header["kid"])
    );
    // Another audience does not validate.
    assert!(validate_jwt_svid(token, &["third".to_owned()], now, |_| Some(&bundle)).is_err());

    // No -ttl: the server default (5m).
    let token = ok(&server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/w",
        "-audience",
        "a",
    ]));
    let claims = segment(token.trim_end(), 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    // -output json: MintJWTSVIDResponse as protojson.
    let json = ok(&server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/w",
        "-audience",
        "a",
        "-output",
        "json",
    ]));
    let doc: Value = serde_json::from_str(&json).unwrap();
    let svid = &doc["svid"];
    assert_eq!(svid["id"]["trust_domain"], "example.org");
    assert_eq!(svid["id"]["path"], "/w");
    assert!(svid["expires_at"].is_string(), "int64 as a JSON string");
    let token = svid["token"].as_str().unwrap();
    assert!(validate_jwt_svid(token, &["a".to_owned()], now, |_| Some(&bundle)).is_ok());

    // -write: the token alone in a private file.
    let path = tmp.path().join("token.jwt");
    let written = ok(&server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/w",
        "-audience",
        "a",
        "-write",
        path.to_str().unwrap(),
    ]));
    assert_eq!(written, format!("JWT-SVID written to {}\n", path.display()));
    let stored = std::fs::read_to_string(&path).unwrap();
    assert!(!stored.ends_with('\n'));
    assert!(validate_jwt_svid(&stored, &["a".to_owned()], now, |_| Some(&bundle)).is_ok());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A TTL beyond the JWT key's life is capped, with SPIRE's warning.
    let capped = server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/w",
        "-audience",
        "a",
        "-ttl",
        "48h",
    ]);
    let token = ok(&capped);
    // The key lives ca_ttl (24h) from the server's start, a few seconds ago.
    let claims = segment(token.trim_end(), 1);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((23 * 3600..=24 * 3600).contains(&lifetime), "{lifetime}");
    let warning = stderr(&capped);
    assert!(
        warning.starts_with("JWT-SVID lifetime was capped shorter than specified ttl; expires \""),
        "{warning}"
    );

    // Server-side refusals, in SPIRE's words.
    let refused: &[(&[&str], &str)] = &[
        (
            &["-spiffeID", "spiffe://other.org/w", "-audience", "a"],
            "Error: unable to mint SVID: rpc error: code = InvalidArgument desc = invalid SPIFFE ID: \"spiffe://other.org/w\" is not a member of trust domain \"example.org\"\n",
        ),
        (
            &[
                "-spiffeID",
                "spiffe://example.org/spire/server",
                "-audience",
                "a",
            ],
            "Error: unable to mint SVID: rpc error: code = InvalidArgument desc = invalid SPIFFE ID: \"spiffe://example.org/spire/server\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace\n",
        ),
        (
            &["-spiffeID", "example.org/w", "-audience", "a"],
            "Error: scheme is missing or invalid\n",
        ),
        (
            &[
                "-spiffeID",
                "spiffe://example.org/w",
                "-audience",
                "a",
                "-write",
                "/nonexistent/dir/token",
            ],
            "Error: unable to write token: open /nonexistent/dir/token: no such file or directory\n",
        ),
    ];
    for (args, expected) in refused {
        let all: Vec<&str> = ["jwt", "mint"].iter().chain(args.iter()).copied().collect();
        let out = server.cli(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), *expected, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn jwt_mint_client_side_validation_needs_no_server() {
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["jwt", "mint"])
            .args(args)
            .args(["-socketPath", "/nonexistent/api.sock"])
            .output()
            .unwrap()
    };
    let cases: &[(&[&str], &str)] = &[
        (&["-audience", "a"], "Error: spiffeID must be specified\n"),
        (
            &["-spiffeID", "spiffe://example.org/w"],
            "Error: at least one audience must be specified\n",
        ),
    ];
    for (args, expected) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), *expected, "{args:?}");
    }
}

#[test]
fn jwt_mint_on_a_server_with_jwt_svids_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "    trust_domain = \"example.org\"\n",
        "    trust_domain = \"example.org\"\n    disable_jwt_svids = true\n",
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(tmp.path());
    let out = server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/w",
        "-audience",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: unable to mint SVID: rpc error: code = Unimplemented desc = JWT functionality is disabled\n"
    );
    let doc: Value =
        serde_json::from_str(&ok(&server.cli(&["bundle", "show", "-format", "spiffe"]))).unwrap();
    assert!(
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["use"] == "x509-svid"),
        "no JWT key is published: {doc}"
    );
}
