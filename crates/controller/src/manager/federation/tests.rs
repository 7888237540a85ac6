use super::*;
use crate::crd::BundleEndpointProfile;
use crate::manager::testutil::{ctx, meta};

fn no_bundles(_: &TrustDomain, _: &str) -> Result<Bundle, String> {
    Err("no bundle expected".into())
}

fn fake_bundle(td: &TrustDomain, json: &str) -> Result<Bundle, String> {
    if json.starts_with('{') {
        Ok(Bundle {
            trust_domain: td.name().to_owned(),
            refresh_hint: 300,
            ..Bundle::default()
        })
    } else {
        Err("unable to decode bundle: expected value at line 1 column 1".into())
    }
}

fn spec(td: &str, url: &str, kind: &str, endpoint_id: &str) -> ClusterFederatedTrustDomainSpec {
    ClusterFederatedTrustDomainSpec {
        trust_domain: td.into(),
        bundle_endpoint_url: url.into(),
        bundle_endpoint_profile: BundleEndpointProfile {
            kind: kind.into(),
            endpoint_spiffe_id: endpoint_id.into(),
        },
        trust_domain_bundle: String::new(),
        class_name: String::new(),
    }
}

fn object(
    name: &str,
    created: i64,
    spec: ClusterFederatedTrustDomainSpec,
) -> ClusterFederatedTrustDomain {
    ClusterFederatedTrustDomain {
        metadata: meta(name, created),
        spec,
    }
}

fn config() -> DeclareConfig {
    let mut config = DeclareConfig::new(ctx());
    config.watch_classless = true;
    config
}

#[test]
fn profiles_become_relationships() {
    let web = parse_federated_trust_domain(
        &spec("other.org", "https://other.org/bundle", "https_web", ""),
        &no_bundles,
    )
    .expect("valid");
    assert_eq!(web.trust_domain, "other.org");
    assert_eq!(web.bundle_endpoint_url, "https://other.org/bundle");
    assert_eq!(
        web.bundle_endpoint_profile,
        Some(ApiProfile::HttpsWeb(HttpsWebProfile {}))
    );
    assert_eq!(web.trust_domain_bundle, None);

    let mut with_bundle = spec(
        "spiffe://other.org",
        "https://10.0.0.1:8443",
        "https_spiffe",
        "spiffe://other.org/spire/server",
    );
    with_bundle.trust_domain_bundle = "{\"keys\":[]}".into();
    let spiffe = parse_federated_trust_domain(&with_bundle, &fake_bundle).expect("valid");
    assert_eq!(spiffe.trust_domain, "other.org");
    assert_eq!(
        spiffe.bundle_endpoint_profile,
        Some(ApiProfile::HttpsSpiffe(HttpsspiffeProfile {
            endpoint_spiffe_id: "spiffe://other.org/spire/server".into()
        }))
    );
    assert_eq!(
        spiffe
            .trust_domain_bundle
            .map(|b| (b.trust_domain, b.refresh_hint)),
        Some(("other.org".into(), 300))
    );
}

#[test]
fn invalid_specs_are_rejected_with_upstream_messages() {
    let ok_url = "https://other.org/bundle";
    let mut bad_bundle = spec("other.org", ok_url, "https_web", "");
    bad_bundle.trust_domain_bundle = "nope".into();
    let cases = [
        (
            spec("Other.org", ok_url, "https_web", ""),
            "invalid trustDomain value: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
        ),
        (
            spec("other.org", "", "https_web", ""),
            "invalid bundleEndpointURL value: bundle endpoint URL is missing",
        ),
        (
            spec("other.org", "http://other.org", "https_web", ""),
            "invalid bundleEndpointURL value: scheme must be https",
        ),
        (
            spec("other.org", "other.org/bundle", "https_web", ""),
            "invalid bundleEndpointURL value: scheme must be https",
        ),
        (
            spec("other.org", "https:///bundle", "https_web", ""),
            "invalid bundleEndpointURL value: host must be specified",
        ),
        (
            spec("other.org", "https://user:pw@other.org", "https_web", ""),
            "invalid bundleEndpointURL value: cannot contain userinfo",
        ),
        (
            spec("other.org", "https://other.org:http", "https_web", ""),
            "invalid bundleEndpointURL value: parse \"https://other.org:http\": invalid port \":http\" after host",
        ),
        (
            spec("other.org", ok_url, "https_web", "spiffe://other.org/x"),
            "invalid bundle endpoint profile endpointSPIFFEID value: not applicable to the \"https_web\" profile",
        ),
        (
            spec("other.org", ok_url, "https_spiffe", ""),
            "invalid bundle endpoint profile endpointSPIFFEID value: cannot be empty",
        ),
        (
            spec("other.org", ok_url, "mtls", ""),
            "invalid bundle endpoint profile type value \"mtls\"",
        ),
        (
            bad_bundle,
            "invalid trustDomainBundle value: unable to decode bundle: expected value at line 1 column 1",
        ),
    ];
    for (spec, want) in cases {
        let err = parse_federated_trust_domain(&spec, &fake_bundle).expect_err("invalid");
        assert_eq!(err.to_string(), want);
    }
    assert!(validate_bundle_endpoint_url("HTTPS://other.org").is_ok());
    assert!(validate_bundle_endpoint_url("https://[::1]:8443/b").is_ok());
}

#[test]
fn the_oldest_object_wins_a_trust_domain() {
    let newer = object(
        "newer",
        20,
        spec("other.org", "https://new.other.org", "https_web", ""),
    );
    let older = object(
        "older",
        10,
        spec("other.org", "https://old.other.org", "https_web", ""),
    );
    let broken = object("broken", 5, spec("", "https://x", "https_web", ""));
    let mut foreign = object(
        "foreign",
        1,
        spec("third.org", "https://t", "https_web", ""),
    );
    foreign.spec.class_name = "someone-else".into();
    let declared = declare_federation(&config(), &[&newer, &older, &broken, &foreign], &no_bundles);
    assert_eq!(declared.relationships().len(), 1);
    let winner = declared.get("other.org").expect("declared");
    assert_eq!(winner.owner, "older");
    assert_eq!(
        winner.relationship.bundle_endpoint_url,
        "https://old.other.org"
    );
    let failed: Vec<(&str, &str)> = declared
        .failures
        .iter()
        .map(|f| (f.owner.name.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            (
                "broken",
                "invalid trustDomain value: trust domain is missing"
            ),
            (
                "newer",
                "trust domain \"other.org\" is already declared by ClusterFederatedTrustDomain \"older\""
            ),
        ]
    );
}

#[test]
fn plan_creates_updates_and_deletes_by_trust_domain() {
    let objects = [
        object("a", 1, spec("a.org", "https://a.org", "https_web", "")),
        object("b", 2, spec("b.org", "https://b.org", "https_web", "")),
        object(
            "c",
            3,
            spec(
                "c.org",
                "https://c.org",
                "https_spiffe",
                "spiffe://c.org/server",
            ),
        ),
    ];
    let refs: Vec<&ClusterFederatedTrustDomain> = objects.iter().collect();
    let declared = declare_federation(&config(), &refs, &no_bundles);
    let want = |td: &str| declared.get(td).expect("declared").relationship.clone();
    // b.org is current with another URL, c.org is current with a bundle (not compared), z.org
    // is not declared.
    let mut b = want("b.org");
    b.bundle_endpoint_url = "https://old.b.org".into();
    let mut c = want("c.org");
    c.trust_domain_bundle = Some(Bundle::default());
    let mut z = want("a.org");
    z.trust_domain = "z.org".into();
    let plan = plan_federation(&declared, &[z, c, b]);
    assert_eq!(plan.create, [want("a.org")]);
    assert_eq!(plan.update, [want("b.org")]);
    assert_eq!(plan.delete, ["z.org"]);

    let current: Vec<FederationRelationship> = ["a.org", "b.org", "c.org"]
        .iter()
        .map(|td| want(td))
        .collect();
    assert_eq!(
        plan_federation(&declared, &current),
        FederationPlan::default()
    );

    let mut profile_changed = current.clone();
    profile_changed[2].bundle_endpoint_profile = Some(ApiProfile::HttpsWeb(HttpsWebProfile {}));
    assert_eq!(
        plan_federation(&declared, &profile_changed).update,
        [want("c.org")]
    );
}
