use rcgen::PublicKeyData;

use super::*;
use crate::test_util::{ED25519, P256, P384, RSA, key};

fn jwk(kty: &str, crv: Option<&str>, x: Option<&str>, y: Option<&str>) -> JwkKeyMembers {
    JwkKeyMembers {
        kty: kty.to_owned(),
        crv: crv.map(str::to_owned),
        x: x.map(str::to_owned),
        y: y.map(str::to_owned),
        ..JwkKeyMembers::default()
    }
}

#[test]
fn spki_round_trips_byte_for_byte_for_every_supported_key_type() {
    for alg in [&P256, &P384, &RSA, &ED25519] {
        let spki = key(alg).subject_public_key_info();
        let params = PublicKeyParams::from_spki_der(&spki).unwrap();
        assert_eq!(params.to_spki_der(), spki, "{alg:?}");
        let members = params.to_jwk();
        assert_eq!(
            PublicKeyParams::from_jwk(&members),
            Ok(Some(params)),
            "{alg:?}"
        );
    }
}

#[test]
fn p521_keys_from_aws_lc_round_trip() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_ASN1_SIGNING).unwrap();
    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let params = PublicKeyParams::from_spki_der(&spki).unwrap();
    assert_eq!(params.to_jwk().crv.as_deref(), Some("P-521"));
    assert_eq!(params.to_spki_der(), spki);
}

#[test]
fn ec_jwk_members_are_fixed_length_base64url() {
    let params = PublicKeyParams::from_spki_der(&key(&P256).subject_public_key_info()).unwrap();
    let members = params.to_jwk();
    assert_eq!(members.kty, "EC");
    assert_eq!(members.crv.as_deref(), Some("P-256"));
    // 32 bytes -> 43 base64url characters, no padding.
    assert_eq!(members.x.as_ref().map(String::len), Some(43));
    assert_eq!(members.y.as_ref().map(String::len), Some(43));
    assert!(
        members
            .x
            .unwrap()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
}

#[test]
fn rsa_jwk_uses_minimal_integers_and_accepts_leading_zeros() {
    let params = PublicKeyParams::from_spki_der(&key(&RSA).subject_public_key_info()).unwrap();
    let members = params.to_jwk();
    assert_eq!(members.kty, "RSA");
    assert_eq!(members.e.as_deref(), Some("AQAB"));
    // A modulus with a leading zero byte is read as the same key.
    let Some(n) = members.n.clone() else {
        panic!("no n")
    };
    let mut padded = vec![0u8];
    padded.extend(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, n).unwrap(),
    );
    let with_zero = JwkKeyMembers {
        n: Some(encode_b64url(&padded)),
        ..members.clone()
    };
    assert_eq!(PublicKeyParams::from_jwk(&with_zero), Ok(Some(params)));
}

#[test]
fn unknown_key_types_and_curves_are_not_errors() {
    for (kty, crv) in [
        ("oct", None),
        ("EC", Some("P-192")),
        ("EC", None),
        ("OKP", Some("X25519")),
        ("", None),
    ] {
        assert_eq!(
            PublicKeyParams::from_jwk(&jwk(kty, crv, Some("AA"), Some("AA"))),
            Ok(None),
            "{kty} {crv:?}"
        );
    }
}

#[test]
fn malformed_jwk_members_are_rejected() {
    let good = PublicKeyParams::from_spki_der(&key(&P256).subject_public_key_info())
        .unwrap()
        .to_jwk();
    let cases = [
        (
            JwkKeyMembers {
                x: None,
                ..good.clone()
            },
            PublicKeyError::MissingParameter("x"),
        ),
        (
            JwkKeyMembers {
                y: Some("!!".into()),
                ..good.clone()
            },
            PublicKeyError::BadBase64("y"),
        ),
        (
            JwkKeyMembers {
                x: Some("AAAA".into()),
                ..good.clone()
            },
            PublicKeyError::WrongLength("x"),
        ),
        (
            JwkKeyMembers {
                crv: Some("P-384".into()),
                ..good.clone()
            },
            PublicKeyError::WrongLength("x"),
        ),
        // Right length, but (x, x) is not a point of P-256.
        (
            JwkKeyMembers {
                y: good.x.clone(),
                ..good.clone()
            },
            PublicKeyError::NotOnCurve,
        ),
        (
            JwkKeyMembers {
                kty: "RSA".into(),
                n: Some("AA".into()),
                e: Some("AQAB".into()),
                ..Default::default()
            },
            PublicKeyError::BadRsaParameters,
        ),
        (
            JwkKeyMembers {
                kty: "RSA".into(),
                n: Some("AQAB".into()),
                ..Default::default()
            },
            PublicKeyError::MissingParameter("e"),
        ),
        (
            jwk("OKP", Some("Ed25519"), Some("AAAA"), None),
            PublicKeyError::WrongLength("x"),
        ),
    ];
    for (members, want) in cases {
        assert_eq!(
            PublicKeyParams::from_jwk(&members),
            Err(want.clone()),
            "{members:?}"
        );
    }
}

#[test]
fn padded_base64url_is_tolerated() {
    let good = PublicKeyParams::from_spki_der(&key(&P256).subject_public_key_info())
        .unwrap()
        .to_jwk();
    let padded = JwkKeyMembers {
        x: good.x.as_ref().map(|x| format!("{x}=")),
        ..good.clone()
    };
    assert_eq!(
        PublicKeyParams::from_jwk(&padded),
        PublicKeyParams::from_jwk(&good)
    );
}

#[test]
fn malformed_or_unsupported_spki_is_rejected() {
    let spki = key(&P256).subject_public_key_info();
    let mut trailing = spki.clone();
    trailing.push(0);
    assert_eq!(
        PublicKeyParams::from_spki_der(&trailing),
        Err(PublicKeyError::MalformedSpki)
    );
    assert_eq!(
        PublicKeyParams::from_spki_der(b"garbage"),
        Err(PublicKeyError::MalformedSpki)
    );
    // Ed448 (1.3.101.113) is well-formed but unsupported.
    let mut ed448 = vec![
        0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00,
    ];
    ed448.extend([7u8; 57]);
    assert_eq!(
        PublicKeyParams::from_spki_der(&ed448),
        Err(PublicKeyError::UnsupportedAlgorithm)
    );
}

#[test]
fn der_lengths_use_the_minimal_long_form() {
    let mut out = Vec::new();
    der_tlv(0x04, &[0u8; 0x7f], &mut out);
    assert_eq!(&out[..2], &[0x04, 0x7f]);
    out.clear();
    der_tlv(0x04, &[0u8; 0x80], &mut out);
    assert_eq!(&out[..3], &[0x04, 0x81, 0x80]);
    out.clear();
    der_tlv(0x04, &[0u8; 0x1234], &mut out);
    assert_eq!(&out[..4], &[0x04, 0x82, 0x12, 0x34]);
}

#[test]
fn der_integers_get_a_sign_byte_only_when_needed() {
    let mut out = Vec::new();
    der_unsigned_integer(&[0x7f], &mut out);
    der_unsigned_integer(&[0x80], &mut out);
    der_unsigned_integer(&[], &mut out);
    assert_eq!(
        out,
        [0x02, 0x01, 0x7f, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x00]
    );
}
