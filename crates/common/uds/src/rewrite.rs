//! The sans-IO core of the `:authority` adapter: client bytes in, bytes for h2 out.

use std::collections::VecDeque;

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::Error;
use crate::hpack::encode_field;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// What replaces an `:authority` that the `http` crate would reject (a percent-encoded or raw
/// socket path, or anything else h2 would reset the stream for).
const LOCALHOST: &[u8] = b"localhost";
/// The client's view of our HPACK decoder table: SETTINGS_HEADER_TABLE_SIZE's default
/// (RFC 9113 §6.5.2). Neither tonic nor hyper's server changes it, so a client may never size
/// its dynamic table above this; a larger size update is a decoding error.
const CLIENT_TABLE_SIZE: usize = 4096;

/// Largest frame we hand to h2. 16384 is SETTINGS_MAX_FRAME_SIZE's initial value and the
/// smallest a peer may advertise (RFC 9113 §6.5.2), so h2 accepts it whatever it was told
/// (tonic leaves `max_frame_size` unset and hyper's server uses 16 KiB).
pub const OUT_FRAME_SIZE: usize = 16_384;
/// Largest header block accepted from a client, all fragments together (bytes on the wire).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest decoded header list (RFC 9113 §6.5.2 size: name + value + 32 per field); bounds
/// what a small block of indexed references can expand to. hyper's server refuses lists above
/// 16 KiB itself, so this limit only guards the adapter.
pub const MAX_HEADER_LIST: usize = 64 * 1024;

/// A decoded header block: (name, value) pairs in wire order.
pub type HeaderList = Vec<(Vec<u8>, Vec<u8>)>;

/// Rewrites a client's HTTP/2 byte stream for h2.
///
/// The preface and every frame pass through unchanged, except header blocks (HEADERS and
/// CONTINUATION, PADDED and PRIORITY honoured): each is decoded with a full HPACK decoder
/// that tracks the client's dynamic table, an `:authority` the `http` crate rejects becomes
/// `localhost`, and the block is re-encoded without the dynamic table and re-split into
/// frames of at most [`OUT_FRAME_SIZE`] bytes. Other frames are forwarded as they arrive,
/// never buffered whole. After an error the connection must be closed; the rewriter stays
/// failed.
pub struct AuthorityRewriter {
    /// Bytes of the connection preface still expected.
    preface_left: usize,
    /// Payload bytes of a forwarded frame not yet seen.
    passthrough_left: usize,
    /// A header block waiting for CONTINUATION frames.
    block: Option<PendingBlock>,
    decoder: loona_hpack::Decoder<'static>,
    output: VecDeque<Bytes>,
    rewritten: u64,
    failed: bool,
}

struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: BytesMut,
}

// === impl AuthorityRewriter ===

impl AuthorityRewriter {
    /// A rewriter for a new connection, expecting the connection preface first.
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(CLIENT_TABLE_SIZE);
        Self {
            preface_left: PREFACE.len(),
            passthrough_left: 0,
            block: None,
            decoder,
            output: VecDeque::new(),
            rewritten: 0,
            failed: false,
        }
    }

    /// Consumes what it can of `input` (client bytes), queueing bytes for h2. Bytes of an
    /// incomplete header frame stay in `input` until more arrive. Forwarded bytes are split off
    /// `input` without copying.
    pub fn process(&mut self, input: &mut BytesMut) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Frame("connection already failed"));
        }
        let result = self.process_inner(input);
        self.failed = result.is_err();
        result
    }

    /// The next bytes for h2, at most `max` of them (the rest stays queued).
    pub fn next_output(&mut self, max: usize) -> Option<Bytes> {
        let front = self.output.front_mut()?;
        if front.len() > max {
            return Some(front.split_to(max));
        }
        self.output.pop_front()
    }

    /// Payload bytes of the frame being forwarded that have not arrived yet. While this is
    /// non-zero and no client bytes are buffered, a reader may hand that many bytes straight
    /// to h2 and report them with [`Self::forwarded`].
    pub fn passthrough_left(&self) -> usize {
        if self.failed || !self.output.is_empty() {
            0
        } else {
            self.passthrough_left
        }
    }

    /// Records `n` payload bytes forwarded directly (at most [`Self::passthrough_left`]).
    pub fn forwarded(&mut self, n: usize) {
        self.passthrough_left = self.passthrough_left.saturating_sub(n);
    }

    /// How many `:authority` values were replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    fn process_inner(&mut self, input: &mut BytesMut) -> Result<(), Error> {
        loop {
            if self.preface_left > 0 {
                let n = self.preface_left.min(input.len());
                if n == 0 {
                    return Ok(());
                }
                let offset = PREFACE.len() - self.preface_left;
                if input[..n] != PREFACE[offset..offset + n] {
                    return Err(Error::Preface);
                }
                self.output.push_back(input.split_to(n).freeze());
                self.preface_left -= n;
                continue;
            }
            if self.passthrough_left > 0 {
                let n = self.passthrough_left.min(input.len());
                if n == 0 {
                    return Ok(());
                }
                self.output.push_back(input.split_to(n).freeze());
                self.passthrough_left -= n;
                continue;
            }
            let Some(header) = input.get(..FRAME_HEADER) else {
                return Ok(());
            };
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let (kind, flags) = (header[3], header[4]);
            let stream_id =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            match kind {
                HEADERS | CONTINUATION => {
                    if len > MAX_HEADER_BLOCK {
                        return Err(Error::HeaderBlockTooLarge(MAX_HEADER_BLOCK));
                    }
                    if input.len() < FRAME_HEADER + len {
                        return Ok(()); // wait for the rest; bounded by MAX_HEADER_BLOCK
                    }
                    let frame = input.split_to(FRAME_HEADER + len);
                    self.header_frame(kind, flags, stream_id, &frame[FRAME_HEADER..])?;
                }
                PUSH_PROMISE => return Err(Error::Frame("PUSH_PROMISE from a client")),
                _ => {
                    if self.block.is_some() {
                        return Err(Error::Frame("expected CONTINUATION"));
                    }
                    self.output.push_back(input.split_to(FRAME_HEADER).freeze());
                    self.passthrough_left = len;
                }
            }
        }
    }

    fn header_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> Result<(), Error> {
        if kind == HEADERS {
            if self.block.is_some() {
                return Err(Error::Frame("expected CONTINUATION"));
            }
            if stream_id == 0 {
                return Err(Error::Frame("HEADERS on stream 0"));
            }
            let mut rest = payload;
            let pad = if flags & PADDED != 0 {
                let (&pad, tail) = rest
                    .split_first()
                    .ok_or(Error::Frame("PADDED without pad length"))?;
                rest = tail;
                usize::from(pad)
            } else {
                0
            };
            let priority = if flags & PRIORITY != 0 {
                let (fields, tail) = rest
                    .split_first_chunk::<5>()
                    .ok_or(Error::Frame("PRIORITY fields missing"))?;
                rest = tail;
                Some(*fields)
            } else {
                None
            };
            let fragment_len = rest
                .len()
                .checked_sub(pad)
                .ok_or(Error::Frame("padding exceeds payload"))?;
            self.block = Some(PendingBlock {
                stream_id,
                end_stream: flags & END_STREAM != 0,
                priority,
                fragment: BytesMut::from(&rest[..fragment_len]),
            });
        } else {
            let block = self
                .block
                .as_mut()
                .ok_or(Error::Frame("CONTINUATION without HEADERS"))?;
            if block.stream_id != stream_id {
                return Err(Error::Frame("CONTINUATION on another stream"));
            }
            if block.fragment.len() + payload.len() > MAX_HEADER_BLOCK {
                return Err(Error::HeaderBlockTooLarge(MAX_HEADER_BLOCK));
            }
            block.fragment.extend_from_slice(payload);
        }
        if flags & END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            self.emit(block)?;
        }
        Ok(())
    }

    /// Decodes a complete block with the client's table state, fixes `:authority`, re-encodes
    /// and queues it as HEADERS + CONTINUATION frames.
    fn emit(&mut self, block: PendingBlock) -> Result<(), Error> {
        let mut encoded = BytesMut::with_capacity(block.fragment.len() + 64);
        let mut list_size = 0usize;
        let mut rewritten = 0;
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                list_size = list_size.saturating_add(name.len() + value.len() + 32);
                if list_size > MAX_HEADER_LIST {
                    return; // reported below; stop growing the output
                }
                if &name[..] == b":authority" && http::uri::Authority::try_from(&value[..]).is_err()
                {
                    rewritten += 1;
                    encode_field(&mut encoded, &name, LOCALHOST);
                } else {
                    encode_field(&mut encoded, &name, &value);
                }
            })
            .map_err(|e| Error::Hpack(format!("{e:?}")))?;
        if list_size > MAX_HEADER_LIST {
            return Err(Error::HeaderBlockTooLarge(MAX_HEADER_LIST));
        }
        self.rewritten += rewritten;
        self.output.push_back(frame_block(&block, encoded));
        Ok(())
    }
}

impl Default for AuthorityRewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AuthorityRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityRewriter")
            .field("preface_left", &self.preface_left)
            .field("passthrough_left", &self.passthrough_left)
            .field("block_pending", &self.block.is_some())
            .field("queued", &self.output.len())
            .field("rewritten", &self.rewritten)
            .field("failed", &self.failed)
            .finish()
    }
}

/// Splits an encoded block into one HEADERS frame (END_STREAM and PRIORITY kept, no padding)
/// and as many CONTINUATION frames as needed, each at most [`OUT_FRAME_SIZE`] long.
fn frame_block(block: &PendingBlock, mut encoded: BytesMut) -> Bytes {
    let frames = encoded.len() / OUT_FRAME_SIZE + 1;
    let mut out = BytesMut::with_capacity(encoded.len() + frames * FRAME_HEADER + 5);
    let mut kind = HEADERS;
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    let mut priority = block.priority;
    loop {
        let room = OUT_FRAME_SIZE - if priority.is_some() { 5 } else { 0 };
        let chunk = encoded.split_to(room.min(encoded.len()));
        if encoded.is_empty() {
            flags |= END_HEADERS;
        }
        if priority.is_some() {
            flags |= PRIORITY;
        }
        let len = chunk.len() + if priority.is_some() { 5 } else { 0 };
        out.put_uint(len as u64, 3); // ≤ OUT_FRAME_SIZE
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(block.stream_id);
        if let Some(fields) = priority.take() {
            out.extend_from_slice(&fields);
        }
        out.extend_from_slice(&chunk);
        if encoded.is_empty() {
            return out.freeze();
        }
        kind = CONTINUATION;
        flags = 0;
    }
}

/// Checks bytes produced by an [`AuthorityRewriter`]: the preface, then well-formed frames;
/// every header frame at most [`OUT_FRAME_SIZE`] bytes and unpadded; every header block
/// decodes with a *fresh* HPACK decoder (so none uses the dynamic table) and carries no
/// `:authority` that the `http` crate rejects. A trailing forwarded frame may be incomplete.
/// Returns the decoded header blocks. For tests and the fuzz target.
pub fn check_output(output: &[u8]) -> Result<Vec<HeaderList>, String> {
    let mut rest = output.strip_prefix(&PREFACE[..]).ok_or("missing preface")?;
    let mut blocks = Vec::new();
    let mut pending: Option<(u32, Vec<u8>)> = None;
    while !rest.is_empty() {
        let header = rest.get(..FRAME_HEADER).ok_or("truncated frame header")?;
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
            if kind == HEADERS || kind == CONTINUATION {
                return Err("truncated header frame".into());
            }
            break; // forwarded frame still arriving
        };
        rest = &rest[FRAME_HEADER + len..];
        match kind {
            HEADERS | CONTINUATION => {
                if len > OUT_FRAME_SIZE || flags & PADDED != 0 {
                    return Err(format!("header frame of {len} bytes, flags {flags:#x}"));
                }
                let fragment = match (kind, pending.take()) {
                    (HEADERS, None) if flags & PRIORITY != 0 => (
                        stream_id,
                        payload.get(5..).ok_or("short priority")?.to_vec(),
                    ),
                    (HEADERS, None) => (stream_id, payload.to_vec()),
                    (CONTINUATION, Some((id, mut block))) if id == stream_id => {
                        block.extend_from_slice(payload);
                        (id, block)
                    }
                    _ => return Err("header frame out of sequence".into()),
                };
                if flags & END_HEADERS == 0 {
                    pending = Some(fragment);
                    continue;
                }
                let fields = loona_hpack::Decoder::new()
                    .decode(&fragment.1)
                    .map_err(|e| format!("{e:?}"))?;
                for (name, value) in &fields {
                    if name == b":authority" && http::uri::Authority::try_from(&value[..]).is_err()
                    {
                        return Err(format!("authority {value:?} left in place"));
                    }
                }
                blocks.push(fields);
            }
            _ if pending.is_some() => return Err("frame inside a header block".into()),
            _ => {}
        }
    }
    if pending.is_some() {
        return Err("header block without END_HEADERS".into());
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests;
