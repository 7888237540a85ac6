use std::collections::{BTreeMap, HashMap};

use clap::Parser as _;
use prost_types::{ListValue, Struct, Value};
use spire_proto::workload::Jwtsvid;

use super::*;
use crate::cli::Cli;

/// Runs `print` with an `Io` on buffers and returns stdout.
fn output(print: impl FnOnce(&mut Io<'_>) -> anyhow::Result<()>) -> String {
    let (mut out, mut err, mut stdin) = (Vec::new(), Vec::new(), std::io::empty());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        stdin: &mut stdin,
    };
    print(&mut io).unwrap();
    assert!(err.is_empty());
    String::from_utf8(out).unwrap()
}

fn svids() -> JwtsvidResponse {
    JwtsvidResponse {
        svids: vec![
            Jwtsvid {
                spiffe_id: "spiffe://example.org/a".into(),
                svid: "h.p.s".into(),
                hint: String::new(),
            },
            Jwtsvid {
                spiffe_id: "spiffe://example.org/b".into(),
                svid: "h2.p2.s2".into(),
                hint: "db".into(),
            },
        ],
    }
}

fn bundles() -> JwtBundlesResponse {
    let bundles: HashMap<String, Vec<u8>> = [
        (
            "spiffe://other.org".to_owned(),
            b"{\n    \"keys\": []\n}".to_vec(),
        ),
        ("spiffe://example.org".to_owned(), b"{\"keys\":[]}".to_vec()),
    ]
    .into();
    JwtBundlesResponse { bundles }
}

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

fn claims() -> ValidateJwtsvidResponse {
    let fields: BTreeMap<String, Value> = [
        (
            "sub",
            value(Kind::StringValue("spiffe://example.org/a".into())),
        ),
        (
            "aud",
            value(Kind::ListValue(ListValue {
                values: vec![value(Kind::StringValue("svc".into()))],
            })),
        ),
        ("exp", value(Kind::NumberValue(1_767_225_900.0))),
        ("ok", value(Kind::BoolValue(true))),
        ("none", value(Kind::NullValue(0))),
        (
            "nested",
            value(Kind::StructValue(Struct {
                fields: [("ratio".to_owned(), value(Kind::NumberValue(0.5)))].into(),
            })),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    ValidateJwtsvidResponse {
        spiffe_id: "spiffe://example.org/a".into(),
        claims: Some(Struct { fields }),
    }
}

#[test]
fn fetch_pretty_prints_tokens_hints_then_bundles() {
    let text = output(|io| print_fetch_pretty(io, &svids(), &bundles()));
    assert_eq!(
        text,
        "token(spiffe://example.org/a):\n\th.p.s\n\
         token(spiffe://example.org/b):\n\th2.p2.s2\n\
         hint(spiffe://example.org/b):\n\tdb\n\
         bundle(spiffe://example.org):\n\t{\"keys\":[]}\n\
         bundle(spiffe://other.org):\n\t{\n    \"keys\": []\n}\n"
    );
}

#[test]
fn fetch_json_is_an_array_of_both_responses() {
    let mut only_own = bundles();
    only_own.bundles.remove("spiffe://other.org");
    let mut one = svids();
    one.svids.truncate(1);
    let text = output(|io| print_fetch_json(io, &one, &only_own));
    assert_eq!(
        text,
        concat!(
            r#"[{"svids":[{"hint":"","spiffe_id":"spiffe://example.org/a","svid":"h.p.s"}]},"#,
            r#"{"bundles":{"spiffe://example.org":"eyJrZXlzIjpbXX0="}}]"#,
            "\n"
        )
    );
}

#[test]
fn validate_pretty_prints_the_id_and_compact_claims() {
    let text = output(|io| print_validate_pretty(io, &claims()));
    assert_eq!(
        text,
        "SVID is valid.\n\
         SPIFFE ID : spiffe://example.org/a\n\
         Claims    : {\"aud\":[\"svc\"],\"exp\":1767225900,\"nested\":{\"ratio\":0.5},\
         \"none\":null,\"ok\":true,\"sub\":\"spiffe://example.org/a\"}\n"
    );
}

#[test]
fn validate_json_prints_the_claims_as_an_object() {
    let mut response = claims();
    response.claims = Some(Struct {
        fields: [(
            "aud".to_owned(),
            value(Kind::ListValue(ListValue {
                values: vec![value(Kind::StringValue("svc".into()))],
            })),
        )]
        .into(),
    });
    let text = output(|io| print_validate_json(io, &response));
    assert_eq!(
        text,
        "{\"claims\":{\"aud\":[\"svc\"]},\"spiffe_id\":\"spiffe://example.org/a\"}\n"
    );
}

#[test]
fn numbers_are_written_as_go_writes_them() {
    assert_eq!(go_number(0.0), "0");
    assert_eq!(go_number(1_767_225_900.0), "1767225900");
    assert_eq!(go_number(-2.5), "-2.5");
    assert_eq!(go_number(1e20), "100000000000000000000");
    assert_eq!(go_number(1e21), "1e+21");
    assert_eq!(go_number(1.5e-7), "1.5e-7");
    assert_eq!(go_number(0.000001), "0.000001");
}

#[test]
fn flags_parse_as_spire_spells_them() {
    let cli = Cli::try_parse_from(spire_cli::normalize(
        [
            "spire-agent",
            "api",
            "fetch",
            "jwt",
            "-audience",
            "a,b",
            "-spiffeID",
            "spiffe://example.org/a",
            "-format",
            "json",
            "-socketPath",
            "/tmp/x.sock",
        ]
        .map(std::ffi::OsString::from),
    ))
    .unwrap();
    let text = format!("{cli:?}");
    assert!(text.contains(r#"audience: ["a", "b"]"#), "{text}");
    assert!(text.contains("format: Some(Json)"), "{text}");

    let cli = Cli::try_parse_from(spire_cli::normalize(
        [
            "spire-agent",
            "api",
            "validate",
            "jwt",
            "-audience",
            "svc",
            "-svid",
            "h.p.s",
            "-timeout",
            "5s",
        ]
        .map(std::ffi::OsString::from),
    ))
    .unwrap();
    let text = format!("{cli:?}");
    assert!(text.contains(r#"audience: "svc""#), "{text}");
    assert!(text.contains("timeout: 5000000000"), "{text}");
}

#[tokio::test]
async fn missing_audience_or_svid_fails_before_dialing() {
    let run = |args: &[&str]| {
        let args: Vec<std::ffi::OsString> = ["spire-agent", "api"]
            .iter()
            .chain(args)
            .map(std::ffi::OsString::from)
            .collect();
        Cli::try_parse_from(spire_cli::normalize(args)).unwrap()
    };
    let socket = ["-socketPath", "/nonexistent/api.sock"];
    let cases: [(Vec<&str>, &str); 3] = [
        (vec!["fetch", "jwt"], "audience must be specified"),
        (
            vec!["validate", "jwt", "-svid", "x"],
            "audience must be specified",
        ),
        (
            vec!["validate", "jwt", "-audience", "a"],
            "svid must be specified",
        ),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = args.into_iter().chain(socket).collect();
        let error = run(&args).run().await.unwrap_err();
        assert_eq!(error.to_string(), message);
    }
}
