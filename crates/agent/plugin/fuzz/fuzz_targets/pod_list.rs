//! The kubelet's `/pods` body (controlled by the kubelet, and by whoever can name pods and
//! images): parsing and matching never panic, every selector is `k8s`-typed, and a match is
//! found only for a container ID the body contains.
//!
//! Input: a 64-hex container ID candidate taken from the first 64 bytes (if they are hex),
//! then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_agent_plugin::workloadattestor::k8s::pods::PodList;

fuzz_target!(|data: &[u8]| {
    let (container_id, body) = match data.get(..64) {
        Some(id) if id.iter().all(u8::is_ascii_hexdigit) => {
            (std::str::from_utf8(id).unwrap_or_default(), &data[64..])
        }
        _ => (
            "0000000000000000000000000000000000000000000000000000000000000000",
            data,
        ),
    };
    let Ok(pods) = PodList::parse(body) else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    for pod_uid in ["", "2c48913c-b29f-11e7-9350-020968147796"] {
        for disable in [false, true] {
            if let Ok(Some(selectors)) = pods.selectors(pod_uid, container_id, disable) {
                assert!(selectors.iter().all(|s| s.selector_type() == "k8s"));
                // (JSON escapes could spell the ID differently in the raw body.)
                if !(disable && !pod_uid.is_empty()) && !text.contains('\\') {
                    assert!(
                        text.contains(container_id),
                        "matched an ID the body does not hold"
                    );
                }
            }
        }
    }
});
