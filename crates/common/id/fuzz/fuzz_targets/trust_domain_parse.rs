//! `TrustDomain::parse` / `TrustDomain::new`: accepted names format back to themselves,
//! re-parse equal, and yield a valid trust-domain ID; `new` only adds the length limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_id::{SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = TrustDomain::parse(input);
    let is_id_form = input.contains(":/");
    match TrustDomain::new(input) {
        Ok(td) => assert_eq!(
            parsed.as_ref(),
            Ok(&td),
            "new accepts only what parse accepts"
        ),
        Err(_) => {
            if let Ok(td) = &parsed {
                assert!(
                    td.name().len() > TrustDomain::MAX_LEN,
                    "new refused a short name: {td:?}"
                );
            }
        }
    }
    let Ok(td) = parsed else {
        return;
    };
    if !is_id_form {
        assert_eq!(td.name(), input, "a bare name formats back to itself");
    }
    assert_eq!(td.to_string(), td.name());
    assert_eq!(TrustDomain::parse(td.name()).as_ref(), Ok(&td));

    let id = SpiffeId::parse(&td.id_string()).expect("the trust-domain ID parses");
    assert_eq!(id, td.id());
    assert_eq!(id.trust_domain(), &td);
    assert_eq!(id.path(), "");
});
