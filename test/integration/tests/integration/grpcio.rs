//! An unmodified Python grpcio client (gRPC C-core, which sends the socket path as
//! `:authority`) calls spire-server's admin socket: Entry, Bundle and Agent services.

use spire_integration_tests::ServerBuilder;
use spire_proto::spire::api::server::entry::v1::BatchCreateEntryRequest;
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_calls_the_admin_socket() {
    let server = ServerBuilder::new().start().await.unwrap();
    let id = |path: &str| Spiffeid {
        trust_domain: server.trust_domain().to_owned(),
        path: path.to_owned(),
    };
    server
        .entries()
        .await
        .unwrap()
        .batch_create_entry(BatchCreateEntryRequest {
            entries: vec![Entry {
                spiffe_id: Some(id("/workload")),
                parent_id: Some(id("/node")),
                selectors: vec![Selector {
                    r#type: "unix".to_owned(),
                    value: "uid:1000".to_owned(),
                }],
                ..Default::default()
            }],
            output_mask: None,
        })
        .await
        .unwrap();

    // Requests are empty messages; answers are checked at the protobuf byte level so the
    // client needs nothing but grpcio.
    let script = r#"
import sys
try:
    import grpc
except ImportError:
    sys.exit(3)
channel = grpc.insecure_channel("unix://" + sys.argv[1])
def call(method):
    return channel.unary_unary(method)(b"", timeout=10)
# CountEntriesResponse{count: 1}
assert call("/spire.api.server.entry.v1.Entry/CountEntries") == b"\x08\x01", "CountEntries"
# Bundle{trust_domain: <td>, ...}: field 1 first
bundle = call("/spire.api.server.bundle.v1.Bundle/GetBundle")
td = sys.argv[2].encode()
assert bundle.startswith(b"\x0a" + bytes([len(td)]) + td), bundle[:40]
# CountAgentsResponse{count: 0}: the empty message
assert call("/spire.api.server.agent.v1.Agent/CountAgents") == b"", "CountAgents"
print("ok")
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.py");
    std::fs::write(&path, script).unwrap();
    let output = match tokio::process::Command::new("python3")
        .arg(&path)
        .arg(server.socket_path())
        .arg(server.trust_domain())
        .output()
        .await
    {
        Ok(output) => output,
        Err(e) => return spire_test::skip(&format!("python3 not runnable: {e}")),
    };
    if output.status.code() == Some(3) {
        return spire_test::skip("python3 has no grpc module (pip install grpcio)");
    }
    assert!(
        output.status.success(),
        "grpcio against the admin socket: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
