//! Attested nodes and their selectors.

use spire_server_datastore::{
    Aggregate, AttestedNode, ChangeOp, DataStore as _, Error, ListAttestedNodes, MatchBehavior,
    NodeMask, Pagination, SelectorMatch,
};

use crate::harness::{Harness, id, sels};

both_backends!(
    node_lifecycle_and_events,
    node_selectors_before_node,
    node_filters_and_paging,
    node_serial_promotion
);

fn node(name: &str, serial: &str, not_after: i64) -> AttestedNode {
    AttestedNode {
        spiffe_id: id(&format!(
            "spiffe://example.org/spire/agent/join_token/{name}"
        )),
        attestation_type: "join_token".to_owned(),
        cert_serial_number: serial.to_owned(),
        cert_not_after: not_after,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: false,
        selectors: sels(&[]),
    }
}

async fn node_lifecycle_and_events(h: Harness) {
    let mut n = node("n1", "1", 100);
    n.selectors = sels(&["join_token:n1"]);
    let created = h.store.create_attested_node(n.clone()).await.unwrap();
    assert_eq!(created, n);
    assert!(matches!(
        h.store.create_attested_node(n.clone()).await,
        Err(Error::AlreadyExists { message, .. }) if message == "attested node already exists"
    ));
    assert_eq!(
        h.store.fetch_attested_node(&n.spiffe_id).await.unwrap(),
        Some(n.clone())
    );

    let mut change = n.clone();
    change.cert_serial_number = "2".to_owned();
    change.attestation_type = "ignored".to_owned();
    change.can_reattest = true;
    let mask = NodeMask {
        attestation_type: false,
        ..NodeMask::ALL
    };
    let updated = h
        .store
        .update_attested_node(change, Some(mask))
        .await
        .unwrap();
    assert_eq!(updated.cert_serial_number, "2");
    assert_eq!(updated.attestation_type, "join_token");
    assert!(updated.can_reattest);
    assert_eq!(updated.selectors, n.selectors, "update keeps selectors");

    h.store
        .set_node_selectors(&n.spiffe_id, &sels(&["a:1", "b:2"]))
        .await
        .unwrap();
    let deleted = h.store.delete_attested_node(&n.spiffe_id).await.unwrap();
    assert_eq!(deleted.selectors, sels(&["a:1", "b:2"]));
    assert!(
        h.store
            .fetch_attested_node(&n.spiffe_id)
            .await
            .unwrap()
            .is_none()
    );
    for result in [
        h.store.delete_attested_node(&n.spiffe_id).await,
        h.store.update_attested_node(n.clone(), None).await,
    ] {
        assert!(matches!(result, Err(Error::NotFound(m)) if m == "attested node not found"));
    }

    let events = h.store.list_change_events(0, 100).await.unwrap();
    let ops: Vec<_> = events
        .iter()
        .map(|e| (e.aggregate, e.key.as_str(), e.op))
        .collect();
    let key = "spiffe://example.org/spire/agent/join_token/n1";
    assert_eq!(
        ops,
        [
            ChangeOp::Created,
            ChangeOp::Updated,
            ChangeOp::Updated,
            ChangeOp::Deleted
        ]
        .map(|op| (Aggregate::AttestedNode, key, op))
    );
    let revisions: Vec<_> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [1, 2, 3, 4]);
    assert_eq!(
        events[0].created_at, 1_767_225_600,
        "stamped by the injected clock"
    );
}

async fn node_selectors_before_node(h: Harness) {
    let n = node("early", "1", 100);
    h.store
        .set_node_selectors(&n.spiffe_id, &sels(&["x:1"]))
        .await
        .unwrap();
    let created = h.store.create_attested_node(n.clone()).await.unwrap();
    assert_eq!(
        created.selectors,
        sels(&["x:1"]),
        "existing selectors are kept and returned"
    );
    h.store
        .set_node_selectors(&n.spiffe_id, &sels(&[]))
        .await
        .unwrap();
    assert!(
        h.store
            .fetch_attested_node(&n.spiffe_id)
            .await
            .unwrap()
            .unwrap()
            .selectors
            .is_empty()
    );
}

async fn node_filters_and_paging(h: Harness) {
    let mut nodes = vec![
        node("a", "1", 100),
        node("b", "", 200),
        node("c", "3", 300),
        node("d", "4", 400),
    ];
    nodes[0].selectors = sels(&["s:1", "s:2"]);
    nodes[2].selectors = sels(&["s:1"]);
    nodes[2].can_reattest = true;
    nodes[3].attestation_type = "x509pop".to_owned();
    for n in &nodes {
        h.store.create_attested_node(n.clone()).await.unwrap();
    }
    let names = |page: &[AttestedNode]| -> Vec<String> {
        page.iter()
            .map(|n| n.spiffe_id.path().rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    let list = |request: ListAttestedNodes| {
        let store = h.store.clone();
        async move {
            let page = store.list_attested_nodes(&request).await.unwrap();
            assert_eq!(
                store.count_attested_nodes(&request).await.unwrap(),
                page.items.len() as u64
            );
            page.items
        }
    };
    assert_eq!(
        names(&list(ListAttestedNodes::default()).await),
        ["a", "b", "c", "d"]
    );
    let r = ListAttestedNodes {
        by_attestation_type: Some("x509pop".to_owned()),
        ..Default::default()
    };
    assert_eq!(names(&list(r).await), ["d"]);
    let r = ListAttestedNodes {
        by_banned: Some(true),
        ..Default::default()
    };
    assert_eq!(names(&list(r).await), ["b"]);
    let r = ListAttestedNodes {
        by_banned: Some(false),
        ..Default::default()
    };
    assert_eq!(names(&list(r).await), ["a", "c", "d"]);
    let r = ListAttestedNodes {
        by_can_reattest: Some(true),
        ..Default::default()
    };
    assert_eq!(names(&list(r).await), ["c"]);
    let r = ListAttestedNodes {
        by_expires_before: Some(250),
        ..Default::default()
    };
    assert_eq!(names(&list(r).await), ["a", "b"]);
    let by = |s: &[&str], behavior| ListAttestedNodes {
        by_selectors: Some(SelectorMatch {
            selectors: sels(s),
            behavior,
        }),
        ..Default::default()
    };
    assert_eq!(
        names(&list(by(&["s:1"], MatchBehavior::Exact)).await),
        ["c"]
    );
    assert_eq!(
        names(&list(by(&["s:1"], MatchBehavior::Superset)).await),
        ["a", "c"]
    );
    assert_eq!(
        names(&list(by(&["s:1"], MatchBehavior::Subset)).await),
        ["c"]
    );
    assert_eq!(
        names(&list(by(&["s:2", "s:9"], MatchBehavior::Any)).await),
        ["a"]
    );
    let listed = list(by(&["s:1", "s:2"], MatchBehavior::Exact)).await;
    assert_eq!(
        listed[0].selectors,
        sels(&["s:1", "s:2"]),
        "listed nodes carry their selectors"
    );

    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let r = ListAttestedNodes {
            pagination: Some(Pagination {
                token,
                page_size: 3,
            }),
            ..Default::default()
        };
        let page = h.store.list_attested_nodes(&r).await.unwrap();
        seen.extend(names(&page.items));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d"]);
}

/// The conditional promotion behind the agent authorizer: it writes only while the node is
/// as read (current serial, pending new serial, not banned), so a ban or an eviction that
/// lands in between is never undone.
async fn node_serial_promotion(h: Harness) {
    let mut n = node("p", "1", 100);
    n.new_cert_serial_number = "2".to_owned();
    n.new_cert_not_after = 200;
    h.store.create_attested_node(n.clone()).await.unwrap();
    let before = h.store.latest_revision().await.unwrap();

    assert!(
        !h.store
            .promote_node_serial(&n.spiffe_id, "7", "2")
            .await
            .unwrap(),
        "another current serial"
    );
    assert!(
        !h.store
            .promote_node_serial(&n.spiffe_id, "1", "3")
            .await
            .unwrap(),
        "another new serial"
    );
    assert_eq!(h.store.latest_revision().await.unwrap(), before, "no event");

    assert!(
        h.store
            .promote_node_serial(&n.spiffe_id, "1", "2")
            .await
            .unwrap()
    );
    let promoted = h
        .store
        .fetch_attested_node(&n.spiffe_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            promoted.cert_serial_number.as_str(),
            promoted.cert_not_after,
            promoted.new_cert_serial_number.as_str(),
            promoted.new_cert_not_after
        ),
        ("2", 200, "", 0)
    );
    let events = h.store.list_change_events(before, 10).await.unwrap();
    let ops: Vec<_> = events
        .iter()
        .map(|e| (e.aggregate, e.key.as_str(), e.op))
        .collect();
    assert_eq!(
        ops,
        [(
            Aggregate::AttestedNode,
            "spiffe://example.org/spire/agent/join_token/p",
            ChangeOp::Updated
        )]
    );
    assert!(
        !h.store
            .promote_node_serial(&n.spiffe_id, "1", "2")
            .await
            .unwrap(),
        "already promoted"
    );

    // Renewed again, then banned before the new SVID is first used.
    let mut renewed = promoted.clone();
    renewed.new_cert_serial_number = "3".to_owned();
    renewed.new_cert_not_after = 300;
    h.store.update_attested_node(renewed, None).await.unwrap();
    let mut banned = promoted.clone();
    banned.cert_serial_number = String::new();
    banned.new_cert_serial_number = String::new();
    let ban = NodeMask {
        attestation_type: false,
        cert_serial_number: true,
        cert_not_after: false,
        new_cert_serial_number: true,
        new_cert_not_after: false,
        can_reattest: false,
    };
    h.store
        .update_attested_node(banned, Some(ban))
        .await
        .unwrap();
    for (current, new) in [("2", "3"), ("", ""), ("", "3")] {
        assert!(
            !h.store
                .promote_node_serial(&n.spiffe_id, current, new)
                .await
                .unwrap(),
            "{current:?} → {new:?} must not lift the ban"
        );
    }
    let stored = h
        .store
        .fetch_attested_node(&n.spiffe_id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.cert_serial_number.is_empty() && stored.new_cert_serial_number.is_empty());

    // Evicted: nothing to promote, and no error.
    h.store.delete_attested_node(&n.spiffe_id).await.unwrap();
    assert!(
        !h.store
            .promote_node_serial(&n.spiffe_id, "2", "3")
            .await
            .unwrap()
    );
}
