#![allow(clippy::unwrap_used)]

use super::*;

/// Feeds `input` in chunks of `step` bytes and collects everything queued for h2.
fn run_chunked(input: &[u8], step: usize) -> Result<Vec<u8>, Error> {
    let mut rewriter = AuthorityRewriter::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        rewriter.process(&mut buf)?;
        while let Some(bytes) = rewriter.next_output(usize::MAX) {
            out.extend_from_slice(&bytes);
        }
    }
    Ok(out)
}

fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
    run_chunked(input, input.len())
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal, raw (lengths < 127 only).
fn lit(s: &str) -> Vec<u8> {
    assert!(s.len() < 127);
    let mut out = vec![s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// `:method POST, :scheme http, :path, :authority, content-type`, the last three literal
/// *with incremental indexing* (what C-core does), so they land in the client's table.
fn indexing_request(authority: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86];
    block.push(0x44); // :path (static 4), indexed
    block.extend(lit("/grpc.health.v1.Health/Check"));
    block.push(0x41); // :authority (static 1), indexed
    block.extend(lit(authority));
    block.push(0x5f); // content-type (static 31), indexed
    block.extend(lit("application/grpc"));
    block
}

fn with_preface(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    for f in frames {
        out.extend_from_slice(f);
    }
    out
}

fn field<'a>(block: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> &'a [u8] {
    &block.iter().find(|(n, _)| n == name.as_bytes()).unwrap().1
}

#[test]
fn percent_encoded_socket_path_becomes_localhost() {
    let input = with_preface(&[
        frame(0x4, 0, 0, &[]), // SETTINGS
        frame(
            HEADERS,
            END_HEADERS,
            1,
            &indexing_request("%2Ftmp%2Fx.sock"),
        ),
    ]);
    let out = run(&input).unwrap();
    let blocks = check_output(&out).unwrap();
    assert_eq!(field(&blocks[0], ":authority"), b"localhost");
    assert_eq!(field(&blocks[0], ":path"), b"/grpc.health.v1.Health/Check");
    assert_eq!(
        &out[..24 + 9],
        &input[..24 + 9],
        "preface and SETTINGS untouched"
    );
}

/// Kubelets before 1.26 (grpc-go's passthrough resolver) send the CSI socket path verbatim;
/// anything with a `/`, a scheme or a space is no authority the `http` crate takes.
#[test]
fn raw_socket_paths_become_localhost() {
    for authority in [
        "/var/lib/kubelet/plugins/csi.spiffe.io/csi.sock",
        "/spiffe-csi/csi.sock",
        "unix:///spiffe-csi/csi.sock",
        "unix:/spiffe-csi/csi.sock",
        "./csi.sock",
        "/tmp/with space/csi.sock",
        "",
    ] {
        let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &indexing_request(authority))]);
        let mut rewriter = AuthorityRewriter::new();
        let mut buf = BytesMut::from(&input[..]);
        rewriter.process(&mut buf).unwrap();
        let mut out = Vec::new();
        while let Some(bytes) = rewriter.next_output(usize::MAX) {
            out.extend_from_slice(&bytes);
        }
        let blocks = check_output(&out).unwrap();
        assert_eq!(
            field(&blocks[0], ":authority"),
            b"localhost",
            "{authority:?}"
        );
        assert_eq!(rewriter.rewritten(), 1, "{authority:?}");
    }
}

/// A bare socket file name is a valid registered name: h2 takes it, so it stays.
#[test]
fn bare_socket_file_name_is_kept() {
    let input = with_preface(&[frame(
        HEADERS,
        END_HEADERS,
        1,
        &indexing_request("csi.sock"),
    )]);
    let blocks = check_output(&run(&input).unwrap()).unwrap();
    assert_eq!(field(&blocks[0], ":authority"), b"csi.sock");
}

#[test]
fn valid_authorities_are_kept() {
    for authority in [
        "localhost",
        "example.org:8080",
        "127.0.0.1:443",
        "[::1]:8081",
    ] {
        let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &indexing_request(authority))]);
        let blocks = check_output(&run(&input).unwrap()).unwrap();
        assert_eq!(field(&blocks[0], ":authority"), authority.as_bytes());
    }
}

#[test]
fn dynamic_table_references_decode_across_requests() {
    // Request 2 is all references to the client's dynamic table: 64 = :path, 63 = :authority,
    // 62 = content-type (newest first).
    let second = [0x83, 0x86, 0xc0, 0xbf, 0xbe];
    let input = with_preface(&[
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &indexing_request("%2Ftmp%2Fx.sock"),
        ),
        frame(HEADERS, END_HEADERS | END_STREAM, 3, &second),
        frame(HEADERS, END_HEADERS | END_STREAM, 5, &second),
    ]);
    for step in [1, 7, input.len()] {
        let mut rewriter = AuthorityRewriter::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            buf.extend_from_slice(chunk);
            rewriter.process(&mut buf).unwrap();
            while let Some(b) = rewriter.next_output(5) {
                assert!(b.len() <= 5);
                out.extend_from_slice(&b);
            }
        }
        assert_eq!(rewriter.rewritten(), 3);
        let blocks = check_output(&out).unwrap();
        assert_eq!(blocks.len(), 3);
        for block in &blocks {
            assert_eq!(field(block, ":authority"), b"localhost");
            assert_eq!(field(block, ":path"), b"/grpc.health.v1.Health/Check");
            assert_eq!(field(block, "content-type"), b"application/grpc");
        }
    }
}

#[test]
fn huffman_and_indexed_blocks_of_rfc_7541_examples_decode() {
    // RFC 7541 C.4.1 and C.4.2: Huffman-coded literals, the second referencing the first.
    let first = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    let second = [
        0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
    ];
    let input = with_preface(&[
        frame(HEADERS, END_HEADERS, 1, &first),
        frame(HEADERS, END_HEADERS, 3, &second),
    ]);
    let blocks = check_output(&run(&input).unwrap()).unwrap();
    assert_eq!(field(&blocks[0], ":authority"), b"www.example.com");
    assert_eq!(field(&blocks[1], ":authority"), b"www.example.com");
    assert_eq!(field(&blocks[1], "cache-control"), b"no-cache");
}

#[test]
fn continuation_padding_and_priority_are_honoured() {
    let block = indexing_request("%2Fvar%2Frun%2Fcsi.sock");
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(20);
    let mut headers = vec![3]; // pad length
    headers.extend_from_slice(&[0x80, 0, 0, 7, 42]); // exclusive dependency on 7, weight 42
    headers.extend_from_slice(a);
    headers.extend_from_slice(&[0, 0, 0]); // padding
    let input = with_preface(&[
        frame(HEADERS, PADDED | PRIORITY | END_STREAM, 9, &headers),
        frame(CONTINUATION, 0, 9, b),
        frame(CONTINUATION, END_HEADERS, 9, c),
        frame(0x0, END_STREAM, 9, b"not here"), // DATA after END_STREAM: h2's business
    ]);
    for step in [1, 3, input.len()] {
        let out = run_chunked(&input, step).unwrap();
        let blocks = check_output(&out).unwrap();
        assert_eq!(field(&blocks[0], ":authority"), b"localhost");
        let headers = &out[24..];
        assert_eq!(headers[3], HEADERS);
        assert_eq!(headers[4], PRIORITY | END_STREAM | END_HEADERS);
        assert_eq!(&headers[9..14], &[0x80, 0, 0, 7, 42]);
        assert!(out.ends_with(&frame(0x0, END_STREAM, 9, b"not here")));
    }
}

#[test]
fn large_blocks_are_resplit_into_frames_of_at_most_16384_bytes() {
    let value = "v".repeat(40_000);
    let mut block = vec![0x83, 0x00];
    block.extend(lit("x-big"));
    // 40000 as a 7-bit-prefix integer: 127, then (40000 - 127) in 7-bit groups.
    block.extend([0x7f, 0xc1, 0xb7, 0x02]);
    block.extend_from_slice(value.as_bytes());
    let input = with_preface(&[frame(HEADERS, END_HEADERS, 1, &block)]);
    let out = run(&input).unwrap();
    let blocks = check_output(&out).unwrap();
    assert_eq!(field(&blocks[0], "x-big"), value.as_bytes());
    let mut kinds = Vec::new();
    let mut rest = &out[24..];
    while !rest.is_empty() {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        kinds.push(rest[3]);
        rest = &rest[FRAME_HEADER + len..];
    }
    assert_eq!(kinds, [HEADERS, CONTINUATION, CONTINUATION]);
}

#[test]
fn other_frames_pass_through_byte_for_byte() {
    let data = frame(0x0, 0, 1, &[7; 1000]);
    let input = with_preface(&[
        frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]),       // SETTINGS
        frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]), // PING
        frame(0x8, 0, 0, &[0, 1, 0, 0]),             // WINDOW_UPDATE
        data,
        frame(0x7, 0, 0, &[0; 8]), // GOAWAY
    ]);
    assert_eq!(run_chunked(&input, 13).unwrap(), input);
}

#[test]
fn passthrough_budget_covers_the_payload_of_a_forwarded_frame() {
    let mut rewriter = AuthorityRewriter::new();
    let mut buf = BytesMut::from(&with_preface(&[frame(0x0, 0, 1, &[1; 100])])[..33]);
    rewriter.process(&mut buf).unwrap();
    assert_eq!(rewriter.passthrough_left(), 0, "queued output goes first");
    while rewriter.next_output(usize::MAX).is_some() {}
    assert_eq!(rewriter.passthrough_left(), 100);
    rewriter.forwarded(60);
    assert_eq!(rewriter.passthrough_left(), 40);
}

#[test]
fn malformed_input_fails_and_stays_failed() {
    let headers = |payload: &[u8]| with_preface(&[frame(HEADERS, END_HEADERS, 1, payload)]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad preface", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "continuation first",
            with_preface(&[frame(CONTINUATION, END_HEADERS, 1, &[0x82])]),
        ),
        (
            "data inside a block",
            with_preface(&[frame(HEADERS, 0, 1, &[0x82]), frame(0x0, 0, 1, b"x")]),
        ),
        (
            "continuation on another stream",
            with_preface(&[
                frame(HEADERS, 0, 1, &[0x82]),
                frame(CONTINUATION, END_HEADERS, 3, &[0x84]),
            ]),
        ),
        (
            "headers on stream 0",
            with_preface(&[frame(HEADERS, END_HEADERS, 0, &[0x82])]),
        ),
        (
            "padding too long",
            with_preface(&[frame(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x82])]),
        ),
        (
            "priority too short",
            with_preface(&[frame(HEADERS, END_HEADERS | PRIORITY, 1, &[0, 0])]),
        ),
        (
            "push promise",
            with_preface(&[frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2])]),
        ),
        ("index 0", headers(&[0x80])),
        ("index past the tables", headers(&[0xbe])),
        ("truncated string", headers(&[0x00, 0x05, b'a'])),
        ("bad huffman", headers(&[0x00, 0x81, 0xff, 0x00])),
        ("table size above 4096", headers(&[0x3f, 0xe2, 0x1f, 0x82])),
        ("size update at end", headers(&[0x82, 0x20])),
    ];
    for (what, input) in cases {
        let mut rewriter = AuthorityRewriter::new();
        let mut buf = BytesMut::from(&input[..]);
        assert!(rewriter.process(&mut buf).is_err(), "{what}");
        assert!(
            rewriter.process(&mut BytesMut::from(&PREFACE[..])).is_err(),
            "{what}: stays failed"
        );
    }
}

#[test]
fn oversize_claims_fail_before_the_bytes_arrive() {
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(&[0xff, 0xff, 0xff, HEADERS, 0, 0, 0, 0, 1]);
    assert!(matches!(run(&input), Err(Error::HeaderBlockTooLarge(_))));
    // Fragments adding up past the limit.
    let mut frames = vec![frame(HEADERS, 0, 1, &[0x82; 16_000])];
    frames.extend((0..4).map(|_| frame(CONTINUATION, 0, 1, &[0x82; 16_000])));
    assert!(matches!(
        run(&with_preface(&frames)),
        Err(Error::HeaderBlockTooLarge(_))
    ));
}

#[test]
fn indexed_references_cannot_amplify_past_the_list_limit() {
    // One 3000-byte entry in the client's table, then a block of 100 one-byte references.
    let mut first = vec![0x40];
    first.extend(lit("x-a"));
    first.extend([0x7f, 0xb9, 0x16]); // 3000 = 127 + 2873
    first.extend(std::iter::repeat_n(b'a', 3000));
    let input = with_preface(&[
        frame(HEADERS, END_HEADERS, 1, &first),
        frame(HEADERS, END_HEADERS, 3, &[0xbe; 100]),
    ]);
    assert!(matches!(
        run(&input),
        Err(Error::HeaderBlockTooLarge(MAX_HEADER_LIST))
    ));
}

#[test]
fn arbitrary_bytes_never_panic_and_any_output_checks() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = with_preface(&[
        frame(HEADERS, END_HEADERS, 1, &indexing_request("%2Fx")),
        frame(HEADERS, END_HEADERS, 3, &[0x83, 0x86, 0xc0, 0xbf, 0xbe]),
    ]);
    for _ in 0..5000 {
        let mut input = valid.clone();
        for _ in 0..(next() % 4) {
            let at = (next() as usize) % input.len();
            input[at] = next() as u8;
        }
        input.truncate((next() as usize) % (input.len() + 1));
        if let Ok(out) = run_chunked(&input, (next() % 40) as usize + 1) {
            check_output(&out)
                .map_err(|e| format!("{e}: {input:?}"))
                .unwrap_or_default();
        }
    }
}
