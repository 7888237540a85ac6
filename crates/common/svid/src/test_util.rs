//! Certificates and keys for tests, made with rcgen.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    SignatureAlgorithm,
};

pub(crate) use rcgen::{
    PKCS_ECDSA_P256_SHA256 as P256, PKCS_ECDSA_P384_SHA384 as P384, PKCS_ED25519 as ED25519,
    PKCS_RSA_SHA256 as RSA,
};

/// A CA certificate with its parameters and key, able to sign children.
pub(crate) struct TestCa {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) der: Vec<u8>,
}

pub(crate) fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).expect("key generation")
}

/// CA parameters as SPIRE issues them: CA=true, keyCertSign|cRLSign, URI SAN `spiffe://<td>`.
pub(crate) fn ca_params(trust_domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "SPIFFE");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![uri_san(&format!("spiffe://{trust_domain}"))];
    params
}

/// Leaf parameters as SPIRE issues them: CA=false, digitalSignature|keyEncipherment|
/// keyAgreement, one URI SAN.
pub(crate) fn leaf_params(spiffe_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "SPIRE");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.subject_alt_names = vec![uri_san(spiffe_id)];
    params
}

pub(crate) fn uri_san(uri: &str) -> SanType {
    SanType::URI(uri.try_into().expect("ASCII URI"))
}

/// A self-signed CA for `trust_domain`.
pub(crate) fn self_signed_ca(alg: &'static SignatureAlgorithm, trust_domain: &str) -> TestCa {
    let params = ca_params(trust_domain);
    let key = key(alg);
    let der = params.self_signed(&key).expect("self-sign").der().to_vec();
    TestCa { params, key, der }
}

/// A CA signed by `parent`, made from `params`.
pub(crate) fn intermediate(
    params: CertificateParams,
    alg: &'static SignatureAlgorithm,
    parent: &TestCa,
) -> TestCa {
    let key = key(alg);
    let der = sign(&params, &key, parent);
    TestCa { params, key, der }
}

/// Signs `params` for `key` with `ca`, returning the DER certificate.
pub(crate) fn sign(params: &CertificateParams, key: &KeyPair, ca: &TestCa) -> Vec<u8> {
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    params.signed_by(key, &issuer).expect("sign").der().to_vec()
}

/// The testdata certificates from SPIRE's repository, when `../shared/testdata` is beside
/// the checkout; `None` (after saying why) otherwise.
pub(crate) fn spire_testdata_certs() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = spire_test::shared_testdata("spire-conf")?;
    let mut certs = Vec::new();
    for name in ["dummy_root_ca.crt", "dummy_upstream_ca.crt"] {
        match std::fs::read(dir.join(name)) {
            Ok(pem) => certs.push((name.to_owned(), pem)),
            Err(e) => {
                spire_test::skip(&format!("{} unreadable ({e})", dir.join(name).display()));
                return None;
            }
        }
    }
    Some(certs)
}
