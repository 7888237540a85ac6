//! `Selector::parse`: accepted selectors format back to the input, re-parse equal and agree
//! with `Selector::new`; a set of them is canonical however it is built.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_id::{Selector, SelectorSet};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut selectors = Vec::new();
    for line in input.split('\n') {
        let Ok(selector) = Selector::parse(line) else {
            continue;
        };
        assert_eq!(
            selector.to_string(),
            line,
            "an accepted selector formats back to itself"
        );
        assert!(!selector.selector_type().is_empty() && !selector.selector_type().contains(':'));
        assert!(!selector.value().is_empty());
        assert_eq!(Selector::parse(line).as_ref(), Ok(&selector));
        assert_eq!(
            Selector::new(selector.selector_type(), selector.value()).as_ref(),
            Ok(&selector)
        );
        selectors.push(selector);
    }
    let forward: SelectorSet = selectors.iter().cloned().collect();
    let backward: SelectorSet = selectors.iter().rev().cloned().collect();
    assert_eq!(
        forward, backward,
        "a set does not depend on insertion order"
    );
    assert!(forward.len() <= selectors.len());
    assert!(selectors.iter().all(|s| forward.contains(s)));
    assert!(forward.is_subset(&backward) && backward.is_subset(&forward));
    assert!(
        forward
            .iter()
            .zip(forward.iter().skip(1))
            .all(|(a, b)| a < b),
        "canonical order"
    );
    match SelectorSet::non_empty(selectors.iter().cloned()) {
        Ok(set) => assert_eq!(set, forward),
        Err(_) => assert!(selectors.is_empty()),
    }
});
