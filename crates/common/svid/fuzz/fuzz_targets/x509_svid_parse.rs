//! `X509Svid::parse` on arbitrary input (`u16` big-endian chain length, the chain, then the
//! key): never panics, and an accepted SVID keeps its inputs and re-parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_svid::X509Svid;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (chain, key) = rest.split_at(len);
    let Ok(svid) = X509Svid::parse(chain, key) else {
        return;
    };
    assert_eq!(svid.chain_der(), chain);
    assert_eq!(svid.private_key(), key);
    assert!(!svid.spiffe_id().path().is_empty());
    let again = X509Svid::parse(&svid.chain_der(), svid.private_key()).expect("re-parses");
    assert_eq!(again.spiffe_id(), svid.spiffe_id());
    let from_pem = X509Svid::parse_pem(
        svid.chain_pem().as_bytes(),
        svid.private_key_pem().as_bytes(),
    )
    .expect("PEM form re-parses");
    assert_eq!(from_pem.cert_chain(), svid.cert_chain());
});
