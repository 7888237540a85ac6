#![allow(clippy::unwrap_used)]
//! A tonic server behind the adapter accepts what gRPC C-core clients send as `:authority`;
//! the same server on a plain Unix listener resets those streams.

use std::path::Path;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Connected as _;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `HealthCheckResponse { status: SERVING }` as a gRPC message.
const SERVING: &[u8] = &[0, 0, 0, 0, 2, 0x08, 0x01];

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// Response message and `grpc-status`.
    Answered(Vec<u8>, Vec<u8>),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY or EOF before an answer.
    Closed,
}

/// Serves grpc.health.v1 on `path`, through the adapter or on the plain listener.
fn serve(path: &Path, adapted: bool) {
    let listener = spire_uds::bind(path, 0o755, 0o777).unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let router = tonic::transport::Server::builder().add_service(health);
    tokio::spawn(async move {
        if adapted {
            router
                .serve_with_incoming(spire_uds::incoming(listener))
                .await
        } else {
            router
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await
        }
    });
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A hand-written HTTP/2 client: one Health/Check per stream id in `streams`, all with
/// `authority`, its HPACK encoder indexing headers (so later requests reference the table).
async fn health_checks(path: &Path, authority: &str, streams: &[u32]) -> Vec<Outcome> {
    let mut conn = UnixStream::connect(path).await.unwrap();
    let mut encoder = loona_hpack::Encoder::new();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for &id in streams {
        let block = encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/grpc.health.v1.Health/Check"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]);
        out.extend(frame(0x1, 0x4, id, &block));
        out.extend(frame(0x0, 0x1, id, &[0, 0, 0, 0, 0]));
    }
    conn.write_all(&out).await.unwrap();

    let mut decoder = loona_hpack::Decoder::new();
    let mut outcomes: Vec<Option<Outcome>> = streams.iter().map(|_| None).collect();
    let mut messages: Vec<Vec<u8>> = streams.iter().map(|_| Vec::new()).collect();
    while outcomes.iter().any(Option::is_none) {
        let mut header = [0u8; 9];
        if conn.read_exact(&mut header).await.is_err() {
            break;
        }
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let id = u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload).await.unwrap();
        let slot = streams.iter().position(|&s| s == id);
        match (header[3], slot) {
            (0x4, _) if header[4] & 0x1 == 0 => {
                conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap()
            }
            (0x0, Some(i)) => messages[i].extend_from_slice(&payload),
            (0x1, Some(i)) => {
                let fields = decoder.decode(&payload).unwrap(); // the server sends no CONTINUATION here
                if let Some((_, status)) = fields.iter().find(|(n, _)| n == b"grpc-status") {
                    outcomes[i] = Some(Outcome::Answered(
                        std::mem::take(&mut messages[i]),
                        status.clone(),
                    ));
                }
            }
            (0x3, Some(i)) => {
                outcomes[i] = Some(Outcome::Reset(u32::from_be_bytes(
                    payload[..4].try_into().unwrap(),
                )))
            }
            (0x7, _) => break,
            _ => {}
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Closed))
        .collect()
}

#[tokio::test]
async fn percent_encoded_authority_is_served_through_the_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("public/api.sock");
    serve(&path, true);
    let authority = "%2Ftmp%2Fspire-agent%2Fpublic%2Fapi.sock";
    // Three requests on one connection: the later ones are dynamic-table references.
    let outcomes = health_checks(&path, authority, &[1, 3, 5]).await;
    for outcome in outcomes {
        assert_eq!(outcome, Outcome::Answered(SERVING.to_vec(), b"0".to_vec()));
    }
    // A valid authority still works.
    let outcomes = health_checks(&path, "localhost", &[1]).await;
    assert_eq!(
        outcomes,
        [Outcome::Answered(SERVING.to_vec(), b"0".to_vec())]
    );
}

/// What a kubelet before 1.26 sends on a CSI plugin socket: the socket path itself,
/// verbatim, as `:authority` (and a bare file name, which h2 accepts anyway).
#[tokio::test]
async fn raw_socket_path_authority_is_served_through_the_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("plugins/csi.spiffe.io/csi.sock");
    serve(&path, true);
    let raw = path.to_str().unwrap();
    let answered = Outcome::Answered(SERVING.to_vec(), b"0".to_vec());
    let outcomes = health_checks(&path, raw, &[1, 3]).await;
    assert_eq!(outcomes, [answered.clone(), answered.clone()]);
    let outcomes = health_checks(&path, "csi.sock", &[1]).await;
    assert_eq!(outcomes, [answered]);

    // Without the adapter h2 resets the raw path.
    let plain = tmp.path().join("plain/csi.sock");
    serve(&plain, false);
    let outcomes = health_checks(&plain, plain.to_str().unwrap(), &[1]).await;
    assert_eq!(outcomes, [Outcome::Reset(0x1)], "PROTOCOL_ERROR");
}

#[tokio::test]
async fn plain_tonic_listener_resets_the_same_request() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("api.sock");
    serve(&path, false);
    let outcomes = health_checks(&path, "%2Ftmp%2Fspire-agent%2Fpublic%2Fapi.sock", &[1]).await;
    assert_eq!(outcomes, [Outcome::Reset(0x1)], "PROTOCOL_ERROR");
}

#[tokio::test]
async fn garbage_closes_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("api.sock");
    serve(&path, true);
    let mut conn = UnixStream::connect(&path).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x1, 0x4, 1, &[0x80])); // HPACK index 0
    conn.write_all(&out).await.unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap(); // returns once the server closes
    // And the listener keeps serving others.
    let outcomes = health_checks(&path, "%2Fx", &[1]).await;
    assert_eq!(
        outcomes,
        [Outcome::Answered(SERVING.to_vec(), b"0".to_vec())]
    );
}

#[tokio::test]
async fn connect_info_carries_peer_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&probe).unwrap());
    let (server, _client) = UnixStream::pair().unwrap();
    let conn = spire_uds::FixedConn::new(server);
    let cred = conn.connect_info().peer_cred.unwrap();
    assert_eq!(cred.uid(), uid);
    assert_eq!(cred.pid(), Some(std::process::id() as i32));
}

/// The unmodified grpcio client (what py-spiffe is built on) against both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_needs_and_gets_the_adapter() {
    let script = r#"
import sys
try:
    import grpc
except ImportError:
    sys.exit(3)
channel = grpc.insecure_channel("unix://" + sys.argv[1])
check = channel.unary_unary("/grpc.health.v1.Health/Check")
try:
    answer = check(b"", timeout=10)
except grpc.RpcError as e:
    print("rpc error:", e.code(), e.details())
    sys.exit(1)
sys.exit(0 if answer == b"\x08\x01" else 2)
"#;
    let tmp = tempfile::tempdir().unwrap();
    let script_path = tmp.path().join("check.py");
    std::fs::write(&script_path, script).unwrap();
    let run = |socket: std::path::PathBuf| {
        let script_path = script_path.clone();
        async move {
            tokio::process::Command::new("python3")
                .arg(&script_path)
                .arg(&socket)
                .output()
                .await
        }
    };
    let fixed = tmp.path().join("fixed/api.sock");
    let plain = tmp.path().join("plain/api.sock");
    serve(&fixed, true);
    serve(&plain, false);
    let output = match run(fixed).await {
        Err(e) => return spire_test::skip(&format!("python3 not runnable: {e}")),
        Ok(o) if o.status.code() == Some(3) => {
            return spire_test::skip(
                "python3 has no grpc module (pip install grpcio spiffe==0.3.2)",
            );
        }
        Ok(o) => o,
    };
    let say = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        output.status.success(),
        "through the adapter: {}",
        say(&output)
    );
    let output = run(plain).await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "without the adapter: {}",
        say(&output)
    );
}
