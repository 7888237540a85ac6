//! TrustDomain service over a real server: federation relationship CRUD with SPIRE's codes
//! and messages, per-item batch results, masks, the bundle an `https_spiffe` relationship
//! carries, the change feed, and RefreshBundle with and without a refresher.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod crud;
mod refresh;
mod update;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spire_id::TrustDomain;
use spire_proto::spire::api::server::bundle::v1::{
    GetFederatedBundleRequest, bundle_client::BundleClient,
};
use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipRequest, BatchDeleteFederationRelationshipRequest,
    BatchUpdateFederationRelationshipRequest, GetFederationRelationshipRequest,
    ListFederationRelationshipsRequest, RefreshBundleRequest,
    batch_delete_federation_relationship_response as delete,
    trust_domain_client::TrustDomainClient,
};
use spire_proto::spire::api::types::{
    self, FederationRelationship, FederationRelationshipMask, HttpsWebProfile, HttpsspiffeProfile,
    federation_relationship::BundleEndpointProfile as Profile,
};
use spire_server_api::BundleRefresher;
use support::{Harness, ca_cert};
use tonic::Code;
use tonic::transport::Channel;

fn client(h: &Harness) -> TrustDomainClient<Channel> {
    TrustDomainClient::new(h.channel.clone())
}

fn web(td: &str, url: &str) -> FederationRelationship {
    FederationRelationship {
        trust_domain: td.into(),
        bundle_endpoint_url: url.into(),
        bundle_endpoint_profile: Some(Profile::HttpsWeb(HttpsWebProfile {})),
        trust_domain_bundle: None,
    }
}

fn spiffe(
    td: &str,
    url: &str,
    endpoint: &str,
    bundle: Option<types::Bundle>,
) -> FederationRelationship {
    FederationRelationship {
        trust_domain: td.into(),
        bundle_endpoint_url: url.into(),
        bundle_endpoint_profile: Some(Profile::HttpsSpiffe(HttpsspiffeProfile {
            endpoint_spiffe_id: endpoint.into(),
        })),
        trust_domain_bundle: bundle,
    }
}

fn bundle(td: &str) -> types::Bundle {
    types::Bundle {
        trust_domain: td.into(),
        x509_authorities: vec![types::X509Certificate {
            asn1: ca_cert(td),
            tainted: false,
        }],
        refresh_hint: 60,
        sequence_number: 42,
        ..Default::default()
    }
}

fn statuses(results: impl IntoIterator<Item = Option<types::Status>>) -> Vec<(Code, String)> {
    results
        .into_iter()
        .map(|s| {
            let s = s.unwrap();
            (Code::from(s.code), s.message)
        })
        .collect()
}

fn ok() -> (Code, String) {
    (Code::Ok, "OK".into())
}

fn invalid(message: &str) -> (Code, String) {
    (Code::InvalidArgument, message.into())
}

async fn create(h: &Harness, items: Vec<FederationRelationship>) -> Vec<(Code, String)> {
    let resp = client(h)
        .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
            federation_relationships: items,
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    statuses(resp.results.into_iter().map(|r| r.status))
}

async fn get(h: &Harness, td: &str) -> Result<FederationRelationship, tonic::Status> {
    client(h)
        .get_federation_relationship(GetFederationRelationshipRequest {
            trust_domain: td.into(),
            output_mask: None,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn list(h: &Harness, page_size: i32, token: &str) -> (Vec<String>, String) {
    let resp = client(h)
        .list_federation_relationships(ListFederationRelationshipsRequest {
            output_mask: None,
            page_size,
            page_token: token.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names = resp
        .federation_relationships
        .into_iter()
        .map(|f| f.trust_domain)
        .collect();
    (names, resp.next_page_token)
}

async fn update(
    h: &Harness,
    items: Vec<FederationRelationship>,
    input_mask: Option<FederationRelationshipMask>,
) -> Vec<(Code, String, Option<FederationRelationship>)> {
    client(h)
        .batch_update_federation_relationship(BatchUpdateFederationRelationshipRequest {
            federation_relationships: items,
            input_mask,
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|r| {
            let s = r.status.unwrap();
            (Code::from(s.code), s.message, r.federation_relationship)
        })
        .collect()
}
