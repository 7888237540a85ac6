//! `bundle.tsv`: AppendBundle, GetFederatedBundle and the federated-bundle batches
//! (create, update, set, delete). Batch rows send the bad item beside a good one.

use spire_proto::spire::api::server::bundle::v1::{
    AppendBundleRequest, BatchCreateFederatedBundleRequest, BatchDeleteFederatedBundleRequest,
    BatchSetFederatedBundleRequest, BatchUpdateFederatedBundleRequest, GetFederatedBundleRequest,
    ListFederatedBundlesRequest, batch_delete_federated_bundle_request::Mode,
    bundle_client::BundleClient,
};
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, entry_client::EntryClient,
};
use spire_proto::spire::api::types;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Harness, ca_cert, proto_entry};
use crate::table::{self, Input, Outcome, Row, Tally};
use crate::{check_revision, revision};

fn authority(der: Vec<u8>) -> types::X509Certificate {
    types::X509Certificate {
        asn1: der,
        tainted: false,
    }
}

fn bundle(td: &str) -> types::Bundle {
    types::Bundle {
        trust_domain: td.into(),
        x509_authorities: vec![authority(ca_cert(td))],
        ..Default::default()
    }
}

async fn create(client: &mut BundleClient<Channel>, td: &str) {
    let results = client
        .batch_create_federated_bundle(BatchCreateFederatedBundleRequest {
            bundle: vec![bundle(td)],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].status.as_ref().unwrap().code, 0, "{results:?}");
}

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

async fn run(
    h: &Harness,
    client: &mut BundleClient<Channel>,
    i: usize,
    row: &Row,
) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    let td = input.string("trust_domain").unwrap_or_default();
    let outcome = match row.surface.as_str() {
        "AppendBundle" => {
            let mut request = AppendBundleRequest::default();
            match input.string("x509").as_deref() {
                None => {}
                Some("junk") => request.x509_authorities = vec![authority(b"junk".to_vec())],
                Some(other) => panic!("x509 {other:?}"),
            }
            match input.string("jwt").as_deref() {
                None => {}
                Some("no-key-id") => request.jwt_authorities = vec![types::JwtKey::default()],
                Some(other) => panic!("jwt {other:?}"),
            }
            input.done()?;
            let before = revision(h).await;
            let result = client.append_bundle(request).await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        "GetFederatedBundle" => {
            input.done()?;
            let before = revision(h).await;
            let result = client
                .get_federated_bundle(GetFederatedBundleRequest {
                    trust_domain: td,
                    output_mask: None,
                })
                .await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        "BatchCreateFederatedBundle" => {
            input.done()?;
            let before = revision(h).await;
            let results = client
                .batch_create_federated_bundle(BatchCreateFederatedBundleRequest {
                    bundle: vec![bundle(&td), bundle(&format!("good{i}.org"))],
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
        "BatchUpdateFederatedBundle" => {
            input.done()?;
            let before = revision(h).await;
            let results = client
                .batch_update_federated_bundle(BatchUpdateFederatedBundleRequest {
                    bundle: vec![bundle(&td), bundle("existing.org")],
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
        "BatchSetFederatedBundle" => {
            input.done()?;
            let before = revision(h).await;
            let results = client
                .batch_set_federated_bundle(BatchSetFederatedBundleRequest {
                    bundle: vec![bundle(&td), bundle(&format!("set{i}.org"))],
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
        "BatchDeleteFederatedBundle" => {
            let mode = match input.i64("mode") {
                None => Mode::Restrict as i32,
                Some(m) => i32::try_from(m).unwrap(),
            };
            input.done()?;
            let good = format!("delete{i}.org");
            create(client, &good).await;
            let before = revision(h).await;
            let result = client
                .batch_delete_federated_bundle(BatchDeleteFederatedBundleRequest {
                    trust_domains: vec![td, good],
                    mode,
                })
                .await;
            match result {
                Ok(response) => {
                    let results = response.into_inner().results;
                    batch_outcome(
                        h,
                        before,
                        results[0].status.as_ref(),
                        results[1].status.as_ref(),
                    )
                    .await
                }
                Err(status) => {
                    let mut outcome = Outcome::status(&status);
                    check_revision(&mut outcome, before, revision(h).await, 0);
                    outcome
                }
            }
        }
        "ListFederatedBundles" => {
            let request = ListFederatedBundlesRequest {
                page_size: i32::try_from(input.i64("page_size").unwrap_or(0)).unwrap(),
                page_token: input.string("page_token").unwrap_or_default(),
                output_mask: None,
            };
            input.done()?;
            let before = revision(h).await;
            let result = client.list_federated_bundles(request).await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    Ok(outcome)
}

#[tokio::test]
async fn bundle_catalogue() {
    let h = Harness::start().await;
    let mut client = BundleClient::new(h.channel.clone());
    create(&mut client, "existing.org").await;
    // A bundle an entry federates with, which RESTRICT refuses to delete.
    create(&mut client, "in-use.org").await;
    let mut entry = proto_entry("/federating");
    entry.federates_with = vec!["in-use.org".into()];
    let results = EntryClient::new(h.channel.clone())
        .batch_create_entry(BatchCreateEntryRequest {
            entries: vec![entry],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].status.as_ref().unwrap().code, 0);
    let mut tally = Tally::new("bundle.tsv");
    for (i, row) in table::load("bundle.tsv").iter().enumerate() {
        let outcome = run(&h, &mut client, i, row).await;
        tally.record(row, outcome);
    }
    tally.finish();
}
