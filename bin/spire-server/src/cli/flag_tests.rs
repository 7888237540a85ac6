//! Flag parsing of the client commands through the Go-style argv normaliser: every flag name,
//! Go bool forms, repeatable flags, last-wins for repeated scalars, `-flag=value`.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;

use clap::Parser as _;

use super::bundle::BundleCommand;
use super::common::{DEFAULT_SOCKET_PATH, OutputFormat};
use super::entry::EntryCommand;
use super::{Cli, Command};

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("spire-server")
        .chain(args.iter().copied())
        .map(OsString::from);
    Cli::try_parse_from(spire_cli::normalize(argv)).map(|cli| cli.command)
}

fn entry(args: &[&str]) -> EntryCommand {
    match parse(args).unwrap() {
        Command::Entry(c) => c,
        other => panic!("not an entry command: {other:?}"),
    }
}

#[test]
fn entry_create_every_flag() {
    let EntryCommand::Create(a) = entry(&[
        "entry",
        "create",
        "-socketPath",
        "/s.sock",
        "-instance",
        "i1",
        "-output",
        "json",
        "-entryID",
        "id1",
        "-parentID",
        "spiffe://td/p",
        "-spiffeID",
        "spiffe://td/w",
        "-x509SVIDTTL",
        "60",
        "-jwtSVIDTTL=30",
        "-data",
        "f.json",
        "-selector",
        "k8s:ns:a",
        "-selector",
        "k8s:sa:b",
        "-federatesWith",
        "spiffe://o1",
        "-federatesWith",
        "o2",
        "-node",
        "-admin",
        "-storeSVID",
        "-downstream",
        "-entryExpiry",
        "1700000000",
        "-dns",
        "z.example",
        "-dns",
        "a.example",
        "-hint",
        "h",
        "-disableX509SVIDPrefetch",
        "-jwtSVIDIncludeJTI",
    ]) else {
        panic!("not create")
    };
    assert_eq!(a.socket.socket_path, "/s.sock");
    assert_eq!(a.socket.instance, "i1");
    assert_eq!(a.output.output, OutputFormat::Json);
    assert_eq!(a.entry_id, "id1");
    assert_eq!(a.fields.parent_id, "spiffe://td/p");
    assert_eq!(a.fields.spiffe_id, "spiffe://td/w");
    assert_eq!((a.fields.x509_svid_ttl, a.fields.jwt_svid_ttl), (60, 30));
    assert_eq!(a.fields.data, "f.json");
    assert_eq!(a.fields.selectors, ["k8s:ns:a", "k8s:sa:b"]);
    assert_eq!(a.fields.federates_with, ["spiffe://o1", "o2"]);
    assert!(a.node && a.fields.admin && a.fields.store_svid && a.fields.downstream);
    assert_eq!(a.fields.entry_expiry, 1_700_000_000);
    assert_eq!(
        a.fields.dns_names,
        ["z.example", "a.example"],
        "DNS names keep their order"
    );
    assert_eq!(a.fields.hint, "h");
    assert!(a.disable_x509_svid_prefetch && a.jwt_svid_include_jti);
}

#[test]
fn defaults() {
    let EntryCommand::Create(a) = entry(&["entry", "create"]) else {
        panic!("not create")
    };
    assert_eq!(a.socket.socket_path, DEFAULT_SOCKET_PATH);
    assert_eq!(a.socket.instance, "");
    assert_eq!(a.output.output, OutputFormat::Pretty);
    assert!(!a.node && !a.fields.admin && a.fields.selectors.is_empty());
    assert_eq!(
        (
            a.fields.x509_svid_ttl,
            a.fields.jwt_svid_ttl,
            a.fields.entry_expiry
        ),
        (0, 0, 0)
    );
}

#[test]
fn go_bool_forms() {
    for (form, expected) in [
        ("-node", true),
        ("--node", true),
        ("-node=true", true),
        ("-node=1", true),
        ("-node=T", true),
        ("-node=false", false),
        ("-node=0", false),
        ("-node=False", false),
    ] {
        let EntryCommand::Create(a) = entry(&["entry", "create", form]) else {
            panic!("not create")
        };
        assert_eq!(a.node, expected, "{form}");
    }
    // A bare Go bool never takes the next argument as its value.
    assert!(parse(&["entry", "create", "-node", "true"]).is_err());
    assert!(parse(&["entry", "create", "-node=maybe"]).is_err());
}

#[test]
fn repeated_scalars_last_wins_and_negative_numbers() {
    let EntryCommand::Create(a) = entry(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://td/a",
        "-spiffeID",
        "spiffe://td/b",
        "-x509SVIDTTL",
        "-5",
        "-node",
        "-node=false",
    ]) else {
        panic!("not create")
    };
    assert_eq!(a.fields.spiffe_id, "spiffe://td/b");
    assert_eq!(a.fields.x509_svid_ttl, -5);
    assert!(!a.node);
}

#[test]
fn entry_update_show_count_delete_flags() {
    let EntryCommand::Update(u) = entry(&[
        "entry",
        "update",
        "-entryID",
        "e",
        "-parentID",
        "spiffe://td/p",
        "-spiffeID",
        "spiffe://td/w",
        "-x509SVIDTTL",
        "1",
        "-jwtSVIDTTL",
        "2",
        "-data",
        "d",
        "-selector",
        "a:b",
        "-federatesWith",
        "o",
        "-admin=true",
        "-storeSVID",
        "-downstream",
        "-entryExpiry",
        "3",
        "-dns",
        "x",
        "-hint",
        "h",
    ]) else {
        panic!("not update")
    };
    assert_eq!(
        (
            u.entry_id.as_str(),
            u.fields.x509_svid_ttl,
            u.fields.jwt_svid_ttl
        ),
        ("e", 1, 2)
    );
    assert!(u.fields.admin && u.fields.store_svid && u.fields.downstream);
    assert_eq!((u.fields.entry_expiry, u.fields.hint.as_str()), (3, "h"));
    // -node is not an update flag.
    assert!(parse(&["entry", "update", "-node"]).is_err());

    let EntryCommand::Show(s) = entry(&[
        "entry",
        "show",
        "-entryID",
        "e",
        "-parentID",
        "spiffe://td/p",
        "-spiffeID",
        "spiffe://td/w",
        "-downstream",
        "-selector",
        "a:b",
        "-selector",
        "c:d",
        "-federatesWith",
        "o",
        "-matchSelectorsOn",
        "exact",
        "-matchFederatesWithOn",
        "any",
        "-hint",
        "h",
        "-output",
        "json",
    ]) else {
        panic!("not show")
    };
    assert_eq!(s.entry_id, "e");
    assert_eq!(s.filter.selectors, ["a:b", "c:d"]);
    assert!(s.filter.downstream);
    assert_eq!(s.filter.match_selectors_on, "exact");
    assert_eq!(s.filter.match_federates_with_on, "any");
    assert_eq!(s.output.output, OutputFormat::Json);

    let EntryCommand::Count(c) = entry(&["entry", "count", "-selector", "a:b"]) else {
        panic!("not count")
    };
    assert_eq!(c.filter.match_selectors_on, "superset");
    assert!(parse(&["entry", "count", "-entryID", "e"]).is_err());

    let EntryCommand::Delete(d) = entry(&["entry", "delete", "-entryID", "e", "-file", "-"]) else {
        panic!("not delete")
    };
    assert_eq!((d.entry_id.as_str(), d.file.as_str()), ("e", "-"));
}

#[test]
fn other_commands() {
    match parse(&[
        "healthcheck",
        "-shallow",
        "-verbose=false",
        "-socketPath",
        "/h",
    ])
    .unwrap()
    {
        Command::Healthcheck(h) => {
            assert!(h.shallow && !h.verbose);
            assert_eq!(h.socket.socket_path, "/h");
        }
        other => panic!("{other:?}"),
    }
    match parse(&[
        "bundle",
        "set",
        "-id",
        "spiffe://o",
        "-path",
        "b.pem",
        "-format",
        "spiffe",
    ])
    .unwrap()
    {
        Command::Bundle(BundleCommand::Set(s)) => {
            assert_eq!(
                (s.id.as_str(), s.path.as_str(), s.format.as_str()),
                ("spiffe://o", "b.pem", "spiffe")
            );
        }
        other => panic!("{other:?}"),
    }
    match parse(&["bundle", "delete", "-id", "o", "-mode", "dissociate"]).unwrap() {
        Command::Bundle(BundleCommand::Delete(d)) => assert_eq!(d.mode, "dissociate"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["bundle", "list", "-id", "o", "-format", "pem"]).unwrap(),
        Command::Bundle(BundleCommand::List(_))
    ));
    assert!(matches!(
        parse(&["bundle", "show", "-format", "spiffe", "-output", "json"]).unwrap(),
        Command::Bundle(BundleCommand::Show(_))
    ));
    assert!(matches!(
        parse(&["bundle", "count"]).unwrap(),
        Command::Bundle(BundleCommand::Count(_))
    ));
    match parse(&[
        "token",
        "generate",
        "-spiffeID",
        "spiffe://td/a",
        "-ttl",
        "60",
    ])
    .unwrap()
    {
        Command::Token(super::token::TokenCommand::Generate(g)) => {
            assert_eq!((g.spiffe_id.as_str(), g.ttl), ("spiffe://td/a", 60));
        }
        other => panic!("{other:?}"),
    }
    match parse(&["token", "generate"]).unwrap() {
        Command::Token(super::token::TokenCommand::Generate(g)) => assert_eq!(g.ttl, 600),
        other => panic!("{other:?}"),
    }
    match parse(&[
        "x509",
        "mint",
        "-spiffeID",
        "spiffe://td/a",
        "-ttl",
        "1h30m",
        "-dns",
        "a",
        "-dns",
        "b",
        "-write",
        "/tmp/out",
    ])
    .unwrap()
    {
        Command::X509(super::x509::X509Command::Mint(m)) => {
            assert_eq!(m.ttl, 5_400_000_000_000);
            assert_eq!(m.dns_names, ["a", "b"]);
            assert_eq!(m.write, "/tmp/out");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        parse(&["x509", "mint", "-ttl", "5"]).is_err(),
        "Go durations need a unit"
    );
    for verb in ["list", "count"] {
        assert!(
            parse(&[
                "agent",
                verb,
                "-selector",
                "a:b",
                "-attestationType",
                "join_token",
                "-canReattest",
                "true",
                "-banned",
                "false",
                "-expiresBefore",
                "2030-01-01",
                "-matchSelectorsOn",
                "any",
            ])
            .is_ok()
        );
    }
    for verb in ["show", "evict", "ban"] {
        assert!(parse(&["agent", verb, "-spiffeID", "spiffe://td/spire/agent/x"]).is_ok());
    }
    assert!(parse(&["entry", "show", "-output", "yaml"]).is_err());
}

#[test]
fn localauthority_and_upstreamauthority_flags() {
    use super::localauthority::{LocalAuthorityCommand, UpstreamAuthorityCommand, Verb};
    match parse(&[
        "localauthority",
        "x509",
        "taint",
        "-authorityID",
        "abc",
        "-socketPath",
        "/s",
        "-output",
        "json",
    ])
    .unwrap()
    {
        Command::LocalAuthority(LocalAuthorityCommand::X509(Verb::Taint(a))) => {
            assert_eq!(a.authority_id, "abc");
            assert_eq!(a.socket.socket_path, "/s");
            assert_eq!(a.output.output, OutputFormat::Json);
        }
        other => panic!("{other:?}"),
    }
    for verb in ["activate", "revoke"] {
        assert!(matches!(
            parse(&["localauthority", "jwt", verb, "-authorityID=k"]).unwrap(),
            Command::LocalAuthority(LocalAuthorityCommand::Jwt(
                Verb::Activate(_) | Verb::Revoke(_)
            ))
        ));
    }
    match parse(&["localauthority", "jwt", "show"]).unwrap() {
        Command::LocalAuthority(LocalAuthorityCommand::Jwt(Verb::Show(a))) => {
            assert_eq!(a.socket.socket_path, DEFAULT_SOCKET_PATH);
            assert_eq!(a.output.output, OutputFormat::Pretty);
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(&["localauthority", "x509", "prepare", "-authorityID", "x"]).is_err());
    match parse(&["upstreamauthority", "revoke", "-subjectKeyID", "AB"]).unwrap() {
        Command::UpstreamAuthority(UpstreamAuthorityCommand::Revoke(a)) => {
            assert_eq!(a.subject_key_id, "AB");
        }
        other => panic!("{other:?}"),
    }
}
