//! A trust bundle with real certificates and a JWT key, for the publishing plugins' tests.

use spire_id::TrustDomain;
use spire_svid::{Bundle, JwtAuthority, X509Authority};

/// A bundle of `roots` self-signed CA certificates and one JWT key.
pub(crate) fn bundle(roots: usize) -> Bundle {
    let mut bundle = Bundle::new(TrustDomain::new("example.org").expect("a trust domain"));
    for i in 0..roots {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("root {i}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("a certificate");
        bundle.x509_authorities.push(X509Authority {
            asn1: cert.der().to_vec(),
            tainted: false,
        });
    }
    let jwt = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key");
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: "kid-1".into(),
        public_key: rcgen::PublicKeyData::subject_public_key_info(&jwt),
        expires_at: 0,
        tainted: false,
    });
    bundle.sequence_number = 3;
    bundle
}
