use rcgen::{CertificateParams, IsCa, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm};

use super::*;
use crate::test_util::{
    ED25519, P256, P384, RSA, TestCa, ca_params, intermediate, key, leaf_params, self_signed_ca,
    sign, uri_san,
};

const ID: &str = "spiffe://example.org/workload";

/// A leaf made from `params` and signed by a fresh root, with its PKCS#8 key.
fn leaf_with(params: &CertificateParams, alg: &'static SignatureAlgorithm) -> (Vec<u8>, KeyPair) {
    let root = self_signed_ca(&P256, "example.org");
    let key = key(alg);
    (sign(params, &key, &root), key)
}

fn parse_leaf(params: &CertificateParams) -> Result<X509Svid, X509SvidError> {
    let (der, key) = leaf_with(params, &P256);
    X509Svid::parse(&der, &key.serialize_der())
}

/// root -> intermediate -> leaf; returns (leaf DER, leaf key, intermediate).
fn chain_via(intermediate_params: CertificateParams) -> (Vec<u8>, KeyPair, TestCa) {
    let root = self_signed_ca(&P384, "example.org");
    let mid = intermediate(intermediate_params, &P256, &root);
    let key = key(&P256);
    (sign(&leaf_params(ID), &key, &mid), key, mid)
}

#[test]
fn good_leaf_only_parses() {
    let (der, key) = leaf_with(&leaf_params(ID), &P256);
    let svid = X509Svid::parse(&der, &key.serialize_der()).unwrap();
    assert_eq!(svid.spiffe_id().to_string(), ID);
    assert_eq!(svid.cert_chain(), std::slice::from_ref(&der));
    assert_eq!(svid.leaf(), der);
    assert_eq!(svid.private_key(), key.serialize_der());
    assert_eq!(svid.chain_der(), der);
}

#[test]
fn good_leaf_and_intermediate_parse_from_der_and_pem() {
    let (leaf, key, mid) = chain_via(ca_params("example.org"));
    let chain = [leaf.clone(), mid.der.clone()].concat();
    let svid = X509Svid::parse(&chain, &key.serialize_der()).unwrap();
    assert_eq!(svid.cert_chain(), [leaf, mid.der]);
    assert_eq!(svid.chain_der(), chain);

    let from_pem = X509Svid::parse_pem(
        svid.chain_pem().as_bytes(),
        svid.private_key_pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(from_pem.cert_chain(), svid.cert_chain());
    assert_eq!(from_pem.private_key(), svid.private_key());
    // One file holding the key and the chain, passed as both.
    let combined = format!("{}{}", svid.private_key_pem(), svid.chain_pem());
    let from_combined = X509Svid::parse_pem(combined.as_bytes(), combined.as_bytes()).unwrap();
    assert_eq!(from_combined.cert_chain(), svid.cert_chain());
}

#[test]
fn every_supported_key_type_matches_its_leaf() {
    for alg in [&P256, &P384, &RSA, &ED25519] {
        let (der, key) = leaf_with(&leaf_params(ID), alg);
        let svid = X509Svid::parse(&der, &key.serialize_der());
        assert!(svid.is_ok(), "{alg:?}: {svid:?}");
    }
}

#[test]
fn empty_and_corrupt_chains_are_rejected() {
    let (der, key) = leaf_with(&leaf_params(ID), &P256);
    let key = key.serialize_der();
    assert_eq!(
        X509Svid::parse(&[], &key).unwrap_err(),
        X509SvidError::NoCertificates
    );
    assert_eq!(
        X509Svid::from_chain(Vec::new(), key.clone())
            .unwrap_err()
            .to_string(),
        "no certificates found"
    );
    let corrupt = X509Svid::parse(&der[..der.len() - 10], &key).unwrap_err();
    assert!(
        matches!(corrupt, X509SvidError::ParseCertificate(_)),
        "{corrupt:?}"
    );
    let trailing = X509Svid::parse(&[der.clone(), vec![0x30, 0x00]].concat(), &key).unwrap_err();
    assert!(
        matches!(trailing, X509SvidError::ParseCertificate(_)),
        "{trailing:?}"
    );
    let trailing = X509Svid::from_chain(vec![[der, vec![0]].concat()], key).unwrap_err();
    assert!(
        matches!(trailing, X509SvidError::ParseCertificate(_)),
        "{trailing:?}"
    );
}

#[test]
fn leaf_needs_exactly_one_uri_san_holding_a_spiffe_id_with_a_path() {
    let mut params = leaf_params(ID);
    params.subject_alt_names = vec![SanType::DnsName("web.example.org".try_into().unwrap())];
    assert_eq!(
        parse_leaf(&params).unwrap_err().to_string(),
        "certificate contains no URI SAN"
    );

    params.subject_alt_names = vec![uri_san(ID), uri_san("spiffe://example.org/other")];
    assert_eq!(
        parse_leaf(&params).unwrap_err().to_string(),
        "certificate contains more than one URI SAN"
    );

    params.subject_alt_names = vec![uri_san("https://example.org/workload")];
    assert_eq!(
        parse_leaf(&params).unwrap_err().to_string(),
        "cannot get leaf certificate SPIFFE ID: scheme is missing or invalid"
    );

    params.subject_alt_names = vec![uri_san("spiffe://example.org")];
    assert_eq!(
        parse_leaf(&params).unwrap_err().to_string(),
        "leaf certificate SPIFFE ID must have a non-root path"
    );

    // DNS names beside the one URI SAN are fine.
    params.subject_alt_names = vec![uri_san(ID), SanType::DnsName("web".try_into().unwrap())];
    assert!(parse_leaf(&params).is_ok());
}

#[test]
fn leaf_must_not_be_a_ca() {
    let mut params = leaf_params(ID);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert_eq!(
        parse_leaf(&params).unwrap_err().to_string(),
        "leaf certificate must not have CA flag set to true"
    );
    // Without BasicConstraints at all the leaf is not a CA.
    params.is_ca = IsCa::NoCa;
    assert!(parse_leaf(&params).is_ok());
}

#[test]
fn leaf_key_usage_rules() {
    let cases = [
        (
            vec![KeyUsagePurpose::KeyEncipherment],
            X509SvidError::LeafWithoutDigitalSignature,
        ),
        (vec![], X509SvidError::LeafWithoutDigitalSignature),
        (
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ],
            X509SvidError::LeafWithKeyCertSign,
        ),
        (
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign],
            X509SvidError::LeafWithCrlSign,
        ),
    ];
    for (usages, want) in cases {
        let mut params = leaf_params(ID);
        params.key_usages = usages.clone();
        assert_eq!(parse_leaf(&params).unwrap_err(), want, "{usages:?}");
    }
    assert_eq!(
        X509SvidError::LeafWithoutDigitalSignature.to_string(),
        "leaf certificate must have 'digitalSignature' set as key usage"
    );
    assert_eq!(
        X509SvidError::LeafWithKeyCertSign.to_string(),
        "leaf certificate must not have 'keyCertSign' set as key usage"
    );
    assert_eq!(
        X509SvidError::LeafWithCrlSign.to_string(),
        "leaf certificate must not have 'cRLSign' set as key usage"
    );
}

#[test]
fn signing_certificates_must_be_cas_with_key_cert_sign() {
    let mut not_ca = ca_params("example.org");
    not_ca.is_ca = IsCa::ExplicitNoCa;
    let (leaf, key, mid) = chain_via(not_ca);
    let err = X509Svid::from_chain(vec![leaf, mid.der], key.serialize_der()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "signing certificate must have CA flag set to true"
    );

    let mut no_cert_sign = ca_params("example.org");
    no_cert_sign.key_usages = vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let (leaf, key, mid) = chain_via(no_cert_sign);
    let err = X509Svid::from_chain(vec![leaf, mid.der], key.serialize_der()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "signing certificate must have 'keyCertSign' set as key usage"
    );
}

#[test]
fn key_must_be_the_leafs() {
    let (der, _) = leaf_with(&leaf_params(ID), &P256);
    for other in [&P256, &P384, &RSA] {
        let err = X509Svid::parse(&der, &key(other).serialize_der()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "leaf certificate does not match private key",
            "{other:?}"
        );
    }
    assert_eq!(
        X509Svid::parse(&der, b"corrupt").unwrap_err(),
        X509SvidError::ParsePrivateKey
    );
    assert_eq!(
        X509Svid::parse(&der, &[]).unwrap_err(),
        X509SvidError::ParsePrivateKey
    );
}

#[test]
fn pem_input_errors() {
    let (der, key) = leaf_with(&leaf_params(ID), &P256);
    let svid = X509Svid::parse(&der, &key.serialize_der()).unwrap();
    let key_pem = svid.private_key_pem();
    let err = X509Svid::parse_pem(b"not pem", key_pem.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "no PEM blocks found");
    let err =
        X509Svid::parse_pem(svid.chain_pem().as_bytes(), svid.chain_pem().as_bytes()).unwrap_err();
    assert_eq!(err, X509SvidError::ParsePrivateKey);
    let err = X509Svid::parse_pem(key_pem.as_bytes(), key_pem.as_bytes()).unwrap_err();
    assert_eq!(err, X509SvidError::NoCertificates);
}

#[test]
fn debug_never_shows_the_key() {
    let (der, key) = leaf_with(&leaf_params(ID), &P256);
    let svid = X509Svid::parse(&der, &key.serialize_der()).unwrap();
    let debug = format!("{svid:?}");
    assert!(
        debug.contains("<redacted>") && debug.contains(ID),
        "{debug}"
    );
    let key_bytes = format!("{:?}", &key.serialize_der()[..8]);
    assert!(
        !debug.contains(&key_bytes[1..key_bytes.len() - 1]),
        "{debug}"
    );
}

#[test]
fn peer_id_applies_the_chain_rules_without_a_key() {
    let (leaf, _key, mid) = chain_via(ca_params("example.org"));
    let id = X509Svid::peer_id([leaf.as_slice(), mid.der.as_slice()]).unwrap();
    assert_eq!(id.to_string(), ID);

    let mut ca_leaf = leaf_params(ID);
    ca_leaf.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let (der, _key) = leaf_with(&ca_leaf, &P256);
    assert_eq!(
        X509Svid::peer_id([der.as_slice()]),
        Err(X509SvidError::LeafIsCa)
    );
    assert_eq!(
        X509Svid::peer_id(std::iter::empty()),
        Err(X509SvidError::NoCertificates)
    );
}
