//! `verify_csr` on arbitrary bytes: never panics, and what it returns is a non-empty DER
//! `SubjectPublicKeyInfo` that came from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spki) = spire_svid::verify_csr(data) {
        assert!(!spki.is_empty());
        assert_eq!(spki[0], 0x30, "an SPKI is a DER SEQUENCE");
        assert!(
            data.windows(spki.len()).any(|w| w == spki.as_slice()),
            "the SPKI is taken from the CSR"
        );
    }
});
