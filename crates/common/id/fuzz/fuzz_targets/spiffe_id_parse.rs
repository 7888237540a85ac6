//! `SpiffeId::parse`: whatever it accepts formats back to the exact input, re-parses to an
//! equal ID, and agrees with the trust-domain parser and the path constructor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_id::{SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = SpiffeId::parse(input) else {
        return;
    };
    let formatted = id.to_string();
    assert_eq!(
        formatted, input,
        "an accepted ID must format back to itself"
    );
    let reparsed = SpiffeId::parse(&formatted).expect("a formatted ID re-parses");
    assert_eq!(reparsed, id);

    // The trust domain parser takes the same ID to the same trust domain.
    let td = TrustDomain::parse(input).expect("an accepted ID has a parseable trust domain");
    assert_eq!(&td, id.trust_domain());
    assert!(id.is_member_of(&td));
    assert_eq!(TrustDomain::parse(td.name()).as_ref(), Ok(&td));

    // Rebuilding from the parts gives the same ID whenever it is creatable.
    if id.check_creatable().is_ok() {
        let rebuilt = SpiffeId::from_path(td.clone(), id.path()).expect("creatable parts rebuild");
        assert_eq!(rebuilt, id);
    }
});
