//! `grpc.health.v1.Health` on the admin socket answers SPIRE's question: is the server's own
//! bundle readable?
#![allow(clippy::unwrap_used)]

mod support;

use spire_proto::health::pb::{HealthCheckRequest, health_client::HealthClient};
use spire_server_datastore::BundleDeleteMode;
use support::Harness;
use tonic::Code;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

async fn check(h: &Harness, service: &str) -> Result<i32, tonic::Status> {
    HealthClient::new(h.channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn serving_while_the_bundle_is_readable_and_not_serving_once_it_is_gone() {
    let h = Harness::start().await;
    assert_eq!(check(&h, "").await.unwrap(), SERVING);

    h.ds.delete_bundle(&h.td(), BundleDeleteMode::Restrict)
        .await
        .unwrap();
    assert_eq!(
        check(&h, "").await.unwrap(),
        NOT_SERVING,
        "SPIRE: \"bundle is missing\""
    );
}

#[tokio::test]
async fn per_service_health_is_refused_as_in_spire() {
    let h = Harness::start().await;
    let error = check(&h, "spire.api.server.bundle.v1.Bundle")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(error.message(), "per-service health is not supported");
}

#[tokio::test]
async fn watch_is_unimplemented_as_in_spire() {
    let h = Harness::start().await;
    let error = HealthClient::new(h.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    assert_eq!(error.message(), "method Watch not implemented");
}
