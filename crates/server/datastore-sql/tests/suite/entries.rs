//! Registration entry writes: batch create, update, delete, prune.

use spire_server_datastore::{DataStore as _, EntryMask, Error};

use crate::harness::{Harness, already_exists, create_ok, entry, id, sels, td};

both_backends!(
    batch_of_500_with_one_duplicate_keeps_the_others,
    duplicate_explicit_id_and_in_batch_duplicates,
    invalid_items_fail_alone,
    create_fills_ids_and_canonicalizes,
    fetch_keeps_asked_order_and_skips_missing,
    update_applies_mask_and_bumps_revision,
    update_conflicts_fail_per_item,
    delete_returns_deleted_entries,
    prune_removes_only_expired_entries,
);

async fn batch_of_500_with_one_duplicate_keeps_the_others(h: Harness) {
    let existing = create_ok(&h.store, vec![entry("/existing", &["unix:uid:7"])])
        .await
        .remove(0);
    let batch: Vec<_> = (0..500)
        .map(|i| {
            if i == 250 {
                // Similar to `existing` (same parent, SPIFFE ID, selectors) with a fresh ID.
                entry("/existing", &["unix:uid:7"])
            } else {
                entry(
                    &format!("/w/{i}"),
                    &["k8s:ns:default", &format!("k8s:pod-uid:{i}")],
                )
            }
        })
        .collect();
    let results = h.store.create_registration_entries(batch).await.unwrap();
    assert_eq!(results.len(), 500);
    for (i, result) in results.iter().enumerate() {
        if i == 250 {
            let (message, found) = already_exists(result);
            assert_eq!(message, "similar entry already exists");
            assert_eq!(found, Some(&existing));
        } else {
            let created = result.as_ref().unwrap();
            assert_eq!(
                created.spiffe_id,
                id(&format!("spiffe://example.org/w/{i}"))
            );
        }
    }
    let all = Default::default();
    assert_eq!(h.store.count_registration_entries(&all).await.unwrap(), 500);
    assert_eq!(h.store.latest_revision().await.unwrap(), 500);
}

async fn duplicate_explicit_id_and_in_batch_duplicates(h: Harness) {
    let mut first = entry("/a", &["unix:uid:1"]);
    first.id = "my-entry".to_owned();
    let first = create_ok(&h.store, vec![first]).await.remove(0);
    assert_eq!(first.id, "my-entry");

    let mut same_id = entry("/b", &["unix:uid:2"]);
    same_id.id = "my-entry".to_owned();
    let twin_a = entry("/twin", &["unix:uid:3"]);
    let mut twin_b = entry("/twin", &["unix:uid:3"]);
    twin_b.hint = "second".to_owned();
    let results = h
        .store
        .create_registration_entries(vec![same_id, twin_a, twin_b])
        .await
        .unwrap();

    let (message, found) = already_exists(&results[0]);
    assert_eq!(message, "entry already exists");
    assert_eq!(found, Some(&first));
    let stored_twin = results[1].as_ref().unwrap();
    let (message, found) = already_exists(&results[2]);
    assert_eq!(message, "similar entry already exists");
    assert_eq!(
        found,
        Some(stored_twin),
        "the first of two similar items wins"
    );
}

async fn invalid_items_fail_alone(h: Harness) {
    let mut no_selectors = entry("/bad1", &[]);
    no_selectors.selectors = sels(&[]);
    let mut negative_ttl = entry("/bad2", &["unix:uid:1"]);
    negative_ttl.x509_svid_ttl = -1;
    let results = h
        .store
        .create_registration_entries(vec![
            entry("/good1", &["unix:uid:1"]),
            no_selectors,
            negative_ttl,
            entry("/good2", &["unix:uid:2"]),
        ])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[3].is_ok());
    assert!(
        matches!(&results[1], Err(Error::InvalidArgument(m)) if m == "invalid registration entry: missing selector list")
    );
    assert!(
        matches!(&results[2], Err(Error::InvalidArgument(m)) if m == "invalid registration entry: X509SvidTtl is not set")
    );
    assert_eq!(
        h.store
            .count_registration_entries(&Default::default())
            .await
            .unwrap(),
        2
    );
}

async fn create_fills_ids_and_canonicalizes(h: Harness) {
    let mut e = entry("/web", &["k8s:sa:web", "k8s:ns:prod"]);
    e.dns_names = vec!["z.example.org".to_owned(), "a.example.org".to_owned()];
    e.federates_with = vec![td("b.org"), td("a.org"), td("b.org")];
    e.revision_number = 9;
    e.admin = true;
    e.store_svid = true;
    e.hint = "web".to_owned();
    e.expires_at = 2_000_000_000;
    let created = create_ok(&h.store, vec![e.clone()]).await.remove(0);
    let uuid = uuid::Uuid::parse_str(&created.id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(created.revision_number, 0);
    assert_eq!(created.dns_names, e.dns_names, "DNS names keep their order");
    assert_eq!(created.federates_with, vec![td("a.org"), td("b.org")]);
    let fetched = h
        .store
        .fetch_registration_entry(&created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched, created);
    assert!(
        h.store
            .fetch_registration_entry("nope")
            .await
            .unwrap()
            .is_none()
    );
}

async fn fetch_keeps_asked_order_and_skips_missing(h: Harness) {
    let created = create_ok(
        &h.store,
        (0..3)
            .map(|i| entry(&format!("/f/{i}"), &["unix:uid:1"]))
            .collect(),
    )
    .await;
    let ids = vec![
        created[2].id.clone(),
        "missing".to_owned(),
        created[0].id.clone(),
    ];
    let fetched = h.store.fetch_registration_entries(&ids).await.unwrap();
    assert_eq!(fetched, vec![created[2].clone(), created[0].clone()]);
}

async fn update_applies_mask_and_bumps_revision(h: Harness) {
    let original = create_ok(&h.store, vec![entry("/u", &["unix:uid:1"])])
        .await
        .remove(0);
    let mut change = original.clone();
    change.hint = "new hint".to_owned();
    change.x509_svid_ttl = 60;
    change.created_at = 1;
    let mask = EntryMask {
        hint: true,
        ..EntryMask::NONE
    };
    let updated = h
        .store
        .update_registration_entries(vec![(change, Some(mask))])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(updated.hint, "new hint");
    assert_eq!(updated.x509_svid_ttl, 3600, "not in the mask");
    assert_eq!(updated.created_at, original.created_at);
    assert_eq!(updated.revision_number, 1);

    let mut all = updated.clone();
    all.selectors = sels(&["unix:uid:2", "unix:gid:2"]);
    all.federates_with = vec![td("z.org"), td("y.org")];
    all.dns_names = vec!["b".to_owned(), "a".to_owned()];
    all.downstream = true;
    let updated = h
        .store
        .update_registration_entries(vec![(all, None)])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(updated.revision_number, 2);
    assert_eq!(updated.federates_with, vec![td("y.org"), td("z.org")]);
    let fetched = h
        .store
        .fetch_registration_entry(&original.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched, updated);
    // The selector rows followed: the old selector no longer finds it, the new one does.
    let by = |s: &[&str]| spire_server_datastore::ListEntries {
        by_selectors: Some(spire_server_datastore::SelectorMatch {
            selectors: sels(s),
            behavior: spire_server_datastore::MatchBehavior::Any,
        }),
        ..Default::default()
    };
    assert_eq!(
        h.store
            .count_registration_entries(&by(&["unix:uid:1"]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        h.store
            .count_registration_entries(&by(&["unix:gid:2"]))
            .await
            .unwrap(),
        1
    );
}

async fn update_conflicts_fail_per_item(h: Harness) {
    let created = create_ok(
        &h.store,
        vec![
            entry("/one", &["unix:uid:1"]),
            entry("/two", &["unix:uid:2"]),
        ],
    )
    .await;
    let mut clash = created[1].clone();
    clash.spiffe_id = created[0].spiffe_id.clone();
    clash.selectors = created[0].selectors.clone();
    let mut missing = created[0].clone();
    missing.id = "missing".to_owned();
    let mut fine = created[0].clone();
    fine.hint = "still works".to_owned();
    let results = h
        .store
        .update_registration_entries(vec![(clash, None), (missing, None), (fine, None)])
        .await
        .unwrap();
    let (message, found) = already_exists(&results[0]);
    assert_eq!(message, "similar entry already exists");
    assert_eq!(found.map(|e| e.id.as_str()), Some(created[0].id.as_str()));
    assert!(matches!(&results[1], Err(Error::NotFound(m)) if m == "entry not found"));
    assert_eq!(
        results[2].as_ref().unwrap().hint,
        "still works",
        "the transaction survived the conflict"
    );
    let two = h
        .store
        .fetch_registration_entry(&created[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(two, created[1], "the failed update changed nothing");
}

async fn delete_returns_deleted_entries(h: Harness) {
    let created = create_ok(
        &h.store,
        vec![entry("/d1", &["unix:uid:1"]), entry("/d2", &["unix:uid:2"])],
    )
    .await;
    let ids = vec![
        created[0].id.clone(),
        "missing".to_owned(),
        created[1].id.clone(),
    ];
    let results = h.store.delete_registration_entries(&ids).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &created[0]);
    assert!(matches!(&results[1], Err(Error::NotFound(m)) if m == "entry not found"));
    assert_eq!(results[2].as_ref().unwrap(), &created[1]);
    assert!(
        h.store
            .fetch_registration_entries(&ids)
            .await
            .unwrap()
            .is_empty()
    );
    // The similar entry can be created again once deleted.
    create_ok(&h.store, vec![entry("/d1", &["unix:uid:1"])]).await;
}

async fn prune_removes_only_expired_entries(h: Harness) {
    let mut old = entry("/old", &["unix:uid:1"]);
    old.expires_at = 100;
    let mut later = entry("/later", &["unix:uid:2"]);
    later.expires_at = 300;
    let never = entry("/never", &["unix:uid:3"]);
    let created = create_ok(&h.store, vec![old, later, never]).await;
    assert_eq!(h.store.prune_registration_entries(200).await.unwrap(), 1);
    assert!(
        h.store
            .fetch_registration_entry(&created[0].id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        h.store
            .count_registration_entries(&Default::default())
            .await
            .unwrap(),
        2
    );
    let events = h.store.list_change_events(3, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key, created[0].id);
    assert_eq!(events[0].op, spire_server_datastore::ChangeOp::Deleted);
}
