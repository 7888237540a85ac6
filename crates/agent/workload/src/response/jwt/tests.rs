use rcgen::PublicKeyData as _;
use serde_json::json;
use spire_svid::JwtAuthority;

use super::*;

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn jwt_bundle(name: &str, kid: &str) -> Bundle {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut bundle = Bundle::new(td(name));
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: kid.to_owned(),
        public_key: key.subject_public_key_info(),
        expires_at: 0,
        tainted: false,
    });
    bundle
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn kind(s: &Struct, name: &str) -> Kind {
    s.fields[name].kind.clone().unwrap()
}

fn strings(list: &ListValue) -> Vec<&str> {
    list.values
        .iter()
        .map(|v| match &v.kind {
            Some(Kind::StringValue(s)) => s.as_str(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

#[test]
fn jwt_bundles_are_standard_jwks_and_federated_only_with_an_identity() {
    let own = jwt_bundle("example.org", "own-kid");
    let federated: BTreeMap<_, _> = [(td("other.org"), Arc::new(jwt_bundle("other.org", "o")))]
        .into_iter()
        .collect();

    let response = jwt_bundles_response(true, &own, &federated);
    let mut keys: Vec<&str> = response.bundles.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["spiffe://example.org", "spiffe://other.org"]);
    let jwks = &response.bundles["spiffe://example.org"];
    assert_eq!(jwks, own.to_jwks_json().as_bytes());
    let jwks: Value = serde_json::from_slice(jwks).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "own-kid");
    assert!(
        jwks["keys"][0].get("use").is_none(),
        "standard JWKS: no use"
    );

    let response = jwt_bundles_response(false, &own, &federated);
    assert_eq!(
        response.bundles.keys().collect::<Vec<_>>(),
        ["spiffe://example.org"]
    );
}

#[test]
fn a_single_audience_string_is_returned_as_a_list() {
    let claims =
        object(json!({"sub": "spiffe://example.org/w", "aud": "one", "exp": 1_767_225_900}));
    let s = returned_claims(claims, false, &BTreeSet::new());
    let Kind::ListValue(aud) = kind(&s, "aud") else {
        panic!("aud is not a list");
    };
    assert_eq!(strings(&aud), ["one"]);
    assert_eq!(kind(&s, "exp"), Kind::NumberValue(1_767_225_900.0));
    assert_eq!(
        kind(&s, "sub"),
        Kind::StringValue("spiffe://example.org/w".into())
    );
}

#[test]
fn foreign_subjects_keep_only_sub_aud_exp_and_allowed_claims() {
    let claims = || {
        object(json!({
            "sub": "spiffe://other.org/w",
            "aud": ["a", "b"],
            "exp": 1,
            "iat": 0,
            "iss": "https://issuer",
            "payments": {"limit": 5},
        }))
    };
    let none = returned_claims(claims(), true, &BTreeSet::new());
    assert_eq!(
        none.fields.keys().collect::<Vec<_>>(),
        ["aud", "exp", "sub"]
    );
    let allowed: BTreeSet<String> = ["iss".to_owned()].into();
    let some = returned_claims(claims(), true, &allowed);
    assert_eq!(
        some.fields.keys().collect::<Vec<_>>(),
        ["aud", "exp", "iss", "sub"]
    );
    // The own trust domain's tokens keep everything.
    let own = returned_claims(claims(), false, &BTreeSet::new());
    assert_eq!(own.fields.len(), 6);
    let Kind::StructValue(payments) = kind(&own, "payments") else {
        panic!("payments is not an object");
    };
    assert_eq!(kind(&payments, "limit"), Kind::NumberValue(5.0));
}

#[test]
fn json_values_map_onto_struct_values() {
    let s = to_struct(object(
        json!({"n": null, "b": true, "f": 1.5, "l": ["x", 2], "o": {}}),
    ));
    assert_eq!(kind(&s, "n"), Kind::NullValue(0));
    assert_eq!(kind(&s, "b"), Kind::BoolValue(true));
    assert_eq!(kind(&s, "f"), Kind::NumberValue(1.5));
    let Kind::ListValue(list) = kind(&s, "l") else {
        panic!("l is not a list");
    };
    assert_eq!(list.values.len(), 2);
    assert_eq!(kind(&s, "o"), Kind::StructValue(Struct::default()));
}
