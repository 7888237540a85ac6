use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::PublicKeyData;
use serde_json::{Value, json};
use spire_id::TrustDomain;
use x509_parser::prelude::FromDer;

use crate::test_util::{ED25519, P256, P384, RSA, key, self_signed_ca, spire_testdata_certs};
use crate::{
    Bundle, BundleError, JwtAuthority, PublicKeyError, X509Authority, parse_x509_authorities_pem,
};

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn jwt_authority(kid: &str, spki: Vec<u8>) -> JwtAuthority {
    JwtAuthority {
        key_id: kid.to_owned(),
        public_key: spki,
        expires_at: 0,
        tainted: false,
    }
}

fn x509_authority(der: Vec<u8>) -> X509Authority {
    X509Authority {
        asn1: der,
        tainted: false,
    }
}

fn parse(json: &Value) -> Result<Bundle, BundleError> {
    Bundle::from_spiffe_json(td(), json.to_string().as_bytes())
}

/// A one-certificate x509-svid JWK as SPIRE writes it.
fn x509_jwk(der: &[u8]) -> Value {
    let bundle = Bundle {
        x509_authorities: vec![x509_authority(der.to_vec())],
        ..Bundle::new(td())
    };
    let doc: Value = serde_json::from_str(&bundle.to_spiffe_json()).unwrap();
    doc["keys"][0].clone()
}

fn mixed_bundle() -> Bundle {
    let mut bundle = Bundle::new(td());
    for alg in [&P256, &P384, &RSA] {
        bundle
            .x509_authorities
            .push(x509_authority(self_signed_ca(alg, "example.org").der));
    }
    for (kid, alg) in [
        ("ec256", &P256),
        ("ec384", &P384),
        ("rsa", &RSA),
        ("ed", &ED25519),
    ] {
        bundle
            .jwt_authorities
            .push(jwt_authority(kid, key(alg).subject_public_key_info()));
    }
    bundle.sequence_number = 42;
    bundle.refresh_hint = 300;
    bundle
}

#[test]
fn empty_bundle_is_an_empty_key_list() {
    assert_eq!(Bundle::new(td()).to_spiffe_json(), "{\n    \"keys\": []\n}");
}

#[test]
fn document_is_formatted_as_spire_formats_it() {
    let ca = self_signed_ca(&P256, "example.org");
    let jwt_key = key(&P256);
    let bundle = Bundle {
        x509_authorities: vec![x509_authority(ca.der.clone())],
        jwt_authorities: vec![jwt_authority("kid-1", jwt_key.subject_public_key_info())],
        sequence_number: 7,
        refresh_hint: 300,
        ..Bundle::new(td())
    };
    let xy = |raw: &[u8]| {
        (
            URL_SAFE_NO_PAD.encode(&raw[1..33]),
            URL_SAFE_NO_PAD.encode(&raw[33..]),
        )
    };
    let (cx, cy) = xy(ca.key.public_key_raw());
    let (jx, jy) = xy(jwt_key.public_key_raw());
    let want = format!(
        r#"{{
    "keys": [
        {{
            "use": "x509-svid",
            "kty": "EC",
            "crv": "P-256",
            "x": "{cx}",
            "y": "{cy}",
            "x5c": [
                "{}"
            ]
        }},
        {{
            "use": "jwt-svid",
            "kty": "EC",
            "kid": "kid-1",
            "crv": "P-256",
            "x": "{jx}",
            "y": "{jy}"
        }}
    ],
    "spiffe_sequence": 7,
    "spiffe_refresh_hint": 300
}}"#,
        STANDARD.encode(&ca.der)
    );
    assert_eq!(bundle.to_spiffe_json(), want);
}

#[test]
fn rsa_keys_are_written_with_n_and_e() {
    let bundle = Bundle {
        jwt_authorities: vec![jwt_authority("r", key(&RSA).subject_public_key_info())],
        ..Bundle::new(td())
    };
    let doc: Value = serde_json::from_str(&bundle.to_spiffe_json()).unwrap();
    let jwk = &doc["keys"][0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["e"], "AQAB");
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    assert_eq!(jwk["n"].as_str().map(str::len), Some(342));
    assert!(jwk.get("crv").is_none());
}

#[test]
fn bundle_with_both_kinds_of_keys_round_trips() {
    let bundle = mixed_bundle();
    let json = bundle.to_spiffe_json();
    let parsed = Bundle::from_spiffe_json(td(), json.as_bytes()).unwrap();
    assert_eq!(parsed, bundle);
    assert_eq!(parsed.to_spiffe_json(), json);
}

#[test]
fn spire_testdata_certificates_round_trip() {
    let Some(files) = spire_testdata_certs() else {
        return;
    };
    for (name, pem) in files {
        let bundle = Bundle::from_x509_authorities_pem(td(), &pem).unwrap();
        assert_eq!(bundle.x509_authorities.len(), 1, "{name}");
        let json = bundle.to_spiffe_json();
        let doc: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["keys"][0]["crv"], "P-384", "{name}");
        assert_eq!(
            Bundle::from_spiffe_json(td(), json.as_bytes()).unwrap(),
            bundle,
            "{name}"
        );
        assert_eq!(
            bundle.x509_authorities_pem().replace('\r', ""),
            String::from_utf8(pem).unwrap().replace('\r', "")
        );
    }
}

#[test]
fn p256_jwk_loaded_back_verifies_a_signature() {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let bundle = Bundle {
        jwt_authorities: vec![jwt_authority("k", spki)],
        ..Bundle::new(td())
    };
    let loaded = Bundle::from_spiffe_json(td(), bundle.to_spiffe_json().as_bytes()).unwrap();

    let message = b"header.claims";
    let signature = pair.sign(&rng, message).unwrap();
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(&loaded.jwt_authorities[0].public_key)
            .unwrap();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki.subject_public_key.data);
    public.verify(message, signature.as_ref()).unwrap();
    assert!(public.verify(b"other", signature.as_ref()).is_err());
}

#[test]
fn missing_or_null_keys_member_means_no_authorities() {
    for doc in [
        json!({}),
        json!({"keys": null}),
        json!({"spiffe_sequence": 1}),
    ] {
        let err = parse(&doc).unwrap_err();
        assert_eq!(err, BundleError::NoAuthorities);
        assert_eq!(err.to_string(), "no authorities found");
    }
}

#[test]
fn empty_key_list_is_an_empty_bundle() {
    let bundle = parse(&json!({"keys": []})).unwrap();
    assert_eq!(bundle, Bundle::new(td()));
}

#[test]
fn sequence_and_refresh_hint_are_read() {
    let bundle =
        parse(&json!({"keys": [], "spiffe_sequence": 9, "spiffe_refresh_hint": 60})).unwrap();
    assert_eq!((bundle.sequence_number, bundle.refresh_hint), (9, 60));
    let bundle = parse(&json!({"keys": [], "spiffe_sequence": null})).unwrap();
    assert_eq!(bundle.sequence_number, 0);
}

#[test]
fn x509_entries_need_exactly_one_certificate() {
    let ca = self_signed_ca(&P256, "example.org");
    let mut jwk = x509_jwk(&ca.der);
    let cert = jwk["x5c"][0].clone();
    jwk["x5c"] = json!([cert, cert]);
    let err = parse(&json!({"keys": [jwk]})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a single certificate in x509-svid entry 0; got 2"
    );
    for x5c in [json!([]), Value::Null] {
        jwk["x5c"] = x5c;
        let err = parse(&json!({"keys": [{"use": "jwt-svid", "kty": "oct"}, jwk]})).unwrap_err();
        assert_eq!(err, BundleError::CertificateCount { index: 1, count: 0 });
    }
}

#[test]
fn jwt_entries_need_a_key_id() {
    let doc: Value = serde_json::from_str(&mixed_bundle().to_spiffe_json()).unwrap();
    let mut jwk = doc["keys"][3].clone();
    assert_eq!(jwk["use"], "jwt-svid");
    for kid in [Value::Null, json!("")] {
        jwk["kid"] = kid;
        let err = parse(&json!({"keys": [jwk]})).unwrap_err();
        assert_eq!(err, BundleError::MissingKeyId { index: 0 });
        assert!(err.to_string().ends_with("keyID cannot be empty"), "{err}");
    }
}

#[test]
fn keys_with_unknown_or_missing_use_or_kty_are_ignored() {
    let ca = self_signed_ca(&P256, "example.org");
    let good = x509_jwk(&ca.der);
    let mut no_use = good.clone();
    no_use.as_object_mut().unwrap().remove("use");
    let mut other_use = good.clone();
    other_use["use"] = json!("sig");
    let mut wit = good.clone();
    wit["use"] = json!("wit-svid");
    let mut odd_kty = good.clone();
    odd_kty["kty"] = json!("oct");
    let mut no_kty = good.clone();
    no_kty.as_object_mut().unwrap().remove("kty");
    let jwt_oct = json!({"use": "jwt-svid", "kty": "oct", "k": "c2VjcmV0"});
    let doc = json!({"keys": [no_use, other_use, wit, odd_kty, no_kty, jwt_oct, good]});
    let bundle = parse(&doc).unwrap();
    assert_eq!(bundle.x509_authorities, vec![x509_authority(ca.der)]);
    assert!(bundle.jwt_authorities.is_empty());
}

#[test]
fn x509_entry_key_must_match_its_certificate() {
    let ca = self_signed_ca(&P256, "example.org");
    let other = self_signed_ca(&P256, "example.org");
    let mut jwk = x509_jwk(&ca.der);
    jwk["x"] = x509_jwk(&other.der)["x"].clone();
    jwk["y"] = x509_jwk(&other.der)["y"].clone();
    let err = parse(&json!({"keys": [jwk]})).unwrap_err();
    assert_eq!(err, BundleError::CertificateKeyMismatch { index: 0 });
}

#[test]
fn malformed_values_are_rejected() {
    let ca = self_signed_ca(&P256, "example.org");
    let mut bad_cert = x509_jwk(&ca.der);
    bad_cert["x5c"] = json!(["not base64!"]);
    assert_eq!(
        parse(&json!({"keys": [bad_cert]})),
        Err(BundleError::InvalidCertificate { index: 0 })
    );
    let mut not_a_cert = x509_jwk(&ca.der);
    not_a_cert["x5c"] = json!([STANDARD.encode(b"not a certificate")]);
    assert_eq!(
        parse(&json!({"keys": [not_a_cert]})),
        Err(BundleError::InvalidCertificate { index: 0 })
    );
    let mut bad_x = x509_jwk(&ca.der);
    bad_x["x"] = json!("AAAA");
    assert_eq!(
        parse(&json!({"keys": [bad_x]})),
        Err(BundleError::InvalidKey {
            index: 0,
            source: PublicKeyError::WrongLength("x")
        })
    );
    for doc in [
        &b"not json"[..],
        b"{\"keys\": {}}",
        b"{\"keys\": [], \"spiffe_sequence\": -1}",
        b"[]",
    ] {
        let err = Bundle::from_spiffe_json(td(), doc).unwrap_err();
        assert!(matches!(err, BundleError::Decode(_)), "{err:?}");
        assert!(err.to_string().starts_with("unable to decode bundle: "));
    }
}

#[test]
fn repeated_authorities_collapse() {
    let mut bundle = mixed_bundle();
    let first_ca = bundle.x509_authorities[0].clone();
    bundle.x509_authorities.push(first_ca);
    let replacement = key(&P256).subject_public_key_info();
    bundle
        .jwt_authorities
        .push(jwt_authority("ec256", replacement.clone()));
    let parsed = Bundle::from_spiffe_json(td(), bundle.to_spiffe_json().as_bytes()).unwrap();
    assert_eq!(parsed.x509_authorities.len(), 3);
    assert_eq!(parsed.jwt_authorities.len(), 4);
    assert_eq!(
        parsed.jwt_authorities[0].public_key, replacement,
        "the last key for a kid wins, in place"
    );
}

#[test]
fn document_drops_taint_and_expiry() {
    let mut bundle = mixed_bundle();
    bundle.x509_authorities[0].tainted = true;
    bundle.jwt_authorities[0].tainted = true;
    bundle.jwt_authorities[0].expires_at = 1_900_000_000;
    let parsed = Bundle::from_spiffe_json(td(), bundle.to_spiffe_json().as_bytes()).unwrap();
    assert!(!parsed.x509_authorities[0].tainted);
    assert!(!parsed.jwt_authorities[0].tainted);
    assert_eq!(parsed.jwt_authorities[0].expires_at, 0);
}

#[test]
fn strings_are_escaped_as_go_escapes_them() {
    let bundle = Bundle {
        jwt_authorities: vec![jwt_authority(
            "<a&b>\u{2028}\"\n",
            key(&P256).subject_public_key_info(),
        )],
        ..Bundle::new(td())
    };
    let json = bundle.to_spiffe_json();
    assert!(
        json.contains(r#""kid": "\u003ca\u0026b\u003e\u2028\"\n","#),
        "{json}"
    );
    let parsed = Bundle::from_spiffe_json(td(), json.as_bytes()).unwrap();
    assert_eq!(parsed.jwt_authorities[0].key_id, "<a&b>\u{2028}\"\n");
}

#[test]
fn unusable_authorities_are_written_without_key_members_and_skipped_on_read() {
    let bundle = Bundle {
        x509_authorities: vec![x509_authority(b"corrupt".to_vec())],
        jwt_authorities: vec![jwt_authority("k", b"corrupt".to_vec())],
        ..Bundle::new(td())
    };
    let doc: Value = serde_json::from_str(&bundle.to_spiffe_json()).unwrap();
    assert_eq!(
        doc["keys"][0],
        json!({"use": "x509-svid", "x5c": [STANDARD.encode(b"corrupt")]})
    );
    assert_eq!(doc["keys"][1], json!({"use": "jwt-svid", "kid": "k"}));
    assert_eq!(
        Bundle::from_spiffe_json(td(), bundle.to_spiffe_json().as_bytes()),
        Ok(Bundle::new(td()))
    );
}

#[test]
fn pem_bundle_round_trips_and_rejects_other_blocks() {
    let bundle = mixed_bundle();
    let pem = bundle.x509_authorities_pem();
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----\n").count(), 3);
    assert!(!pem.contains('\r') && !pem.contains("\n\n"));
    assert_eq!(
        parse_x509_authorities_pem(pem.as_bytes()).unwrap(),
        bundle.x509_authorities
    );
    let with_text = format!("comment\n{pem}trailer\n{pem}");
    assert_eq!(
        parse_x509_authorities_pem(with_text.as_bytes()).unwrap(),
        bundle.x509_authorities
    );

    assert_eq!(
        parse_x509_authorities_pem(b"hello"),
        Err(BundleError::NoPemBlocks)
    );
    let key_block = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let err = parse_x509_authorities_pem(key_block.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected block type \"CERTIFICATE\"; got \"PRIVATE KEY\""
    );
    let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let err = parse_x509_authorities_pem(format!("{pem}{bad}").as_bytes()).unwrap_err();
    assert_eq!(err, BundleError::InvalidPemCertificate { index: 3 });
}
