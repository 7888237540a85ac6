//! JWT-SVID parsing and validation on arbitrary tokens: no panic, and a token that validates
//! also parses without verification to the same SPIFFE ID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_id::TrustDomain;
use spire_svid::jwt::{parse_jwt_svid_unverified, validate_jwt_svid};
use spire_svid::{Bundle, JwtAuthority};

/// A P-256 SubjectPublicKeyInfo (the curve's generator point) published as `kid-1`, the kid
/// the seeds name, so mutations reach the key lookup and signature verification.
const SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x6b, 0x17, 0xd1,
    0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03,
    0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f,
    0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16,
    0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51,
    0xf5,
];

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let mut bundle = Bundle::new(TrustDomain::new("example.org").expect("valid trust domain"));
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: "kid-1".to_owned(),
        public_key: SPKI.to_vec(),
        expires_at: 0,
        tainted: false,
    });
    let unverified = parse_jwt_svid_unverified(token);
    let audience = ["AUDIENCE".to_owned()];
    if let Ok(valid) = validate_jwt_svid(token, &audience, 1_800_000_000, |td: &TrustDomain| {
        (*td == bundle.trust_domain).then_some(&bundle)
    }) {
        let unverified = unverified.expect("a valid token parses without verification");
        assert_eq!(unverified.spiffe_id, valid.spiffe_id);
    }
});
