//! SPIFFE bundle documents: parse -> marshal -> parse is stable, and marshalling is a fixed
//! point after one round. The PEM form of the X.509 authorities round-trips too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_id::TrustDomain;
use spire_svid::{Bundle, parse_x509_authorities_pem};

fuzz_target!(|data: &[u8]| {
    let td = TrustDomain::new("example.org").expect("valid trust domain");
    let Ok(bundle) = Bundle::from_spiffe_json(td.clone(), data) else {
        return;
    };
    let json = bundle.to_spiffe_json();
    let again = Bundle::from_spiffe_json(td, json.as_bytes())
        .unwrap_or_else(|e| panic!("our own document must parse: {e}\n{json}"));
    assert_eq!(
        again, bundle,
        "parse -> marshal -> parse changed the bundle"
    );
    assert_eq!(again.to_spiffe_json(), json, "marshalling is not stable");

    if !bundle.x509_authorities.is_empty() {
        let pem = bundle.x509_authorities_pem();
        let authorities = parse_x509_authorities_pem(pem.as_bytes()).expect("our own PEM parses");
        assert_eq!(authorities, bundle.x509_authorities);
    }
});
