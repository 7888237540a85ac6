//! Arbitrary client bytes through the `:authority` rewriter: no panic, and whatever it lets
//! through is a valid frame sequence whose header blocks decode without the dynamic table.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: chunk size, so partial frames and reads are exercised too.
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    // The preface is prepended so that mutations reach the frame layer.
    let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    input.extend_from_slice(data);
    let mut rewriter = spire_uds::AuthorityRewriter::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in input.chunks(usize::from(step) + 1) {
        buf.extend_from_slice(chunk);
        if rewriter.process(&mut buf).is_err() {
            return; // the connection would be closed
        }
        while let Some(bytes) = rewriter.next_output(usize::MAX) {
            out.extend_from_slice(&bytes);
        }
    }
    if let Err(e) = spire_uds::check_output(&out) {
        panic!("rewriter output does not check: {e}");
    }
});
