//! Entry filters (run in SQL) and paging.

use spire_server_datastore::{
    DataStore as _, Error, ListEntries, MatchBehavior, Pagination, SelectorMatch, TrustDomainMatch,
};

use crate::harness::{Harness, create_ok, entry, id, sels, td};

both_backends!(
    filters_by_ids_hint_and_downstream,
    selector_match_behaviors,
    federates_with_match_behaviors,
    paging_in_creation_order,
    bogus_tokens_and_huge_pages,
);

fn by_selectors(selectors: &[&str], behavior: MatchBehavior) -> ListEntries {
    ListEntries {
        by_selectors: Some(SelectorMatch {
            selectors: sels(selectors),
            behavior,
        }),
        ..Default::default()
    }
}

async fn paths(h: &Harness, request: &ListEntries) -> Vec<String> {
    let page = h.store.list_registration_entries(request).await.unwrap();
    assert_eq!(page.next_token, None);
    let count = h.store.count_registration_entries(request).await.unwrap();
    assert_eq!(count, page.items.len() as u64, "count agrees with list");
    page.items
        .iter()
        .map(|e| e.spiffe_id.path().to_owned())
        .collect()
}

async fn filters_by_ids_hint_and_downstream(h: Harness) {
    let mut a = entry("/a", &["unix:uid:1"]);
    a.hint = "blue".to_owned();
    let mut b = entry("/b", &["unix:uid:1"]);
    b.parent_id = id("spiffe://example.org/spire/agent/x509pop/node2");
    b.downstream = true;
    let mut c = entry("/a", &["unix:uid:2"]);
    c.hint = "blue".to_owned();
    create_ok(&h.store, vec![a, b, c]).await;

    let req = ListEntries {
        by_spiffe_id: Some(id("spiffe://example.org/a")),
        ..Default::default()
    };
    assert_eq!(paths(&h, &req).await, ["/a", "/a"]);
    let req = ListEntries {
        by_parent_id: Some(id("spiffe://example.org/spire/agent/x509pop/node2")),
        ..Default::default()
    };
    assert_eq!(paths(&h, &req).await, ["/b"]);
    let req = ListEntries {
        by_hint: Some("blue".to_owned()),
        ..Default::default()
    };
    assert_eq!(paths(&h, &req).await, ["/a", "/a"]);
    let req = ListEntries {
        by_downstream: Some(true),
        ..Default::default()
    };
    assert_eq!(paths(&h, &req).await, ["/b"]);
    let req = ListEntries {
        by_downstream: Some(false),
        by_hint: Some("blue".to_owned()),
        ..Default::default()
    };
    assert_eq!(paths(&h, &req).await.len(), 2);
    assert_eq!(paths(&h, &ListEntries::default()).await, ["/a", "/b", "/a"]);
}

async fn selector_match_behaviors(h: Harness) {
    create_ok(
        &h.store,
        vec![
            entry("/one", &["k8s:ns:a"]),
            entry("/two", &["k8s:ns:a", "k8s:sa:x"]),
            entry("/three", &["k8s:ns:a", "k8s:sa:x", "k8s:pod:p"]),
            entry("/other", &["k8s:ns:b"]),
        ],
    )
    .await;
    let given = ["k8s:ns:a", "k8s:sa:x"];
    assert_eq!(
        paths(&h, &by_selectors(&given, MatchBehavior::Exact)).await,
        ["/two"]
    );
    assert_eq!(
        paths(&h, &by_selectors(&given, MatchBehavior::Subset)).await,
        ["/one", "/two"]
    );
    assert_eq!(
        paths(&h, &by_selectors(&given, MatchBehavior::Superset)).await,
        ["/two", "/three"]
    );
    assert_eq!(
        paths(&h, &by_selectors(&given, MatchBehavior::Any)).await,
        ["/one", "/two", "/three"]
    );
    assert_eq!(
        paths(
            &h,
            &by_selectors(&["k8s:ns:a", "k8s:ns:b"], MatchBehavior::Subset)
        )
        .await,
        ["/one", "/other"]
    );
    assert_eq!(
        paths(&h, &by_selectors(&["k8s:none:x"], MatchBehavior::Any)).await,
        Vec::<String>::new()
    );
    // A workload with more selectors than any entry still matches every subset entry.
    let workload = ["k8s:ns:a", "k8s:sa:x", "k8s:pod:p", "k8s:node:n"];
    assert_eq!(
        paths(&h, &by_selectors(&workload, MatchBehavior::Subset)).await,
        ["/one", "/two", "/three"]
    );
}

async fn federates_with_match_behaviors(h: Harness) {
    let with = |path: &str, tds: &[&str]| {
        let mut e = entry(path, &["unix:uid:1"]);
        e.federates_with = tds.iter().map(|t| td(t)).collect();
        e
    };
    create_ok(
        &h.store,
        vec![
            with("/none", &[]),
            with("/a", &["a.org"]),
            with("/ab", &["a.org", "b.org"]),
            with("/c", &["c.org"]),
        ],
    )
    .await;
    let by = |tds: &[&str], behavior| ListEntries {
        by_federates_with: Some(TrustDomainMatch {
            trust_domains: tds.iter().map(|t| td(t)).collect(),
            behavior,
        }),
        ..Default::default()
    };
    let given = ["a.org", "b.org"];
    assert_eq!(paths(&h, &by(&given, MatchBehavior::Exact)).await, ["/ab"]);
    assert_eq!(
        paths(&h, &by(&given, MatchBehavior::Subset)).await,
        ["/a", "/ab"]
    );
    assert_eq!(
        paths(&h, &by(&["a.org"], MatchBehavior::Superset)).await,
        ["/a", "/ab"]
    );
    assert_eq!(
        paths(&h, &by(&["b.org", "c.org"], MatchBehavior::Any)).await,
        ["/ab", "/c"]
    );
    // Combined with a selector filter.
    let mut req = by(&["a.org"], MatchBehavior::Any);
    req.by_spiffe_id = Some(id("spiffe://example.org/ab"));
    assert_eq!(paths(&h, &req).await, ["/ab"]);
}

async fn paging_in_creation_order(h: Harness) {
    let created = create_ok(
        &h.store,
        (0..25)
            .map(|i| entry(&format!("/p/{i:02}"), &["unix:uid:1"]))
            .collect(),
    )
    .await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let req = ListEntries {
            pagination: Some(Pagination {
                token: token.clone(),
                page_size: 10,
            }),
            ..Default::default()
        };
        let page = h.store.list_registration_entries(&req).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        seen.extend(page.items);
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    // Filters and paging together: 25 match, pages of 24 then 1.
    let mut req = by_selectors(&["unix:uid:1"], MatchBehavior::Exact);
    req.pagination = Some(Pagination {
        token: String::new(),
        page_size: 24,
    });
    let first = h.store.list_registration_entries(&req).await.unwrap();
    assert_eq!(first.items.len(), 24);
    req.pagination = Some(Pagination {
        token: first.next_token.unwrap(),
        page_size: 24,
    });
    let second = h.store.list_registration_entries(&req).await.unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_token, None);
    // An exactly full last page says there is nothing more.
    req.pagination = Some(Pagination {
        token: String::new(),
        page_size: 25,
    });
    assert_eq!(
        h.store
            .list_registration_entries(&req)
            .await
            .unwrap()
            .next_token,
        None
    );
}

async fn bogus_tokens_and_huge_pages(h: Harness) {
    create_ok(
        &h.store,
        (0..3)
            .map(|i| entry(&format!("/h/{i}"), &["unix:uid:1"]))
            .collect(),
    )
    .await;
    for bogus in ["bogus", "-5", "1e3"] {
        let req = ListEntries {
            pagination: Some(Pagination {
                token: bogus.to_owned(),
                page_size: 1,
            }),
            ..Default::default()
        };
        match h.store.list_registration_entries(&req).await {
            Err(Error::InvalidArgument(m)) => {
                assert_eq!(m, format!("could not parse token '{bogus}'"))
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    for page_size in [i32::MAX as u32, u32::MAX, 0] {
        let req = ListEntries {
            pagination: Some(Pagination {
                token: String::new(),
                page_size,
            }),
            ..Default::default()
        };
        let page = h.store.list_registration_entries(&req).await.unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.next_token, None);
    }
    // Node and bundle lists share the token rules.
    let bad = Some(Pagination {
        token: "zz-not-hex".to_owned(),
        page_size: 1,
    });
    assert!(matches!(
        h.store.list_bundles(bad.clone()).await,
        Err(Error::InvalidArgument(_))
    ));
    let nodes = spire_server_datastore::ListAttestedNodes {
        pagination: bad,
        ..Default::default()
    };
    assert!(matches!(
        h.store.list_attested_nodes(&nodes).await,
        Err(Error::InvalidArgument(_))
    ));
}
