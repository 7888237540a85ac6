//! `entry.tsv`: BatchCreateEntry, BatchUpdateEntry, BatchDeleteEntry, GetEntry, ListEntries.
//! Batch rows send the bad item beside a good one; the good one must land.

use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchDeleteEntryRequest, BatchUpdateEntryRequest, GetEntryRequest,
    ListEntriesRequest, entry_client::EntryClient, list_entries_request,
};
use spire_proto::spire::api::types;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Harness, proto_entry, sel};
use crate::table::{self, Input, Outcome, Row, Tally};
use crate::{check_revision, proto_id, revision};

/// Applies the row's entry fields to `entry`.
fn apply(entry: &mut types::Entry, input: &mut Input) {
    if let Some(id) = proto_id(input, "spiffe_id") {
        entry.spiffe_id = id;
    }
    if let Some(id) = proto_id(input, "parent_id") {
        entry.parent_id = id;
    }
    if input.bool("parent_is_self") == Some(true) {
        entry.parent_id.clone_from(&entry.spiffe_id);
    }
    if let Some(v) = input.take("selectors") {
        entry.selectors = v
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| sel(&table::string(&pair[0]), &table::string(&pair[1])))
            .collect();
    }
    if let Some(v) = input.strings("dns_names") {
        entry.dns_names = v;
    }
    if let Some(v) = input.strings("federates_with") {
        entry.federates_with = v;
    }
    if let Some(v) = input.i64("x509_svid_ttl") {
        entry.x509_svid_ttl = i32::try_from(v).unwrap();
    }
    if let Some(v) = input.i64("jwt_svid_ttl") {
        entry.jwt_svid_ttl = i32::try_from(v).unwrap();
    }
    if let Some(v) = input.string("hint") {
        entry.hint = v;
    }
    if let Some(v) = input.string("id") {
        entry.id = v;
    }
    if let Some(v) = input.bool("store_svid") {
        entry.store_svid = v;
    }
}

async fn create(client: &mut EntryClient<Channel>, entry: types::Entry) -> types::Entry {
    let result = client
        .batch_create_entry(BatchCreateEntryRequest {
            entries: vec![entry],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0);
    assert_eq!(result.status.as_ref().unwrap().code, 0, "{result:?}");
    result.entry.unwrap()
}

async fn run(
    h: &Harness,
    client: &mut EntryClient<Channel>,
    i: usize,
    row: &Row,
) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    let outcome = match row.surface.as_str() {
        "BatchCreateEntry" => {
            let mut bad = proto_entry(&format!("/row{i}"));
            apply(&mut bad, &mut input);
            input.done()?;
            let good = proto_entry(&format!("/good{i}"));
            let before = revision(h).await;
            let results = match client
                .batch_create_entry(BatchCreateEntryRequest {
                    entries: vec![bad, good],
                    output_mask: None,
                })
                .await
            {
                Ok(response) => response.into_inner().results,
                // The whole call refused (e.g. a message over the receive limit): nothing lands.
                Err(status) => {
                    let mut outcome = Outcome::status(&status);
                    check_revision(&mut outcome, before, revision(h).await, 0);
                    return Ok(outcome);
                }
            };
            let mut outcome = Outcome::item(results[0].status.as_ref());
            let good_landed = results[1].status.as_ref().is_some_and(|s| s.code == 0);
            outcome.check(good_landed, "the good item beside it did not land");
            let landed = i64::from(good_landed) + i64::from(outcome.code == Code::Ok);
            check_revision(&mut outcome, before, revision(h).await, landed);
            outcome
        }
        "BatchUpdateEntry" => {
            let target = create(client, proto_entry(&format!("/update-bad{i}"))).await;
            let other = create(client, proto_entry(&format!("/update-good{i}"))).await;
            let mut bad = target.clone();
            apply(&mut bad, &mut input);
            input.done()?;
            let mut good = other.clone();
            good.hint = format!("updated{i}");
            let before = revision(h).await;
            let results = client
                .batch_update_entry(BatchUpdateEntryRequest {
                    entries: vec![bad, good],
                    input_mask: None,
                    output_mask: None,
                })
                .await
                .map_err(|s| format!("the batch failed: {s:?}"))?
                .into_inner()
                .results;
            let mut outcome = Outcome::item(results[0].status.as_ref());
            let good_landed = results[1].status.as_ref().is_some_and(|s| s.code == 0);
            outcome.check(good_landed, "the good item beside it did not land");
            let landed = i64::from(good_landed) + i64::from(outcome.code == Code::Ok);
            check_revision(&mut outcome, before, revision(h).await, landed);
            outcome
        }
        "BatchDeleteEntry" => {
            let id = input.string("id").ok_or("no id")?;
            input.done()?;
            let other = create(client, proto_entry(&format!("/delete-good{i}"))).await;
            let before = revision(h).await;
            let results = client
                .batch_delete_entry(BatchDeleteEntryRequest {
                    ids: vec![id, other.id],
                })
                .await
                .map_err(|s| format!("the batch failed: {s:?}"))?
                .into_inner()
                .results;
            let mut outcome = Outcome::item(results[0].status.as_ref());
            let good_landed = results[1].status.as_ref().is_some_and(|s| s.code == 0);
            outcome.check(good_landed, "the good item beside it was not deleted");
            let landed = i64::from(good_landed) + i64::from(outcome.code == Code::Ok);
            check_revision(&mut outcome, before, revision(h).await, landed);
            outcome
        }
        "GetEntry" => {
            let id = input.string("id").ok_or("no id")?;
            input.done()?;
            let before = revision(h).await;
            let result = client
                .get_entry(GetEntryRequest {
                    id,
                    output_mask: None,
                })
                .await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        "ListEntries" => {
            let mut request = ListEntriesRequest::default();
            if let Some(token) = input.string("page_token") {
                request.page_token = token;
            }
            if let Some(size) = input.i64("page_size") {
                request.page_size = i32::try_from(size).unwrap();
            }
            let mut filter = list_entries_request::Filter::default();
            if let Some(id) = proto_id(&mut input, "by_spiffe_id") {
                filter.by_spiffe_id = id;
            }
            if let Some(id) = proto_id(&mut input, "by_parent_id") {
                filter.by_parent_id = id;
            }
            if let Some(v) = input.take("by_selectors") {
                filter.by_selectors = Some(types::SelectorMatch {
                    selectors: v
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|pair| sel(&table::string(&pair[0]), &table::string(&pair[1])))
                        .collect(),
                    r#match: 0,
                });
            }
            input.done()?;
            request.filter = Some(filter);
            let before = revision(h).await;
            let result = client.list_entries(request).await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    Ok(outcome)
}

#[tokio::test]
async fn entry_catalogue() {
    let h = Harness::start().await;
    let mut client = EntryClient::new(h.channel.clone());
    // The entry the duplicate row collides with.
    create(&mut client, proto_entry("/existing")).await;
    let mut tally = Tally::new("entry.tsv");
    for (i, row) in table::load("entry.tsv").iter().enumerate() {
        let outcome = run(&h, &mut client, i, row).await;
        tally.record(row, outcome);
    }
    tally.finish();
}
