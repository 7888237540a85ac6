use spire_id::{SelectorSet, SpiffeId};
use spire_svid::KeyType;
use spire_svid::jwt::{JwtClaims, JwtSigner};

use super::*;

const ISSUED: i64 = 1_767_225_600;

fn entry(path: &str) -> Entry {
    Entry {
        id: "entry-1".into(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/x").unwrap(),
        selectors: SelectorSet::default(),
        federates_with: Vec::new(),
        dns_names: Vec::new(),
        hint: String::new(),
        revision_number: 1,
        created_at: ISSUED,
        x509_svid_ttl: 0,
        store_svid: false,
        admin: false,
        downstream: false,
    }
}

fn token(subject: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let signer = JwtSigner::from_pkcs8("kid-1", KeyType::EcP256, &key.serialize_der()).unwrap();
    signer
        .sign(&JwtClaims {
            subject: SpiffeId::parse(subject).unwrap(),
            audience: vec!["a".into()],
            expires_at: ISSUED + 300,
            issued_at: ISSUED,
            issuer: None,
        })
        .unwrap()
}

fn response(token: String, path: &str, issued_at: i64, expires_at: i64) -> Option<types::Jwtsvid> {
    Some(types::Jwtsvid {
        token,
        id: Some(types::Spiffeid {
            trust_domain: "example.org".into(),
            path: path.into(),
        }),
        expires_at,
        issued_at,
        hint: String::new(),
    })
}

#[test]
fn a_response_becomes_a_cacheable_svid() {
    let t = token("spiffe://example.org/w");
    let svid = jwt_svid(
        response(t.clone(), "/w", ISSUED, ISSUED + 300),
        &entry("/w"),
    )
    .unwrap();
    assert_eq!(svid.token, t);
    assert_eq!(svid.spiffe_id, entry("/w").spiffe_id);
    assert_eq!(svid.issued_at, spire_time::from_unix_seconds(ISSUED));
    assert_eq!(svid.expires_at, spire_time::from_unix_seconds(ISSUED + 300));

    // Times left out of the response come from the token.
    let svid = jwt_svid(response(t, "/w", 0, 0), &entry("/w")).unwrap();
    assert_eq!(svid.issued_at, spire_time::from_unix_seconds(ISSUED));
    assert_eq!(svid.expires_at, spire_time::from_unix_seconds(ISSUED + 300));
}

#[test]
fn a_response_for_another_identity_or_without_svid_is_refused() {
    let e = entry("/w");
    let other = token("spiffe://example.org/other");
    let error = jwt_svid(response(other, "/w", ISSUED, ISSUED + 300), &e).unwrap_err();
    assert!(
        error.contains("token for spiffe://example.org/other"),
        "{error}"
    );

    let t = token("spiffe://example.org/w");
    let error = jwt_svid(response(t, "/other", ISSUED, ISSUED + 300), &e).unwrap_err();
    assert!(
        error.contains("SVID for spiffe://example.org/other"),
        "{error}"
    );

    assert_eq!(jwt_svid(None, &e).unwrap_err(), "invalid response: no SVID");
    let error = jwt_svid(response("not.a.jwt".into(), "/w", 1, 2), &e).unwrap_err();
    assert!(error.starts_with("invalid response: token: "), "{error}");
}

#[test]
fn rpc_errors_read_as_grpc_go_prints_them() {
    assert_eq!(
        rpc_error(&Status::unavailable("connection refused")),
        "rpc error: code = Unavailable desc = connection refused"
    );
    assert_eq!(
        rpc_error(&Status::cancelled("gone")),
        "rpc error: code = Canceled desc = gone"
    );
    assert_eq!(
        rpc_error(&Status::permission_denied("no")),
        "rpc error: code = PermissionDenied desc = no"
    );
}
