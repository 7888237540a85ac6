use proptest::prelude::*;

use super::*;

const BAD_TD: &str = "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores";
const BAD_PATH: &str =
    "path segment characters are limited to letters, numbers, dots, dashes, and underscores";

#[test]
fn valid_ids_parse_and_format_back() {
    for id in [
        "spiffe://trustdomain",
        "spiffe://trustdomain/path",
        "spiffe://trustdomain/path/element",
        "spiffe://domain.test/a/b/c/d/e/f/g",
        "spiffe://trustdomain/.path",
        "spiffe://trustdomain/..path",
        "spiffe://trustdomain/...",
        "spiffe://trustdomain/foo.bar",
        "spiffe://trustdomain/foo-bar",
        "spiffe://trustdomain/foo_bar",
        "spiffe://1.2.3.4/service",
        "spiffe://a",
        "spiffe://a_b.example/foo",
        "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
        "spiffe://example..org/p",
        "spiffe://.example.org/p",
        "spiffe://example.org./p",
        "spiffe://-example.org/p",
        "spiffe://example-.org/p",
        "spiffe://example.org/MyService",
    ] {
        let parsed = SpiffeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.to_string(), id);
    }
}

#[test]
fn path_keeps_its_case() {
    let a = SpiffeId::parse("spiffe://example.org/MyService").unwrap();
    let b = SpiffeId::parse("spiffe://example.org/myservice").unwrap();
    assert_ne!(a, b);
    assert_eq!(a.path(), "/MyService");
}

#[test]
fn invalid_ids_give_spire_messages() {
    let cases: &[(&str, &str)] = &[
        ("", "cannot be empty"),
        ("s", "scheme is missing or invalid"),
        ("spiffe:/", "scheme is missing or invalid"),
        ("Spiffe://domain.test", "scheme is missing or invalid"),
        ("SPIFFE://domain.test", "scheme is missing or invalid"),
        (
            "http://domain.test/path/element",
            "scheme is missing or invalid",
        ),
        ("spiffe:path/element", "scheme is missing or invalid"),
        ("spiffe:/path/element", "scheme is missing or invalid"),
        ("192.168.2.2:6688", "scheme is missing or invalid"),
        ("other://whocares", "scheme is missing or invalid"),
        ("://domain.test", "scheme is missing or invalid"),
        ("spiffe://", "trust domain is missing"),
        ("spiffe:///", "trust domain is missing"),
        ("spiffe:///path", "trust domain is missing"),
        ("spiffe://trustdomain/", "path cannot have a trailing slash"),
        (
            "spiffe://trustdomain/path/",
            "path cannot have a trailing slash",
        ),
        (
            "spiffe://test.org/path/other/",
            "path cannot have a trailing slash",
        ),
        (
            "spiffe://trustdomain//",
            "path cannot contain empty segments",
        ),
        (
            "spiffe://trustdomain//path",
            "path cannot contain empty segments",
        ),
        (
            "spiffe://test.org/path//other",
            "path cannot contain empty segments",
        ),
        ("spiffe://trustdomain/.", "path cannot contain dot segments"),
        (
            "spiffe://trustdomain/./path",
            "path cannot contain dot segments",
        ),
        (
            "spiffe://trustdomain/path/./other",
            "path cannot contain dot segments",
        ),
        (
            "spiffe://trustdomain/path/..",
            "path cannot contain dot segments",
        ),
        (
            "spiffe://trustdomain/..",
            "path cannot contain dot segments",
        ),
        (
            "spiffe://trustdomain/../path",
            "path cannot contain dot segments",
        ),
        (
            "spiffe://trustdomain/path/../other",
            "path cannot contain dot segments",
        ),
        ("spiffe://%F0%9F%A4%AF/path", BAD_TD),
        ("spiffe://%62%61%64/path", BAD_TD),
        ("spiffe://example%2eorg/service", BAD_TD),
        ("spiffe://Example.org/service", BAD_TD),
        ("spiffe://UPPERCASE.org", BAD_TD),
        ("spiffe://domain.test:8080/path/element", BAD_TD),
        ("spiffe://1.2.3.4:8443/service", BAD_TD),
        ("spiffe://user:password@test.org/path/element", BAD_TD),
        ("spiffe://user@example.org/service", BAD_TD),
        ("spiffe://[::1]/service", BAD_TD),
        ("spiffe://[2001:db8::1]/service", BAD_TD),
        ("spiffe:// domain.test", BAD_TD),
        ("spiffe://trust$domain", BAD_TD),
        ("spiffe://example.org?query=123", BAD_TD),
        ("spiffe://trustdomain/%F0%9F%A4%AF", BAD_PATH),
        ("spiffe://trustdomain/%62%61%64", BAD_PATH),
        ("spiffe://trustdomain/foo%2Fbar", BAD_PATH),
        ("spiffe://trustdomain/%61pi", BAD_PATH),
        ("spiffe://domain.test/path/element?query=1", BAD_PATH),
        ("spiffe://example.org/service#frag", BAD_PATH),
        ("spiffe://trustdomain/path$", BAD_PATH),
        ("spiffe://trustdomain/foo;bar", BAD_PATH),
        ("spiffe://trustdomain/foo:bar", BAD_PATH),
        ("spiffe://trustdomain/foo@bar", BAD_PATH),
        ("spiffe://trustdomain/foo bar", BAD_PATH),
        ("spiffe://trustdomain/foo~bar", BAD_PATH),
    ];
    for (input, message) in cases {
        let err = SpiffeId::parse(input).expect_err(input);
        assert_eq!(err.to_string(), *message, "input {input:?}");
    }
}

#[test]
fn every_byte_in_trust_domain_and_path() {
    for b in 0u8..=255 {
        if b == b'/' {
            continue;
        }
        let mut td = b"spiffe://trustdomain".to_vec();
        td.push(b);
        let td_ok = matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_');
        match std::str::from_utf8(&td) {
            Ok(s) => assert_eq!(SpiffeId::parse(s).is_ok(), td_ok, "td byte {b:#x}"),
            Err(_) => assert!(!td_ok),
        }

        let mut path = b"spiffe://trustdomain/path".to_vec();
        path.push(b);
        let path_ok = td_ok || b.is_ascii_uppercase();
        if let Ok(s) = std::str::from_utf8(&path) {
            let got = SpiffeId::parse(s);
            assert_eq!(got.is_ok(), path_ok, "path byte {b:#x}");
            if !path_ok {
                assert_eq!(got.unwrap_err(), IdError::BadPathSegmentChar);
            }
        }
    }
}

#[test]
fn trust_domain_accepts_bare_names_and_ids() {
    assert_eq!(
        TrustDomain::parse("domain.test").unwrap().name(),
        "domain.test"
    );
    assert_eq!(
        TrustDomain::parse("spiffe://domain.test/path/element")
            .unwrap()
            .name(),
        "domain.test"
    );
    assert_eq!(
        TrustDomain::parse("").unwrap_err().to_string(),
        "trust domain is missing"
    );
    assert_eq!(
        TrustDomain::parse("Domain.test").unwrap_err().to_string(),
        BAD_TD
    );
    assert_eq!(
        TrustDomain::parse("spiffe://domain.test/path/")
            .unwrap_err()
            .to_string(),
        "path cannot have a trailing slash"
    );
    assert_eq!(
        TrustDomain::parse("example.org").unwrap().id_string(),
        "spiffe://example.org"
    );
}

#[test]
fn length_limits_apply_on_creation_only() {
    let long_td = "a".repeat(256);
    assert!(
        TrustDomain::parse(&long_td).is_ok(),
        "parsing others' names has no limit"
    );
    assert_eq!(
        TrustDomain::new(&long_td).unwrap_err(),
        IdError::TrustDomainTooLong
    );
    assert!(TrustDomain::new(&"a".repeat(255)).is_ok());

    let td = TrustDomain::new("example.org").unwrap();
    let prefix = "spiffe://example.org/".len();
    let exact = format!("/{}", "p".repeat(SpiffeId::MAX_LEN - prefix));
    let id = SpiffeId::from_path(td.clone(), &exact).unwrap();
    assert_eq!(id.to_string().len(), SpiffeId::MAX_LEN);

    let over = format!("{exact}q");
    assert_eq!(
        SpiffeId::from_path(td, &over).unwrap_err(),
        IdError::IdTooLong
    );
    let parsed = SpiffeId::parse(&format!("spiffe://example.org{over}")).unwrap();
    assert_eq!(parsed.check_creatable().unwrap_err(), IdError::IdTooLong);
}

#[test]
fn constructors_check_segments() {
    let td = TrustDomain::new("example.org").unwrap();
    assert_eq!(
        SpiffeId::from_segments(td.clone(), &["spire", "server"]).unwrap(),
        SpiffeId::server_id(&td)
    );
    let err = |segments: &[&str]| SpiffeId::from_segments(td.clone(), segments).unwrap_err();
    assert_eq!(err(&[""]), IdError::EmptySegment);
    assert_eq!(err(&["/"]), IdError::BadPathSegmentChar);
    assert_eq!(err(&["/foo"]), IdError::BadPathSegmentChar);
    assert_eq!(err(&["foo/bar"]).to_string(), BAD_PATH);
    assert_eq!(err(&["."]), IdError::DotSegment);
    assert_eq!(err(&[".."]), IdError::DotSegment);
    assert_eq!(
        SpiffeId::from_path(td.clone(), "foo").unwrap_err(),
        IdError::NoLeadingSlash
    );
    assert_eq!(
        SpiffeId::from_path(td, "/").unwrap_err(),
        IdError::TrailingSlash
    );
}

#[test]
fn selectors_split_at_the_first_colon() {
    let s = Selector::parse("k8s:ns:default").unwrap();
    assert_eq!((s.selector_type(), s.value()), ("k8s", "ns:default"));
    assert_eq!(s.to_string(), "k8s:ns:default");
    assert_eq!(
        Selector::parse(":x").unwrap_err().to_string(),
        "missing selector type"
    );
    assert_eq!(
        Selector::parse("unix:").unwrap_err().to_string(),
        "missing selector value"
    );
    assert_eq!(
        Selector::new("a:b", "c").unwrap_err().to_string(),
        "selector type contains ':'"
    );
    assert!(matches!(
        Selector::parse("nocolon"),
        Err(SelectorError::NoColon(_))
    ));
    assert_eq!(
        SelectorSet::non_empty([]).unwrap_err().to_string(),
        "selector list is empty"
    );
}

#[test]
fn selector_sets_are_canonical() {
    let a: SelectorSet = ["unix:uid:1000", "k8s:ns:default", "unix:uid:1000"]
        .iter()
        .map(|s| Selector::parse(s).unwrap())
        .collect();
    let b: SelectorSet = ["k8s:ns:default", "unix:uid:1000"]
        .iter()
        .map(|s| Selector::parse(s).unwrap())
        .collect();
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    let first = a.iter().next().unwrap().to_string();
    assert_eq!(first, "k8s:ns:default");
    let wider: SelectorSet = a
        .iter()
        .cloned()
        .chain([Selector::parse("k8s:sa:web").unwrap()])
        .collect();
    assert!(a.is_subset(&wider));
    assert!(!wider.is_subset(&a));
    let bad: Result<Selector, _> = serde_json::from_str(r#"{"type":"a:b","value":"c"}"#);
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("selector type contains ':'")
    );
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"[{"type":"k8s","value":"ns:default"},{"type":"unix","value":"uid:1000"}]"#
    );
}

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,12}".prop_filter("dot segment", |s| s != "." && s != "..")
}

proptest! {
    #[test]
    fn parse_format_parse_is_identity(
        td in "[a-z0-9._-]{1,40}",
        segments in proptest::collection::vec(segment(), 0..6),
    ) {
        let text = format!("spiffe://{td}{}", segments.iter().map(|s| format!("/{s}")).collect::<String>());
        let id = SpiffeId::parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text.clone());
        prop_assert_eq!(SpiffeId::parse(&id.to_string()).unwrap(), id.clone());
        prop_assert_eq!(TrustDomain::parse(&text).unwrap(), id.trust_domain().clone());
    }

    #[test]
    fn arbitrary_input_never_panics_and_round_trips_when_accepted(input in ".{0,80}") {
        if let Ok(id) = SpiffeId::parse(&input) {
            prop_assert_eq!(id.to_string(), input);
        }
    }
}
