//! `trust_domain.tsv`: federation relationships (BatchCreate/BatchUpdate/BatchDelete/Get).
//! Batch rows send the bad item beside a good one.

use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipRequest, BatchDeleteFederationRelationshipRequest,
    BatchUpdateFederationRelationshipRequest, GetFederationRelationshipRequest,
    ListFederationRelationshipsRequest, trust_domain_client::TrustDomainClient,
};
use spire_proto::spire::api::types::{
    self, FederationRelationship, HttpsWebProfile, HttpsspiffeProfile,
    federation_relationship::BundleEndpointProfile as Profile,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::check_revision;
use crate::revision;
use crate::support::{Harness, ca_cert};
use crate::table::{self, Input, Outcome, Row, Tally};

fn web(td: &str, url: &str) -> FederationRelationship {
    FederationRelationship {
        trust_domain: td.into(),
        bundle_endpoint_url: url.into(),
        bundle_endpoint_profile: Some(Profile::HttpsWeb(HttpsWebProfile {})),
        trust_domain_bundle: None,
    }
}

fn bundle(td: &str) -> types::Bundle {
    types::Bundle {
        trust_domain: td.into(),
        x509_authorities: vec![types::X509Certificate {
            asn1: ca_cert(td),
            tainted: false,
        }],
        ..Default::default()
    }
}

/// A relationship from the row: `trust_domain`, `url` (default `https://<td>`), `profile`
/// (`https_web` default, `https_spiffe`, or `null`), `endpoint_spiffe_id`, `bundle_td`.
fn relationship(input: &mut Input) -> FederationRelationship {
    let td = input.string("trust_domain").unwrap_or_default();
    let url = input
        .string("url")
        .unwrap_or_else(|| format!("https://{td}"));
    let mut r = web(&td, &url);
    match input.take("profile") {
        None => {}
        Some(serde_json::Value::Null) => r.bundle_endpoint_profile = None,
        Some(p) if p == "https_web" => {}
        Some(p) if p == "https_spiffe" => {
            r.bundle_endpoint_profile = Some(Profile::HttpsSpiffe(HttpsspiffeProfile {
                endpoint_spiffe_id: input.string("endpoint_spiffe_id").unwrap_or_default(),
            }));
        }
        Some(other) => panic!("profile {other}"),
    }
    if let Some(td) = input.string("bundle_td") {
        r.trust_domain_bundle = Some(bundle(&td));
    }
    r
}

async fn create(client: &mut TrustDomainClient<Channel>, r: FederationRelationship) {
    let results = client
        .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![r],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].status.as_ref().unwrap().code, 0, "{results:?}");
}

async fn run(
    h: &Harness,
    client: &mut TrustDomainClient<Channel>,
    i: usize,
    row: &Row,
) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    let outcome = match row.surface.as_str() {
        "BatchCreateFederationRelationship" => {
            let bad = relationship(&mut input);
            input.done()?;
            let good = web(&format!("good{i}.org"), &format!("https://good{i}.org"));
            let before = revision(h).await;
            let results = client
                .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
                    federation_relationships: vec![bad, good],
                    output_mask: None,
                })
                .await
                .map_err(|s| format!("the batch failed: {s:?}"))?
                .into_inner()
                .results;
            batch_outcome(
                h,
                before,
                results[0].status.as_ref(),
                results[1].status.as_ref(),
            )
            .await
        }
        "BatchUpdateFederationRelationship" => {
            let bad = relationship(&mut input);
            input.done()?;
            let good = web("existing.org", &format!("https://existing.org/row{i}"));
            let before = revision(h).await;
            let results = client
                .batch_update_federation_relationship(BatchUpdateFederationRelationshipRequest {
                    federation_relationships: vec![bad, good],
                    input_mask: None,
                    output_mask: None,
                })
                .await
                .map_err(|s| format!("the batch failed: {s:?}"))?
                .into_inner()
                .results;
            batch_outcome(
                h,
                before,
                results[0].status.as_ref(),
                results[1].status.as_ref(),
            )
            .await
        }
        "BatchDeleteFederationRelationship" => {
            let td = input.string("trust_domain").ok_or("no trust_domain")?;
            input.done()?;
            let good = format!("delete{i}.org");
            create(client, web(&good, &format!("https://{good}"))).await;
            let before = revision(h).await;
            let results = client
                .batch_delete_federation_relationship(BatchDeleteFederationRelationshipRequest {
                    trust_domains: vec![td, good],
                })
                .await
                .map_err(|s| format!("the batch failed: {s:?}"))?
                .into_inner()
                .results;
            batch_outcome(
                h,
                before,
                results[0].status.as_ref(),
                results[1].status.as_ref(),
            )
            .await
        }
        "GetFederationRelationship" => {
            let td = input.string("trust_domain").ok_or("no trust_domain")?;
            input.done()?;
            let before = revision(h).await;
            let result = client
                .get_federation_relationship(GetFederationRelationshipRequest {
                    trust_domain: td,
                    output_mask: None,
                })
                .await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        "ListFederationRelationships" => {
            let request = ListFederationRelationshipsRequest {
                page_size: i32::try_from(input.i64("page_size").unwrap_or(0)).unwrap(),
                page_token: input.string("page_token").unwrap_or_default(),
                output_mask: None,
            };
            input.done()?;
            let before = revision(h).await;
            let result = client.list_federation_relationships(request).await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    Ok(outcome)
}

/// The bad item's status; the good item landed and moved the revision by one (two when
/// the row expects the "bad" item to be accepted).
async fn batch_outcome(
    h: &Harness,
    before: i64,
    bad: Option<&types::Status>,
    good: Option<&types::Status>,
) -> Outcome {
    let mut outcome = Outcome::item(bad);
    let good_landed = good.is_some_and(|s| s.code == 0);
    outcome.check(good_landed, "the good item beside it did not land");
    let landed = i64::from(good_landed) + i64::from(outcome.code == Code::Ok);
    check_revision(&mut outcome, before, revision(h).await, landed);
    outcome
}

#[tokio::test]
async fn trust_domain_catalogue() {
    let h = Harness::start().await;
    let mut client = TrustDomainClient::new(h.channel.clone());
    // The relationship the duplicate row collides with and the update rows' good item.
    create(&mut client, web("existing.org", "https://existing.org")).await;
    let mut tally = Tally::new("trust_domain.tsv");
    for (i, row) in table::load("trust_domain.tsv").iter().enumerate() {
        let outcome = run(&h, &mut client, i, row).await;
        tally.record(row, outcome);
    }
    tally.finish();
}
