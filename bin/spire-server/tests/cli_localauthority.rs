//! `spire-server localauthority x509|jwt …` and `upstreamauthority …` against a real server:
//! SPIRE's labels, the prepare → activate → taint → revoke cycle, the refusals as SPIRE
//! prints them, and `-output json`.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod common;

use common::{Server, ok, stderr, write_config};

/// The value after `label` on the first line of `text` that has it.
fn value(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {text:?}"))
        .trim()
        .to_owned()
}

fn fails(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    stderr(&out)
}

/// `Authority ID: <40 hex>` and `Expires at: <Go UTC time>`.
fn assert_state_lines(text: &str) {
    let id = value(text, "Authority ID:");
    assert_eq!(id.len(), 40, "{text}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert!(value(text, "Expires at:").ends_with("+0000 UTC"), "{text}");
}

#[test]
fn x509_cycle_with_spire_outputs() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let server = Server::start(dir.path());

    let show = ok(&server.cli(&["localauthority", "x509", "show"]));
    assert!(
        show.starts_with("Active X.509 authority:\n  Authority ID: "),
        "{show}"
    );
    assert!(
        show.ends_with(
            "  Upstream authority ID: No upstream authority\n\nPrepared X.509 authority:\n  No prepared X.509 authority found\n\nOld X.509 authority:\n  No old X.509 authority found\n"
        ),
        "{show}"
    );
    assert_state_lines(&show);
    let first = value(&show, "Authority ID:");

    assert_eq!(
        fails(&server, &["localauthority", "x509", "activate"]),
        "Error: an authority ID is required\n"
    );
    assert_eq!(
        fails(
            &server,
            &["localauthority", "x509", "taint", "-authorityID", &first]
        ),
        "Error: could not taint X.509 authority: rpc error: code = InvalidArgument desc = unable to taint current local authority\n"
    );

    let prepared = ok(&server.cli(&["localauthority", "x509", "prepare"]));
    assert!(
        prepared.starts_with("Prepared X.509 authority:\n"),
        "{prepared}"
    );
    assert_state_lines(&prepared);
    let next = value(&prepared, "Authority ID:");
    assert_ne!(next, first);
    assert_eq!(
        fails(
            &server,
            &["localauthority", "x509", "taint", "-authorityID", &next]
        ),
        "Error: could not taint X.509 authority: rpc error: code = InvalidArgument desc = only Old local authorities can be tainted: unsupported local authority status: PREPARED\n"
    );

    let activated = ok(&server.cli(&["localauthority", "x509", "activate", "-authorityID", &next]));
    assert!(
        activated.starts_with("Activated X.509 authority:\n"),
        "{activated}"
    );
    assert_eq!(value(&activated, "Authority ID:"), next);

    let show = ok(&server.cli(&["localauthority", "x509", "show"]));
    assert!(
        show.contains("\n\nOld X.509 authority:\n  Authority ID: "),
        "{show}"
    );
    assert!(
        show.contains("  No prepared X.509 authority found\n"),
        "{show}"
    );

    assert_eq!(
        fails(
            &server,
            &["localauthority", "x509", "revoke", "-authorityID", &first]
        ),
        "Error: could not revoke X.509 authority: rpc error: code = Internal desc = failed to revoke X.509 authority: it is not possible to revoke an untainted root CA\n"
    );
    let tainted = ok(&server.cli(&["localauthority", "x509", "taint", "-authorityID", &first]));
    assert!(
        tainted.starts_with("Tainted X.509 authority:\n"),
        "{tainted}"
    );
    assert_eq!(value(&tainted, "Authority ID:"), first);
    let bundle = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    assert_eq!(bundle.matches("\"x5c\"").count(), 2, "{bundle}");

    let revoked = ok(&server.cli(&[
        "localauthority",
        "x509",
        "revoke",
        "-authorityID",
        &first,
        "-output",
        "json",
    ]));
    assert_eq!(
        revoked.trim_end(),
        format!(
            r#"{{"revoked_authority":{{"authority_id":"{first}","expires_at":"0","upstream_authority_subject_key_id":""}}}}"#
        )
    );
    let bundle = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    assert_eq!(bundle.matches("\"x5c\"").count(), 1, "{bundle}");

    // Without an upstream authority the upstream commands are refused by the server.
    assert_eq!(
        fails(
            &server,
            &["upstreamauthority", "taint", "-subjectKeyID", &first]
        ),
        "Error: could not taint X.509 upstream authority: rpc error: code = FailedPrecondition desc = upstream authority is not configured\n"
    );
    assert_eq!(
        fails(&server, &["upstreamauthority", "revoke"]),
        "Error: the Subject Key ID of the X.509 upstream authority is required\n"
    );
}

#[test]
fn jwt_cycle_with_spire_outputs() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let server = Server::start(dir.path());

    let show = ok(&server.cli(&["localauthority", "jwt", "show"]));
    assert!(
        show.starts_with("Active JWT authority:\n  Authority ID: "),
        "{show}"
    );
    assert!(
        show.ends_with("\n\nPrepared JWT authority:\n  No prepared JWT authority found\n\nOld JWT authority:\n  No old JWT authority found\n"),
        "{show}"
    );
    assert!(!show.contains("Upstream"), "{show}");
    let first = value(&show, "Authority ID:");
    assert_eq!(first.len(), 32);

    let prepared = ok(&server.cli(&["localauthority", "jwt", "prepare"]));
    assert!(
        prepared.starts_with("Prepared JWT authority:\n"),
        "{prepared}"
    );
    let next = value(&prepared, "Authority ID:");
    ok(&server.cli(&["localauthority", "jwt", "activate", "-authorityID", &next]));
    assert_eq!(
        fails(
            &server,
            &["localauthority", "jwt", "revoke", "-authorityID", &next]
        ),
        "Error: could not revoke JWT authority: rpc error: code = InvalidArgument desc = invalid authority ID: unable to use current authority\n"
    );
    let tainted = ok(&server.cli(&["localauthority", "jwt", "taint", "-authorityID", &first]));
    assert!(tainted.starts_with("Tainted JWT authority:\n"), "{tainted}");
    let bundle = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    assert_eq!(bundle.matches("\"jwt-svid\"").count(), 2, "{bundle}");
    let revoked = ok(&server.cli(&["localauthority", "jwt", "revoke", "-authorityID", &first]));
    assert!(revoked.starts_with("Revoked JWT authority:\n"), "{revoked}");
    let bundle = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    assert_eq!(bundle.matches("\"jwt-svid\"").count(), 1, "{bundle}");
    assert!(!bundle.contains(&first), "{bundle}");
}
