//! The HPACK encoder for blocks handed to h2: static-table indexed or literal without
//! indexing, never the dynamic table and never a table size update (RFC 7541 §6.1, §6.2.2).
//!
//! Because nothing is ever inserted, h2's decoder table stays empty for the whole connection
//! and cannot diverge from what the client's encoder assumes about *its* peer table (which we
//! track with a real decoder instead). Strings are sent raw (no Huffman): cheaper to produce,
//! and h2 decodes both.

use bytes::{BufMut as _, BytesMut};

/// The HPACK static table (RFC 7541 Appendix A); index = position + 1.
pub(crate) const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Appends one header field: indexed when the static table has the exact pair, otherwise a
/// literal without indexing (static-table name when there is one).
pub(crate) fn encode_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    let mut name_index = None;
    for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
        if n.as_bytes() == name {
            if v.as_bytes() == value {
                encode_integer(out, 0x80, 7, i + 1); // §6.1 indexed header field
                return;
            }
            name_index.get_or_insert(i + 1);
        }
    }
    match name_index {
        Some(index) => encode_integer(out, 0x00, 4, index), // §6.2.2, indexed name
        None => {
            out.put_u8(0x00); // §6.2.2, new name
            encode_string(out, name);
        }
    }
    encode_string(out, value);
}

/// §5.2 string literal, raw octets (H = 0).
fn encode_string(out: &mut BytesMut, s: &[u8]) {
    encode_integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// §5.1 integer with an `n`-bit prefix; `first` carries the representation's leading bits.
fn encode_integer(out: &mut BytesMut, first: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.put_u8(first | value as u8); // fits: value < 2^n ≤ 128
        return;
    }
    out.put_u8(first | max as u8);
    value -= max;
    while value >= 128 {
        out.put_u8((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn static_table_matches_the_decoders() {
        let mut decoder = loona_hpack::Decoder::new();
        for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
            let mut block = BytesMut::new();
            encode_integer(&mut block, 0x80, 7, i + 1);
            let got = decoder.decode(&block).unwrap();
            assert_eq!(
                got,
                vec![(n.as_bytes().to_vec(), v.as_bytes().to_vec())],
                "index {}",
                i + 1
            );
        }
    }

    #[test]
    fn fields_round_trip_without_touching_the_dynamic_table() {
        let long = vec![b'x'; 300];
        let fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":authority", b"localhost"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"x-long", &long),
            (b"", b""),
        ];
        let mut block = BytesMut::new();
        for (n, v) in &fields {
            encode_field(&mut block, n, v);
        }
        // Two fresh decoders in a row see the same list: nothing was indexed.
        for _ in 0..2 {
            let got = loona_hpack::Decoder::new().decode(&block).unwrap();
            let want: Vec<_> = fields
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(block[0], 0x83, ":method POST is static index 3");
    }

    #[test]
    fn integers_use_continuation_octets_past_the_prefix() {
        let mut out = BytesMut::new();
        encode_integer(&mut out, 0x00, 5, 1337); // RFC 7541 C.1.2
        assert_eq!(&out[..], &[31, 154, 10]);
    }
}
