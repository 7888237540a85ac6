//! Pruning attested nodes whose SVIDs expired long ago.

use spire_server_datastore::{Aggregate, AttestedNode, ChangeOp, DataStore as _};

use crate::harness::{Harness, create_ok, entry, id, sels};

both_backends!(
    prune_nodes_spares_banned_tofu_and_renewed,
    prune_nodes_takes_join_token_alias_entries,
    prune_nodes_in_batches
);

/// A node expiring at `not_after`, re-attestable (x509pop) unless `tofu`.
fn node(name: &str, not_after: i64, tofu: bool) -> AttestedNode {
    let kind = if tofu { "join_token" } else { "x509pop" };
    AttestedNode {
        spiffe_id: id(&format!("spiffe://example.org/spire/agent/{kind}/{name}")),
        attestation_type: kind.to_owned(),
        cert_serial_number: format!("serial-{name}"),
        cert_not_after: not_after,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: !tofu,
        selectors: sels(&[&format!("{kind}:name:{name}")]),
    }
}

fn names(ids: &[spire_id::SpiffeId]) -> Vec<String> {
    let mut names: Vec<String> = ids
        .iter()
        .map(|id| id.path().rsplit('/').next().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn remaining(h: &Harness) -> Vec<String> {
    let page = h
        .store
        .list_attested_nodes(&Default::default())
        .await
        .unwrap();
    names(
        &page
            .items
            .into_iter()
            .map(|n| n.spiffe_id)
            .collect::<Vec<_>>(),
    )
}

async fn prune_nodes_spares_banned_tofu_and_renewed(h: Harness) {
    let now = h.clock_now();
    let mut banned = node("banned", now - 7200, false);
    banned.cert_serial_number = String::new();
    let mut renewed = node("renewed", now - 7200, false);
    renewed.new_cert_serial_number = "next".to_owned();
    renewed.new_cert_not_after = now + 3600;
    for n in [
        node("valid", now + 3600, false),
        node("recent", now - 60, false),
        node("expired", now - 7200, false),
        node("tofu", now - 7200, true),
        banned,
        renewed,
    ] {
        h.store.create_attested_node(n).await.unwrap();
    }
    let before = h.store.latest_revision().await.unwrap();
    // Expired for more than an hour, re-attestable only.
    let cutoff = now - 3600;
    let pruned = h
        .store
        .prune_attested_nodes(cutoff, false, 0)
        .await
        .unwrap();
    assert_eq!(names(&pruned), ["expired"]);
    assert_eq!(
        remaining(&h).await,
        ["banned", "recent", "renewed", "tofu", "valid"]
    );
    let expired = id("spiffe://example.org/spire/agent/x509pop/expired");
    assert!(
        h.store
            .fetch_attested_node(&expired)
            .await
            .unwrap()
            .is_none()
    );
    // Its selectors went with it: a node created again under the ID starts with none.
    let mut again = node("expired", now + 3600, false);
    again.selectors = sels(&[]);
    let created = h.store.create_attested_node(again).await.unwrap();
    assert!(
        created.selectors.is_empty(),
        "selectors pruned with the node"
    );
    h.store.delete_attested_node(&expired).await.unwrap();

    let events = h.store.list_change_events(before, 10).await.unwrap();
    assert_eq!(
        (events[0].aggregate, events[0].key.as_str(), events[0].op),
        (
            Aggregate::AttestedNode,
            expired.to_string().as_str(),
            ChangeOp::Deleted
        )
    );

    // With TOFU nodes included, the join-token node goes too; banned never.
    let pruned = h.store.prune_attested_nodes(cutoff, true, 0).await.unwrap();
    assert_eq!(names(&pruned), ["tofu"]);
    assert_eq!(
        remaining(&h).await,
        ["banned", "recent", "renewed", "valid"]
    );
    // Nothing left to prune.
    assert!(
        h.store
            .prune_attested_nodes(cutoff, true, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn prune_nodes_takes_join_token_alias_entries(h: Harness) {
    let now = h.clock_now();
    let tofu = node("tok", now - 7200, true);
    let agent = tofu.spiffe_id.to_string();
    h.store.create_attested_node(tofu).await.unwrap();
    // The alias entry `token generate -spiffeID` creates, an ordinary workload entry under
    // the same agent, and another agent's alias entry.
    let mut alias = entry("/node/alias", &[]);
    alias.parent_id = id(&agent);
    alias.selectors = sels(&[&format!("spiffe_id:{agent}")]);
    let mut workload = entry("/workload", &["unix:uid:1"]);
    workload.parent_id = id(&agent);
    let other_agent = "spiffe://example.org/spire/agent/join_token/other";
    let mut other = entry("/node/other", &[]);
    other.parent_id = id(other_agent);
    other.selectors = sels(&[&format!("spiffe_id:{other_agent}")]);
    let created = create_ok(&h.store, vec![alias, workload, other]).await;
    let before = h.store.latest_revision().await.unwrap();

    let pruned = h
        .store
        .prune_attested_nodes(now - 3600, true, 0)
        .await
        .unwrap();
    assert_eq!(names(&pruned), ["tok"]);
    let left = h
        .store
        .list_registration_entries(&Default::default())
        .await
        .unwrap()
        .items;
    let mut left_ids: Vec<&str> = left.iter().map(|e| e.id.as_str()).collect();
    left_ids.sort();
    let mut expected = vec![created[1].id.as_str(), created[2].id.as_str()];
    expected.sort();
    assert_eq!(
        left_ids, expected,
        "only the pruned node's alias entry goes"
    );

    let events = h.store.list_change_events(before, 10).await.unwrap();
    let ops: Vec<_> = events
        .iter()
        .map(|e| (e.aggregate, e.key.clone(), e.op))
        .collect();
    assert_eq!(
        ops,
        [
            (
                Aggregate::RegistrationEntry,
                created[0].id.clone(),
                ChangeOp::Deleted
            ),
            (Aggregate::AttestedNode, agent, ChangeOp::Deleted),
        ]
    );
}

async fn prune_nodes_in_batches(h: Harness) {
    let now = h.clock_now();
    for i in 0..7 {
        h.store
            .create_attested_node(node(&format!("n{i}"), now - 7200, false))
            .await
            .unwrap();
    }
    h.store
        .create_attested_node(node("live", now + 60, false))
        .await
        .unwrap();
    let before = h.store.latest_revision().await.unwrap();
    // Three transactions of at most three nodes: 3 + 3 + 1.
    let pruned = h.store.prune_attested_nodes(now, false, 3).await.unwrap();
    assert_eq!(pruned.len(), 7);
    assert_eq!(remaining(&h).await, ["live"]);
    assert_eq!(h.store.latest_revision().await.unwrap(), before + 7);
}
