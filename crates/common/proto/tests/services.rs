//! The generated services are usable as-is: names and gRPC paths are SPIRE's, a tonic server and
//! client built from them talk to each other, and the exported descriptor set is complete.

use std::collections::BTreeSet;

use prost::Message as _;
use spire_proto::spire::api::server;
use spire_proto::spire::api::types::Spiffeid;
use spire_proto::{health, workload};
use tonic::{Request, Response, Status};

#[test]
fn service_names_are_spires() {
    let names = [
        server::agent::v1::agent_server::SERVICE_NAME,
        server::bundle::v1::bundle_server::SERVICE_NAME,
        server::debug::v1::debug_server::SERVICE_NAME,
        server::entry::v1::entry_server::SERVICE_NAME,
        server::localauthority::v1::local_authority_server::SERVICE_NAME,
        server::logger::v1::logger_server::SERVICE_NAME,
        server::svid::v1::svid_server::SERVICE_NAME,
        server::trustdomain::v1::trust_domain_server::SERVICE_NAME,
        workload::spiffe_workload_api_server::SERVICE_NAME,
        health::pb::health_server::SERVICE_NAME,
    ];
    assert_eq!(
        names,
        [
            "spire.api.server.agent.v1.Agent",
            "spire.api.server.bundle.v1.Bundle",
            "spire.api.server.debug.v1.Debug",
            "spire.api.server.entry.v1.Entry",
            "spire.api.server.localauthority.v1.LocalAuthority",
            "spire.api.server.logger.v1.Logger",
            "spire.api.server.svid.v1.SVID",
            "spire.api.server.trustdomain.v1.TrustDomain",
            "SpiffeWorkloadAPI",
            "grpc.health.v1.Health",
        ]
    );
}

#[test]
fn descriptor_set_is_self_contained() {
    let fds = prost_types::FileDescriptorSet::decode(spire_proto::FILE_DESCRIPTOR_SET)
        .expect("valid descriptor set");
    let names: BTreeSet<&str> = fds.file.iter().map(|f| f.name()).collect();
    // Every import is in the set, so reflection can serve it without other sources.
    for file in &fds.file {
        for dep in &file.dependency {
            assert!(
                names.contains(dep.as_str()),
                "{} imports missing {dep}",
                file.name()
            );
        }
        assert!(file.source_code_info.is_none(), "source info is stripped");
    }
    assert!(names.contains("workload.proto"));
    assert!(names.contains("spire/api/server/entry/v1/entry.proto"));
}

struct FixedDebug;

#[tonic::async_trait]
impl server::debug::v1::debug_server::Debug for FixedDebug {
    async fn get_info(
        &self,
        _req: Request<server::debug::v1::GetInfoRequest>,
    ) -> Result<Response<server::debug::v1::GetInfoResponse>, Status> {
        Ok(Response::new(server::debug::v1::GetInfoResponse {
            svid_chain: vec![server::debug::v1::get_info_response::Cert {
                id: Some(Spiffeid {
                    trust_domain: "example.org".into(),
                    path: "/spire/server".into(),
                }),
                expires_at: 42,
                subject: "O=SPIRE".into(),
            }],
            uptime: 7,
            agents_count: 1,
            federated_bundles_count: 2,
            entries_count: 3,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn generated_server_and_client_interoperate() {
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
    let addr = incoming.local_addr().expect("local addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server::debug::v1::debug_server::DebugServer::new(
                FixedDebug,
            ))
            .serve_with_incoming(incoming),
    );

    let mut client =
        server::debug::v1::debug_client::DebugClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
    let info = client
        .get_info(server::debug::v1::GetInfoRequest {})
        .await
        .expect("GetInfo")
        .into_inner();
    assert_eq!(info.entries_count, 3);
    assert_eq!(info.svid_chain[0].subject, "O=SPIRE");

    // A service that is not registered answers Unimplemented, as SPIRE's UDS-only services do
    // on TCP.
    let mut logger =
        server::logger::v1::logger_client::LoggerClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
    let err = logger
        .get_logger(server::logger::v1::GetLoggerRequest {})
        .await
        .expect_err("not served");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.abort();
}
