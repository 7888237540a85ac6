//! SPIRE's JWT-SVID vectors: every rule, with the message SPIRE gives.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rcgen::PublicKeyData as _;
use serde_json::json;
use spire_id::{SpiffeId, TrustDomain};

use super::*;
use crate::{Bundle, JwtAuthority, KeyType};

const NOW: i64 = 1_800_000_000;

struct Fixture {
    signer: JwtSigner,
    pkcs8: Vec<u8>,
    bundle: Bundle,
}

fn spki(pkcs8: &[u8]) -> Vec<u8> {
    rcgen::KeyPair::try_from(pkcs8)
        .expect("test key")
        .subject_public_key_info()
}

fn fixture_for(key_type: KeyType, kid: &str) -> Fixture {
    let pair = match key_type {
        KeyType::EcP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        _ => rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048),
    }
    .expect("keygen");
    let pkcs8 = pair.serialize_der();
    let signer = JwtSigner::from_pkcs8(kid, key_type, &pkcs8).expect("signer");
    let mut bundle = Bundle::new(td("example.org"));
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: kid.to_owned(),
        public_key: spki(&pkcs8),
        expires_at: 0,
        tainted: false,
    });
    Fixture {
        signer,
        pkcs8,
        bundle,
    }
}

fn fixture() -> Fixture {
    fixture_for(KeyType::EcP256, "kid-1")
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).expect("trust domain")
}

fn claims(audience: &[&str], expires_at: i64) -> JwtClaims {
    JwtClaims {
        subject: SpiffeId::parse("spiffe://example.org/blog").expect("id"),
        audience: audience.iter().map(|s| s.to_string()).collect(),
        expires_at,
        issued_at: NOW,
        issuer: None,
    }
}

fn aud(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// Signs arbitrary header and payload JSON with the fixture's P-256 key.
fn forge(f: &Fixture, header: serde_json::Value, payload: serde_json::Value) -> String {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &f.pkcs8).expect("key");
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes())
    );
    let sig = pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign");
    format!("{input}.{}", b64url(sig.as_ref()))
}

fn validate(f: &Fixture, token: &str, audience: &[&str]) -> Result<ValidatedJwtSvid, JwtError> {
    let bundle = f.bundle.clone();
    validate_jwt_svid(token, &aud(audience), NOW, move |t: &TrustDomain| {
        (t == &bundle.trust_domain).then_some(bundle)
    })
}

fn message(f: &Fixture, token: &str, audience: &[&str]) -> String {
    validate(f, token, audience)
        .expect_err("the token must be refused")
        .to_string()
}

fn good_payload() -> serde_json::Value {
    json!({"sub": "spiffe://example.org/blog", "aud": ["AUDIENCE"], "exp": NOW + 300, "iat": NOW})
}

#[test]
fn minted_tokens_have_spires_header_and_claims_and_validate() {
    for (key_type, alg) in [
        (KeyType::EcP256, "ES256"),
        (KeyType::EcP384, "ES384"),
        (KeyType::Rsa2048, "RS256"),
    ] {
        let f = fixture_for(key_type, "kid-1");
        let mut c = claims(&["AUDIENCE", "OTHER"], NOW + 300);
        c.issuer = Some("https://issuer.example".into());
        let token = f.signer.sign(&c).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| -> serde_json::Value {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .expect("b64url");
            serde_json::from_slice(&bytes).expect("json")
        };
        assert_eq!(
            decode(parts[0]),
            json!({"alg": alg, "kid": "kid-1", "typ": "JWT"})
        );
        assert_eq!(
            decode(parts[1]),
            json!({"aud": ["AUDIENCE", "OTHER"], "exp": NOW + 300, "iat": NOW,
                   "iss": "https://issuer.example", "sub": "spiffe://example.org/blog"})
        );
        let valid = validate(&f, &token, &["OTHER"]).expect("valid");
        assert_eq!(valid.spiffe_id.to_string(), "spiffe://example.org/blog");
        assert_eq!(valid.claims["iss"], json!("https://issuer.example"));
        let unverified = parse_jwt_svid_unverified(&token).expect("parse");
        assert_eq!(unverified.expires_at, NOW + 300);
        assert_eq!(unverified.audience, aud(&["AUDIENCE", "OTHER"]));
    }
}

#[test]
fn spire_rejection_messages() {
    let f = fixture();
    let es = json!({"alg": "ES256", "kid": "kid-1", "typ": "JWT"});
    let cases: Vec<(&str, String, &[&str], String)> = vec![
        (
            "garbage",
            "invalid token".into(),
            &["AUDIENCE"],
            "unable to parse JWT token: go-jose/go-jose: compact JWS format must have three parts"
                .into(),
        ),
        (
            "HS256",
            forge(&f, json!({"alg": "HS256", "kid": "kid-1"}), good_payload()),
            &["AUDIENCE"],
            r#"unable to parse JWT token: unexpected signature algorithm "HS256"; expected ["ES256" "ES384" "ES512" "RS256" "RS384" "RS512" "PS256" "PS384" "PS512"]"#.into(),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","kid":"kid-1"}"#),
                b64url(good_payload().to_string().as_bytes())
            ),
            &["AUDIENCE"],
            r#"unable to parse JWT token: unexpected signature algorithm "none"; expected ["ES256" "ES384" "ES512" "RS256" "RS384" "RS512" "PS256" "PS384" "PS512"]"#.into(),
        ),
        (
            "no kid",
            forge(&f, json!({"alg": "ES256"}), good_payload()),
            &["AUDIENCE"],
            "token header missing key id".into(),
        ),
        (
            "typ OTHER",
            forge(&f, json!({"alg": "ES256", "kid": "kid-1", "typ": "OTHER"}), good_payload()),
            &["AUDIENCE"],
            "token header type not equal to either JWT or JOSE".into(),
        ),
        (
            "no sub",
            forge(&f, es.clone(), json!({"aud": ["audience"], "exp": NOW + 300})),
            &["FOO"],
            "token missing subject claim".into(),
        ),
        (
            "no exp",
            forge(&f, es.clone(), json!({"sub": "spiffe://example.org/blog", "aud": ["AUDIENCE"]})),
            &["AUDIENCE"],
            "token missing exp claim".into(),
        ),
        (
            "bad sub",
            forge(&f, es.clone(), json!({"sub": "other://example.org/blog", "aud": ["AUDIENCE"], "exp": NOW + 300})),
            &["AUDIENCE"],
            "token has in invalid subject claim: scheme is missing or invalid".into(),
        ),
        (
            "foreign trust domain",
            forge(&f, es.clone(), json!({"sub": "spiffe://other.org/foo", "aud": ["audience"], "exp": NOW + 300})),
            &["FOO"],
            r#"no keys found for trust domain "other.org""#.into(),
        ),
        (
            "unknown kid",
            forge(&f, json!({"alg": "ES256", "kid": "whatever"}), good_payload()),
            &["AUDIENCE"],
            r#"public key "whatever" not found in trust domain "example.org""#.into(),
        ),
        (
            "no aud",
            forge(&f, es.clone(), json!({"sub": "spiffe://example.org/blog", "exp": NOW + 300})),
            &["FOO"],
            r#"expected audience in ["FOO"] (audience=[])"#.into(),
        ),
        (
            "audience mismatch",
            forge(&f, es.clone(), good_payload()),
            &["FOO"],
            r#"expected audience in ["FOO"] (audience=["AUDIENCE"])"#.into(),
        ),
        (
            "audience list mismatch",
            forge(&f, es.clone(), json!({"sub": "spiffe://example.org/blog", "aud": ["AUDIENCE1", "AUDIENCE2"], "exp": NOW + 300})),
            &["AUDIENCE3"],
            r#"expected audience in ["AUDIENCE3"] (audience=["AUDIENCE1" "AUDIENCE2"])"#.into(),
        ),
        (
            "expired beyond leeway",
            forge(&f, es.clone(), json!({"sub": "spiffe://example.org/blog", "aud": "AUDIENCE", "exp": NOW - 61})),
            &["AUDIENCE"],
            "token has expired".into(),
        ),
        (
            "not valid yet",
            forge(&f, es.clone(), json!({"sub": "spiffe://example.org/blog", "aud": "AUDIENCE", "exp": NOW + 900, "nbf": NOW + 120})),
            &["AUDIENCE"],
            "go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)".into(),
        ),
        (
            "JSON serialization (two signatures)",
            json!({"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}, {"protected": "e30", "signature": "AA"}]}).to_string(),
            &["AUDIENCE"],
            "unable to parse JWT token: go-jose/go-jose: compact JWS format must have three parts".into(),
        ),
    ];
    for (name, token, audience, want) in cases {
        assert_eq!(message(&f, &token, audience), want, "case {name}");
    }
}

#[test]
fn leeway_typ_and_single_string_audience_are_accepted() {
    let f = fixture();
    for typ in [Some("JWT"), Some("JOSE"), None] {
        let mut header = json!({"alg": "ES256", "kid": "kid-1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let token = forge(
            &f,
            header,
            json!({"sub": "spiffe://example.org/blog", "aud": "AUDIENCE", "exp": NOW - 59}),
        );
        let valid = validate(&f, &token, &["AUDIENCE"]).expect("within leeway");
        assert_eq!(valid.claims["aud"], json!("AUDIENCE"));
    }
}

#[test]
fn tampering_breaks_the_signature() {
    let f = fixture();
    let token = f
        .signer
        .sign(&claims(&["AUDIENCE"], NOW + 300))
        .expect("sign");
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = b64url(
        json!({"aud": ["AUDIENCE"], "exp": NOW + 300, "iat": NOW, "sub": "spiffe://example.org/admin"})
            .to_string()
            .as_bytes(),
    );
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        message(&f, &tampered, &["AUDIENCE"]),
        "go-jose/go-jose: error in cryptographic primitive"
    );
    // A valid signature by another key under the same kid fails the same way.
    let other = fixture();
    let impostor = other
        .signer
        .sign(&claims(&["AUDIENCE"], NOW + 300))
        .expect("sign");
    assert_eq!(
        message(&f, &impostor, &["AUDIENCE"]),
        "go-jose/go-jose: error in cryptographic primitive"
    );
}

#[test]
fn an_rsa_key_cannot_verify_an_ecdsa_algorithm() {
    let ec = fixture();
    let rsa = fixture_for(KeyType::Rsa2048, "kid-1");
    let token = ec.signer.sign(&claims(&["A"], NOW + 300)).expect("sign");
    assert_eq!(
        message(&rsa, &token, &["A"]),
        "go-jose/go-jose: error in cryptographic primitive"
    );
}

#[test]
fn jwks_is_standard() {
    let f = fixture();
    let jwks: serde_json::Value = serde_json::from_str(&f.bundle.to_jwks_json()).expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], json!("kid-1"));
    assert_eq!(keys[0]["kty"], json!("EC"));
    assert!(keys[0].get("use").is_none());
    assert!(jwks.get("spiffe_sequence").is_none());
}
