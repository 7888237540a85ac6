//! Kubelets before 1.26 dial the CSI socket with grpc-go's passthrough resolver and send the
//! socket path itself as `:authority`. No tonic client can send that (the `http` crate rejects
//! it), so this is a hand-written HTTP/2 client.

use std::path::Path;
use std::sync::Arc;

use prost::Message as _;
use spiffe_csi::proto::v1::GetPluginInfoResponse;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::support::{Harness, PLUGIN_NAME, RecordingMounter};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// How the server answered one unary call.
#[derive(Debug, PartialEq)]
enum Answer {
    /// The gRPC message (without its 5-byte prefix) and `grpc-status`.
    Message(Vec<u8>, String),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY or EOF first.
    Closed,
}

/// Calls `/csi.v1.Identity/GetPluginInfo` on stream 1 with `authority` as `:authority`.
async fn get_plugin_info(socket: &Path, authority: &str) -> Answer {
    let mut conn = UnixStream::connect(socket).await.unwrap();
    let block = loona_hpack::Encoder::new().encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/csi.v1.Identity/GetPluginInfo"),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]);
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_HEADERS, 1, &block));
    out.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0])); // an empty request message
    conn.write_all(&out).await.unwrap();

    let mut decoder = loona_hpack::Decoder::new();
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 9];
        if conn.read_exact(&mut header).await.is_err() {
            return Answer::Closed;
        }
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let stream = u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload).await.unwrap();
        match (header[3], stream) {
            (SETTINGS, 0) if header[4] & ACK == 0 => {
                conn.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            }
            (DATA, 1) => body.extend_from_slice(&payload),
            (HEADERS, 1) => {
                // The server sends no CONTINUATION for headers this small.
                let fields = decoder.decode(&payload).unwrap();
                if let Some((_, status)) = fields.iter().find(|(n, _)| n == b"grpc-status") {
                    let message = body.get(5..).unwrap_or_default().to_vec();
                    return Answer::Message(message, String::from_utf8(status.clone()).unwrap());
                }
            }
            (RST_STREAM, 1) => {
                return Answer::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
            (GOAWAY, _) => return Answer::Closed,
            _ => {}
        }
    }
}

fn plugin_name(answer: Answer) -> String {
    match answer {
        Answer::Message(message, status) => {
            assert_eq!(status, "0");
            GetPluginInfoResponse::decode(&message[..]).unwrap().name
        }
        other => panic!("no answer: {other:?}"),
    }
}

#[tokio::test]
async fn raw_socket_path_as_authority_is_served() {
    let h = Harness::start(Arc::new(RecordingMounter::default())).await;
    // What the registrar is told to advertise, and what the driver itself listens on.
    for authority in [
        "/var/lib/kubelet/plugins/csi.spiffe.io/csi.sock",
        h.csi_socket.to_str().unwrap(),
        "csi.sock",
        "localhost",
    ] {
        let answer = get_plugin_info(&h.csi_socket, authority).await;
        assert_eq!(plugin_name(answer), PLUGIN_NAME, "{authority}");
    }
}
