//! Entry service over a real server: CRUD, per-item batch status, similar entries, filters,
//! paging, masks.
#![allow(clippy::unwrap_used)]

mod support;

use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchDeleteEntryRequest, BatchUpdateEntryRequest, CountEntriesRequest,
    GetEntryRequest, ListEntriesRequest, count_entries_request, entry_client::EntryClient,
    list_entries_request,
};
use spire_proto::spire::api::types::{self, selector_match::MatchBehavior};
use support::{Harness, TD, pid, proto_entry, sel};
use tonic::Code;

fn client(h: &Harness) -> EntryClient<tonic::transport::Channel> {
    EntryClient::new(h.channel.clone())
}

async fn create(
    h: &Harness,
    entries: Vec<types::Entry>,
) -> Vec<(i32, String, Option<types::Entry>)> {
    client(h)
        .batch_create_entry(BatchCreateEntryRequest {
            entries,
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results
        .into_iter()
        .map(|r| {
            let status = r.status.unwrap();
            (status.code, status.message, r.entry)
        })
        .collect()
}

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let h = Harness::start().await;
    let mut e = proto_entry("/workload");
    e.dns_names = vec!["web.example.org".into(), "api.example.org".into()];
    e.x509_svid_ttl = 600;
    e.hint = "web".into();
    let results = create(&h, vec![e]).await;
    let (code, message, created) = &results[0];
    assert_eq!((*code, message.as_str()), (0, "OK"));
    let created = created.clone().unwrap();
    assert_eq!(created.id.len(), 36, "a UUIDv4 is generated");
    assert_eq!(created.created_at, h.now());
    assert_eq!(
        created.dns_names,
        vec!["web.example.org", "api.example.org"]
    );

    let got = client(&h)
        .get_entry(GetEntryRequest {
            id: created.id.clone(),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let mut update = got.clone();
    update.x509_svid_ttl = 1200;
    update.spiffe_id = None; // not in the input mask: neither read nor checked
    let response = client(&h)
        .batch_update_entry(BatchUpdateEntryRequest {
            entries: vec![update],
            input_mask: Some(types::EntryMask {
                x509_svid_ttl: true,
                ..Default::default()
            }),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    let result = &response.results[0];
    assert_eq!(result.status.as_ref().unwrap().code, 0);
    let updated = result.entry.as_ref().unwrap();
    assert_eq!(updated.x509_svid_ttl, 1200);
    assert_eq!(updated.revision_number, 1);
    assert_eq!(updated.spiffe_id, created.spiffe_id);

    let response = client(&h)
        .batch_delete_entry(BatchDeleteEntryRequest {
            ids: vec![created.id.clone(), "nope".into(), String::new()],
        })
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<_> = response
        .results
        .iter()
        .map(|r| {
            let s = r.status.as_ref().unwrap();
            (r.id.as_str(), s.code, s.message.as_str())
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (created.id.as_str(), 0, "OK"),
            ("nope", Code::NotFound as i32, "entry not found"),
            ("", Code::InvalidArgument as i32, "missing entry ID"),
        ]
    );
    let err = client(&h)
        .get_entry(GetEntryRequest {
            id: created.id,
            output_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "entry not found")
    );
    let err = client(&h)
        .get_entry(GetEntryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "missing ID")
    );
}

#[tokio::test]
async fn a_bad_item_fails_alone_and_similar_entries_return_the_existing_one() {
    let h = Harness::start().await;
    let first = create(&h, vec![proto_entry("/a")]).await;
    let existing = first[0].2.clone().unwrap();

    let mut bad = proto_entry("/b");
    bad.selectors.clear();
    let mut similar = proto_entry("/a");
    similar.hint = "differs, but hints do not count".into();
    let results = create(&h, vec![proto_entry("/c"), bad, similar, proto_entry("/d")]).await;
    assert_eq!(results[0].0, 0);
    assert_eq!(
        (results[1].0, results[1].1.as_str()),
        (
            Code::InvalidArgument as i32,
            "failed to convert entry: selector list is empty"
        )
    );
    assert!(results[1].2.is_none());
    assert_eq!(
        (results[2].0, results[2].1.as_str()),
        (Code::AlreadyExists as i32, "similar entry already exists")
    );
    assert_eq!(results[2].2.as_ref(), Some(&existing));
    assert_eq!(results[3].0, 0);
    let count = client(&h)
        .count_entries(CountEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 3);
}

#[tokio::test]
async fn filters_paging_and_output_masks() {
    let h = Harness::start().await;
    let mut entries = Vec::new();
    for i in 0..5 {
        let mut e = proto_entry(&format!("/w{i}"));
        e.selectors = vec![sel("unix", &format!("uid:{i}")), sel("k8s", "ns:default")];
        e.hint = if i % 2 == 0 { "even" } else { "odd" }.into();
        e.downstream = i == 4;
        if i == 3 {
            e.parent_id = Some(pid(TD, "/spire/agent/b"));
        }
        entries.push(e);
    }
    assert!(create(&h, entries).await.iter().all(|r| r.0 == 0));

    let list = |filter: list_entries_request::Filter| {
        let mut c = client(&h);
        async move {
            c.list_entries(ListEntriesRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .map(|r| {
                r.into_inner()
                    .entries
                    .into_iter()
                    .map(|e| e.spiffe_id.unwrap().path)
                    .collect::<Vec<_>>()
            })
        }
    };
    let by_parent = list_entries_request::Filter {
        by_parent_id: Some(pid(TD, "/spire/agent/b")),
        ..Default::default()
    };
    assert_eq!(list(by_parent).await.unwrap(), vec!["/w3"]);
    let by_id = list_entries_request::Filter {
        by_spiffe_id: Some(pid(TD, "/w1")),
        ..Default::default()
    };
    assert_eq!(list(by_id).await.unwrap(), vec!["/w1"]);
    let by_hint = list_entries_request::Filter {
        by_hint: Some("odd".into()),
        ..Default::default()
    };
    assert_eq!(list(by_hint).await.unwrap(), vec!["/w1", "/w3"]);
    let by_downstream = list_entries_request::Filter {
        by_downstream: Some(true),
        ..Default::default()
    };
    assert_eq!(list(by_downstream).await.unwrap(), vec!["/w4"]);
    let selectors = |sels: Vec<types::Selector>, m: MatchBehavior| list_entries_request::Filter {
        by_selectors: Some(types::SelectorMatch {
            selectors: sels,
            r#match: m as i32,
        }),
        ..Default::default()
    };
    let exact = selectors(
        vec![sel("unix", "uid:2"), sel("k8s", "ns:default")],
        MatchBehavior::MatchExact,
    );
    assert_eq!(list(exact).await.unwrap(), vec!["/w2"]);
    let subset = selectors(
        vec![
            sel("unix", "uid:2"),
            sel("k8s", "ns:default"),
            sel("x", "y"),
        ],
        MatchBehavior::MatchSubset,
    );
    assert_eq!(list(subset).await.unwrap(), vec!["/w2"]);
    let superset = selectors(vec![sel("k8s", "ns:default")], MatchBehavior::MatchSuperset);
    assert_eq!(list(superset).await.unwrap().len(), 5);
    let any = selectors(
        vec![sel("unix", "uid:0"), sel("unix", "uid:4")],
        MatchBehavior::MatchAny,
    );
    assert_eq!(list(any).await.unwrap(), vec!["/w0", "/w4"]);

    // Malformed filters.
    let err = list(selectors(vec![], MatchBehavior::MatchAny))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "malformed selectors filter: empty selector set"
        )
    );
    let err = list(selectors(vec![sel("", "x")], MatchBehavior::MatchAny))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "malformed selectors filter: missing selector type"
    );
    let bad_parent = list_entries_request::Filter {
        by_parent_id: Some(pid("other.org", "/x")),
        ..Default::default()
    };
    let err = list(bad_parent).await.unwrap_err();
    assert_eq!(
        err.message(),
        "malformed parent ID filter: \"spiffe://other.org/x\" is not a member of trust domain \"example.org\""
    );
    let bad_id = list_entries_request::Filter {
        by_spiffe_id: Some(pid(TD, "/spire/agent/x")),
        ..Default::default()
    };
    assert!(
        list(bad_id)
            .await
            .unwrap_err()
            .message()
            .starts_with("malformed SPIFFE ID filter: ")
    );

    // Count shares the filters.
    let count = client(&h)
        .count_entries(CountEntriesRequest {
            filter: Some(count_entries_request::Filter {
                by_hint: Some("even".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 3);

    // Paging: 2 + 2 + 1, in creation order, then the token runs out.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client(&h)
            .list_entries(ListEntriesRequest {
                page_size: 2,
                page_token: token.clone(),
                output_mask: Some(types::EntryMask {
                    spiffe_id: true,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 2);
        for e in &page.entries {
            assert!(!e.id.is_empty(), "the ID survives every mask");
            assert!(e.parent_id.is_none() && e.selectors.is_empty() && e.hint.is_empty());
        }
        seen.extend(page.entries.into_iter().map(|e| e.spiffe_id.unwrap().path));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, vec!["/w0", "/w1", "/w2", "/w3", "/w4"]);

    // A huge page size allocates nothing proportional to it; a bogus token is refused.
    let all = client(&h)
        .list_entries(ListEntriesRequest {
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.entries.len(), 5);
    assert!(
        all.entries
            .iter()
            .all(|e| e.parent_id.is_some() && !e.selectors.is_empty())
    );
    let err = client(&h)
        .list_entries(ListEntriesRequest {
            page_size: 2,
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "could not parse token 'garbage'")
    );
}
