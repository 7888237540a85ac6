//! The JWT half of the Workload API against a real agent cache, a fake JWT-SVID source (our
//! own minting trait) and tokens signed by keys the test holds: FetchJWTSVID, FetchJWTBundles
//! and ValidateJWTSVID with SPIRE's codes and messages, and the unmodified rust-spiffe client.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost_types::value::Kind;
use serde_json::{Value, json};
use spire_agent_cache::Cache;
use spire_agent_workload::EndpointConfig;
use spire_id::{Selector, TrustDomain};
use spire_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, JwtsvidRequest, ValidateJwtsvidRequest,
    ValidateJwtsvidResponse,
};
use spire_svid::Bundle;
use spire_time::{Clock as _, ManualClock, SharedClock, SystemClock};
use support::*;
use tonic::{Code, Status};

const OTHER_TD: &str = "other.org";

/// A cache whose own bundle carries `key` as its JWT authority.
fn jwt_cache(ca: &TestCa, key: &JwtKey) -> Cache {
    let cache = cache(ca);
    let mut bundle = ca.bundle();
    bundle.jwt_authorities.push(key.authority());
    cache.update_bundles(bundle, BTreeMap::new());
    cache
}

fn other_uid_selector() -> Selector {
    Selector::new("unix", "uid:4294967294").unwrap()
}

fn audience(list: &[&str]) -> Vec<String> {
    list.iter().map(|&a| a.to_owned()).collect()
}

fn fetch_request(aud: &[&str], spiffe_id: &str) -> tonic::Request<JwtsvidRequest> {
    with_header(JwtsvidRequest {
        audience: audience(aud),
        spiffe_id: spiffe_id.to_owned(),
    })
}

fn validate_request(aud: &str, svid: &str) -> tonic::Request<ValidateJwtsvidRequest> {
    with_header(ValidateJwtsvidRequest {
        audience: aud.to_owned(),
        svid: svid.to_owned(),
    })
}

fn assert_status(status: &Status, code: Code, message: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message);
}

/// The status FetchJWTSVID fails with.
async fn fetch_refused(raw: &mut WorkloadClient, aud: &[&str], spiffe_id: &str) -> Status {
    let request = fetch_request(aud, spiffe_id);
    raw.fetch_jwtsvid(request).await.unwrap_err()
}

/// ValidateJWTSVID refuses `token` for `aud` with InvalidArgument and `message`.
async fn assert_refused(raw: &mut WorkloadClient, aud: &str, token: &str, message: &str) {
    let request = validate_request(aud, token);
    let status = raw.validate_jwtsvid(request).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, message);
}

/// A test fixture: CA, JWT key, clock, cache, fake source and the served endpoint.
struct Setup {
    ca: TestCa,
    key: JwtKey,
    clock: ManualClock,
    cache: Cache,
    source: Arc<FakeSource>,
    served: Served,
}

impl Setup {
    /// The agent now holds other.org's bundle, with a new key returned for signing.
    fn hold_other_td(&self) -> JwtKey {
        let key = JwtKey::new("kid-other");
        let mut own = self.ca.bundle();
        own.jwt_authorities.push(self.key.authority());
        let mut other = Bundle::new(TrustDomain::new(OTHER_TD).unwrap());
        other.jwt_authorities.push(key.authority());
        let federated = [(other.trust_domain.clone(), other)].into();
        self.cache.update_bundles(own, federated);
        key
    }
}

fn setup(config: EndpointConfig) -> Setup {
    let ca = TestCa::new();
    let key = JwtKey::new("kid-own");
    let clock = ManualClock::at_fixed_instant();
    let shared: SharedClock = Arc::new(clock.clone());
    let cache = jwt_cache(&ca, &key);
    let source = FakeSource::new(&key, shared.clone());
    let served = serve_jwt(&cache, config, source.clone(), shared);
    Setup {
        ca,
        key,
        clock,
        cache,
        source,
        served,
    }
}

fn bundles_of(message: &JwtBundlesResponse) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = message
        .bundles
        .iter()
        .map(|(td, jwks)| {
            let jwks: Value = serde_json::from_slice(jwks).unwrap();
            let kids = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            (td.clone(), kids)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn fetch_jwt_svid_refusals_have_spire_codes_and_messages() {
    let s = setup(EndpointConfig::default());
    set_entries(
        &s.cache,
        &s.ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let mut raw = raw_client(&s.served).await;

    let status = raw
        .fetch_jwtsvid(JwtsvidRequest {
            audience: audience(&["a"]),
            spiffe_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        "security header missing from request",
    );

    let status = fetch_refused(&mut raw, &[], "").await;
    assert_status(&status, Code::InvalidArgument, "audience must be specified");
    let status = fetch_refused(&mut raw, &["a"], "example.org/workload-a").await;
    let invalid = "invalid requested SPIFFE ID: scheme is missing or invalid";
    assert_status(&status, Code::InvalidArgument, invalid);
    let status = fetch_refused(&mut raw, &["a"], "spiffe://example.org/someone-else").await;
    assert_status(&status, Code::PermissionDenied, "no identity issued");

    s.source.fail(Some("server unreachable"));
    let status = fetch_refused(&mut raw, &["a"], "").await;
    let unavailable = "could not fetch JWT-SVID: server unreachable";
    assert_status(&status, Code::Unavailable, unavailable);
}

#[tokio::test]
async fn a_caller_without_identity_gets_no_jwt_svid_and_no_bundles_unless_allowed() {
    for allow in [false, true] {
        let s = setup(EndpointConfig {
            allow_unauthenticated_verifiers: allow,
            ..EndpointConfig::default()
        });
        set_entries(
            &s.cache,
            &s.ca,
            vec![entry("other", "other", &[other_uid_selector()])],
        );
        let mut raw = raw_client(&s.served).await;
        let status = raw
            .fetch_jwtsvid(fetch_request(&["a"], ""))
            .await
            .unwrap_err();
        assert_status(&status, Code::PermissionDenied, "no identity issued");
        assert!(s.source.calls().is_empty());

        let result = raw
            .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
            .await;
        let first = match result {
            Ok(response) => response.into_inner().message().await,
            Err(status) => Err(status),
        };
        if allow {
            let first = first.unwrap().unwrap();
            assert_eq!(
                bundles_of(&first),
                [(
                    "spiffe://example.org".to_owned(),
                    vec!["kid-own".to_owned()]
                )]
            );
        } else {
            assert_status(
                &first.unwrap_err(),
                Code::PermissionDenied,
                "no identity issued",
            );
        }
    }
}

#[tokio::test]
async fn one_jwt_svid_per_identity_with_hints_even_without_an_x509_svid() {
    let s = setup(EndpointConfig::default());
    let mine = [my_uid_selector()];
    let mut older = entry("a", "hinted-old", &mine);
    older.hint = "db".into();
    older.created_at = 100;
    let mut newer = entry("b", "hinted-new", &mine);
    newer.hint = "db".into();
    newer.created_at = 200;
    let plain = entry("c", "plain", &mine);
    let pending = entry("d", "pending", &mine);
    set_entries(&s.cache, &s.ca, vec![older, newer, plain]);
    // `d` is authorized but has no X509-SVID yet: it still gets a JWT-SVID.
    let mut all = s
        .cache
        .entries()
        .iter()
        .map(|e| (**e).clone())
        .collect::<Vec<_>>();
    all.push(pending);
    s.cache.update_entries(all);
    let mut raw = raw_client(&s.served).await;

    let response = raw
        .fetch_jwtsvid(fetch_request(&["svc", "svc2"], ""))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(&str, &str)> = response
        .svids
        .iter()
        .map(|s| (s.spiffe_id.as_str(), s.hint.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("spiffe://example.org/hinted-old", "db"),
            ("spiffe://example.org/plain", ""),
            ("spiffe://example.org/pending", ""),
        ]
    );
    assert_eq!(
        s.source.calls(),
        [
            ("a".to_owned(), audience(&["svc", "svc2"])),
            ("c".to_owned(), audience(&["svc", "svc2"])),
            ("d".to_owned(), audience(&["svc", "svc2"])),
        ]
    );

    // The requested identity only; its token validates through the same agent.
    let response = raw
        .fetch_jwtsvid(fetch_request(&["svc"], "spiffe://example.org/plain"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.svids.len(), 1);
    assert_eq!(response.svids[0].spiffe_id, "spiffe://example.org/plain");
    let validated = raw
        .validate_jwtsvid(validate_request("svc", &response.svids[0].svid))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(validated.spiffe_id, "spiffe://example.org/plain");
}

fn claim<'a>(response: &'a ValidateJwtsvidResponse, name: &str) -> Option<&'a Kind> {
    response
        .claims
        .as_ref()
        .unwrap()
        .fields
        .get(name)?
        .kind
        .as_ref()
}

fn strings(kind: Option<&Kind>) -> Vec<String> {
    let Some(Kind::ListValue(list)) = kind else {
        panic!("not a list: {kind:?}");
    };
    list.values
        .iter()
        .map(|v| match &v.kind {
            Some(Kind::StringValue(s)) => s.clone(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn validate_returns_the_claims_with_aud_as_a_list_and_filters_foreign_ones() {
    let s = setup(EndpointConfig {
        allowed_foreign_jwt_claims: vec!["iss".into()],
        ..EndpointConfig::default()
    });
    let mut federating = entry("entry-a", "workload-a", &[my_uid_selector()]);
    federating.federates_with = vec![TrustDomain::new(OTHER_TD).unwrap()];
    set_entries(&s.cache, &s.ca, vec![federating]);
    let foreign_key = s.hold_other_td();
    let mut raw = raw_client(&s.served).await;
    let now = s.clock.unix_seconds();

    // Own trust domain: every claim, `aud` as a list even when sent as a string.
    let token = s.key.sign(&json!({
        "sub": "spiffe://example.org/workload-b",
        "aud": "svc",
        "exp": now + 60,
        "iat": now,
        "role": "reader",
    }));
    let response = raw
        .validate_jwtsvid(validate_request("svc", &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.spiffe_id, "spiffe://example.org/workload-b");
    assert_eq!(strings(claim(&response, "aud")), ["svc"]);
    assert_eq!(
        claim(&response, "role"),
        Some(&Kind::StringValue("reader".into()))
    );
    assert_eq!(
        claim(&response, "exp"),
        Some(&Kind::NumberValue((now + 60) as f64))
    );
    assert_eq!(response.claims.as_ref().unwrap().fields.len(), 5);

    // Foreign trust domain: sub, aud, exp and the allowed `iss` only.
    let token = foreign_key.sign(&json!({
        "sub": "spiffe://other.org/svc",
        "aud": ["svc", "more"],
        "exp": now + 60,
        "iat": now,
        "iss": "https://other.org",
        "payments": {"limit": 5},
    }));
    let response = raw
        .validate_jwtsvid(validate_request("svc", &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.spiffe_id, "spiffe://other.org/svc");
    let mut names: Vec<&str> = response
        .claims
        .as_ref()
        .unwrap()
        .fields
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["aud", "exp", "iss", "sub"]);
    assert_eq!(strings(claim(&response, "aud")), ["svc", "more"]);
}

#[tokio::test]
async fn validate_failures_have_spire_messages() {
    let s = setup(EndpointConfig::default());
    // The caller has an identity, but federates with nobody.
    set_entries(
        &s.cache,
        &s.ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let foreign_key = s.hold_other_td();
    let mut raw = raw_client(&s.served).await;
    let now = s.clock.unix_seconds();
    let claims = |exp: i64| json!({"sub": "spiffe://example.org/w", "aud": ["svc"], "exp": exp});

    let request = ValidateJwtsvidRequest {
        audience: "svc".into(),
        svid: "x".into(),
    };
    let status = raw.validate_jwtsvid(request).await.unwrap_err();
    let header = "security header missing from request";
    assert_status(&status, Code::InvalidArgument, header);
    assert_refused(&mut raw, "", "x.y.z", "audience must be specified").await;
    assert_refused(&mut raw, "svc", "", "svid must be specified").await;

    // 60 s of leeway on `exp`, then expired.
    let fresh = s.key.sign(&claims(now - 59));
    raw.validate_jwtsvid(validate_request("svc", &fresh))
        .await
        .unwrap();
    let expired = s.key.sign(&claims(now - 61));
    assert_refused(&mut raw, "svc", &expired, "token has expired").await;

    let token = s.key.sign(&claims(now + 60));
    let mismatch = r#"expected audience in ["other"] (audience=["svc"])"#;
    assert_refused(&mut raw, "other", &token, mismatch).await;

    let header = json!({"alg": "ES256", "kid": "nope", "typ": "JWT"});
    let unknown_kid = s.key.sign_raw(&header, &claims(now + 60));
    let not_found = r#"public key "nope" not found in trust domain "example.org""#;
    assert_refused(&mut raw, "svc", &unknown_kid, not_found).await;

    // A payload swapped under the original signature.
    let admin = json!({"sub": "spiffe://example.org/admin", "aud": ["svc"], "exp": now + 60});
    let other_payload = s.key.sign(&admin);
    let parts: Vec<&str> = token.split('.').collect();
    let forged: Vec<&str> = other_payload.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged[1], parts[2]);
    let crypto = "go-jose/go-jose: error in cryptographic primitive";
    assert_refused(&mut raw, "svc", &tampered, crypto).await;

    let header = json!({"alg": "HS256", "kid": "kid-own", "typ": "JWT"});
    let hs256 = s.key.sign_raw(&header, &claims(now + 60));
    let status = raw
        .validate_jwtsvid(validate_request("svc", &hs256))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let algorithm = r#"unexpected signature algorithm "HS256""#;
    assert!(status.message().contains(algorithm), "{status:?}");

    // The agent holds other.org's bundle, but this caller does not federate with it.
    let foreign = json!({"sub": "spiffe://other.org/svc", "aud": ["svc"], "exp": now + 60});
    let foreign = foreign_key.sign(&foreign);
    let no_keys = r#"no keys found for trust domain "other.org""#;
    assert_refused(&mut raw, "svc", &foreign, no_keys).await;
}

#[tokio::test]
async fn validation_needs_no_identity() {
    let s = setup(EndpointConfig::default());
    set_entries(
        &s.cache,
        &s.ca,
        vec![entry("other", "other", &[other_uid_selector()])],
    );
    let mut raw = raw_client(&s.served).await;
    let now = s.clock.unix_seconds();
    let token = s
        .key
        .sign(&json!({"sub": "spiffe://example.org/w", "aud": ["svc"], "exp": now + 60}));
    let response = raw
        .validate_jwtsvid(validate_request("svc", &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.spiffe_id, "spiffe://example.org/w");

    // Time moves on the injected clock: the same token expires once past the leeway.
    s.clock.advance(Duration::from_secs(121));
    let status = raw
        .validate_jwtsvid(validate_request("svc", &token))
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "token has expired");
}

#[tokio::test]
async fn jwt_bundle_stream_is_immediate_deduplicated_and_follows_changes() {
    let s = setup(EndpointConfig::default());
    let mine = [my_uid_selector()];
    set_entries(&s.cache, &s.ca, vec![entry("entry-a", "workload-a", &mine)]);
    let mut raw = raw_client(&s.served).await;
    let mut stream = raw
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        bundles_of(&first),
        [(
            "spiffe://example.org".to_owned(),
            vec!["kid-own".to_owned()]
        )]
    );

    // A new identity and an X.509-only bundle change leave the JWKS as it is: nothing is sent
    // for them, so the next message is the one for the new JWT key below.
    set_entries(
        &s.cache,
        &s.ca,
        vec![
            entry("entry-a", "workload-a", &mine),
            entry("entry-b", "workload-b", &mine),
        ],
    );
    let mut bundle = s.ca.bundle();
    bundle.jwt_authorities.push(s.key.authority());
    bundle.x509_authorities.push(spire_svid::X509Authority {
        asn1: TestCa::new().root_der,
        tainted: false,
    });
    s.cache.update_bundles(bundle.clone(), BTreeMap::new());
    let next_key = JwtKey::new("kid-next");
    bundle.jwt_authorities.push(next_key.authority());
    s.cache.update_bundles(bundle.clone(), BTreeMap::new());
    let next = stream.message().await.unwrap().unwrap();
    assert_eq!(
        bundles_of(&next),
        [(
            "spiffe://example.org".to_owned(),
            vec!["kid-own".to_owned(), "kid-next".to_owned()]
        )]
    );

    // Federating with other.org adds its JWKS for this caller.
    let other_key = JwtKey::new("kid-other");
    let mut other = Bundle::new(TrustDomain::new(OTHER_TD).unwrap());
    other.jwt_authorities.push(other_key.authority());
    s.cache
        .update_bundles(bundle, [(other.trust_domain.clone(), other)].into());
    let mut federating = entry("entry-a", "workload-a", &mine);
    federating.federates_with = vec![TrustDomain::new(OTHER_TD).unwrap()];
    set_entries(&s.cache, &s.ca, vec![federating]);
    let federated = stream.message().await.unwrap().unwrap();
    assert_eq!(
        bundles_of(&federated),
        [
            (
                "spiffe://example.org".to_owned(),
                vec!["kid-own".to_owned(), "kid-next".to_owned()]
            ),
            (
                "spiffe://other.org".to_owned(),
                vec!["kid-other".to_owned()]
            ),
        ]
    );
}

#[tokio::test]
async fn rust_spiffe_fetches_and_validates_jwt_svids() {
    let ca = TestCa::new();
    let key = JwtKey::new("kid-own");
    // rust-spiffe reads the real clock, so this agent does too.
    let clock: SharedClock = Arc::new(SystemClock);
    let cache = jwt_cache(&ca, &key);
    let source = FakeSource::new(&key, clock.clone());
    set_entries(
        &cache,
        &ca,
        vec![entry("entry-a", "workload-a", &[my_uid_selector()])],
    );
    let served = serve_jwt(&cache, EndpointConfig::default(), source, clock);
    let client = spiffe::WorkloadApiClient::connect_to(served.uri())
        .await
        .unwrap();

    let svid = client
        .fetch_jwt_svid(["svc-a", "svc-b"], None)
        .await
        .unwrap();
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://example.org/workload-a"
    );
    assert_eq!(svid.audience(), ["svc-a", "svc-b"]);
    assert_eq!(svid.key_id(), "kid-own");

    let bundles = client.fetch_jwt_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new(TRUST_DOMAIN).unwrap();
    let bundle = bundles.get(&td).expect("own trust domain JWT bundle");
    assert!(bundle.find_jwt_authority("kid-own").is_some());

    let validated = client
        .validate_jwt_token("svc-b", svid.token())
        .await
        .unwrap();
    assert_eq!(
        validated.spiffe_id().to_string(),
        "spiffe://example.org/workload-a"
    );
    assert!(
        client
            .validate_jwt_token("svc-c", svid.token())
            .await
            .is_err()
    );
}
