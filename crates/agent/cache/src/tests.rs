use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_svid::Bundle;

use super::*;

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn selectors(list: &[&str]) -> SelectorSet {
    list.iter().map(|s| Selector::parse(s).unwrap()).collect()
}

fn entry(id: &str, sels: &[&str]) -> Entry {
    Entry {
        id: id.to_owned(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/w/{id}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/x").unwrap(),
        selectors: selectors(sels),
        federates_with: Vec::new(),
        dns_names: Vec::new(),
        hint: String::new(),
        revision_number: 1,
        created_at: 1_767_225_600,
        x509_svid_ttl: 3600,
        store_svid: false,
        admin: false,
        downstream: false,
    }
}

fn t0() -> SystemTime {
    spire_time::from_unix_seconds(1_767_225_600)
}

/// An SVID valid for one hour from `t0`, its leaf bytes derived from `tag`.
fn svid(tag: &str) -> IssuedSvid {
    IssuedSvid {
        chain: vec![format!("leaf-{tag}").into_bytes()],
        private_key: b"key".to_vec(),
        not_before: t0(),
        not_after: t0() + Duration::from_secs(3600),
    }
}

fn cache(max: usize) -> Cache {
    Cache::new(
        CacheConfig {
            trust_domain: td("example.org"),
            x509_svid_cache_max_size: max,
        },
        Bundle::new(td("example.org")),
    )
}

fn ids(identities: &[Identity]) -> Vec<&str> {
    identities.iter().map(|i| i.entry.id.as_str()).collect()
}

fn minted(list: &[Arc<Entry>]) -> Vec<&str> {
    list.iter().map(|e| e.id.as_str()).collect()
}

/// Stores an SVID for every listed entry.
fn store(cache: &Cache, entry_ids: &[&str]) {
    cache.store_svids(
        entry_ids
            .iter()
            .map(|id| ((*id).to_owned(), svid(id)))
            .collect(),
    );
}

/// True when `next()` has an update ready without waiting.
async fn has_update(sub: &mut Subscription) -> bool {
    tokio::select! {
        biased;
        _ = sub.next() => true,
        () = std::future::ready(()) => false,
    }
}

#[test]
fn entry_matches_when_its_selectors_are_a_subset() {
    let cache = cache(100);
    cache.update_entries(vec![
        entry("a", &["unix:uid:1"]),
        entry("b", &["unix:uid:1", "unix:gid:2"]),
        entry("c", &["unix:uid:10"]),
        entry("d", &["k8s:uid:1"]),
        entry("e", &["unix:uid:1", "unix:gid:3"]),
    ]);
    store(&cache, &["a", "b", "c", "d", "e"]);
    let workload = selectors(&["unix:uid:1", "unix:gid:2", "unix:pid:7"]);
    assert_eq!(ids(&cache.identities(&workload)), ["a", "b"]);
    assert!(cache.identities(&selectors(&["unix:uid:100"])).is_empty());
    assert!(cache.identities(&SelectorSet::new()).is_empty());
}

#[test]
fn identities_are_ordered_by_entry_id_and_leave_out_entries_without_svid() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![
        entry("b", &sel),
        entry("9", &sel),
        entry("a", &sel),
        entry("10", &sel),
        entry("c", &sel),
    ]);
    store(&cache, &["b", "9", "a", "10"]);
    assert_eq!(
        ids(&cache.identities(&selectors(&sel))),
        ["10", "9", "a", "b"]
    );
    assert_eq!(minted(&cache.entries()), ["10", "9", "a", "b", "c"]);
}

#[test]
fn matching_entries_include_those_without_svid_and_skip_store_svid() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    let mut stored = entry("s", &sel);
    stored.store_svid = true;
    cache.update_entries(vec![
        entry("b", &sel),
        entry("a", &sel),
        entry("other", &["unix:uid:2"]),
        stored,
    ]);
    store(&cache, &["b"]);
    assert_eq!(
        minted(&cache.matching_entries(&selectors(&sel))),
        ["a", "b"]
    );
    assert!(cache.identities(&selectors(&["unix:uid:3"])).is_empty());
}

#[test]
fn workload_update_has_the_identities_and_their_federated_bundles() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    let mut a = entry("a", &sel);
    a.federates_with = vec![td("one.org")];
    let mut b = entry("b", &sel);
    b.federates_with = vec![td("two.org")];
    cache.update_entries(vec![a, b]);
    let federated: BTreeMap<_, _> = ["one.org", "two.org", "three.org"]
        .iter()
        .map(|n| (td(n), Bundle::new(td(n))))
        .collect();
    cache.update_bundles(Bundle::new(td("example.org")), federated);
    // `b` has no SVID yet: neither it nor its federated bundle is in the update.
    store(&cache, &["a"]);
    let update = cache.workload_update(&selectors(&sel));
    assert_eq!(ids(&update.identities), ["a"]);
    assert_eq!(
        update.federated_bundles.keys().collect::<Vec<_>>(),
        [&td("one.org")]
    );
    assert_eq!(update.bundle.trust_domain, td("example.org"));
    let none = cache.workload_update(&selectors(&["unix:uid:9"]));
    assert!(none.identities.is_empty() && none.federated_bundles.is_empty());
}

#[tokio::test]
async fn no_matching_entry_gives_an_empty_update_at_once() {
    let cache = cache(100);
    cache.update_entries(vec![entry("a", &["unix:uid:1"])]);
    let mut sub = cache.subscribe(selectors(&["unix:uid:2"]));
    let update = sub.next().await.unwrap();
    assert!(update.identities.is_empty());
    assert_eq!(update.bundle.trust_domain, td("example.org"));
}

#[tokio::test]
async fn first_next_waits_until_the_svids_are_stored() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel), entry("b", &sel)]);
    let mut sub = cache.subscribe(selectors(&sel));
    assert!(!has_update(&mut sub).await);
    store(&cache, &["a"]);
    assert!(!has_update(&mut sub).await, "one SVID is still missing");
    store(&cache, &["b"]);
    let update = sub.next().await.unwrap();
    assert_eq!(ids(&update.identities), ["a", "b"]);
    assert!(!has_update(&mut sub).await);
}

#[tokio::test]
async fn first_next_returns_when_the_missing_entry_is_removed() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel), entry("b", &sel)]);
    store(&cache, &["a"]);
    let mut sub = cache.subscribe(selectors(&sel));
    assert!(!has_update(&mut sub).await);
    cache.update_entries(vec![entry("a", &sel)]);
    assert_eq!(ids(&sub.next().await.unwrap().identities), ["a"]);
}

#[tokio::test]
async fn entry_changes_reach_an_open_subscription() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel)]);
    store(&cache, &["a"]);
    let mut sub = cache.subscribe(selectors(&sel));
    assert_eq!(ids(&sub.next().await.unwrap().identities), ["a"]);

    // Add: the identity appears once its SVID is stored.
    cache.update_entries(vec![entry("a", &sel), entry("b", &sel)]);
    assert!(
        !has_update(&mut sub).await,
        "no SVID for b yet: nothing new"
    );
    store(&cache, &["b"]);
    assert_eq!(ids(&sub.next().await.unwrap().identities), ["a", "b"]);

    // Change: the new hint is served with the held SVID.
    let mut changed = entry("b", &sel);
    changed.hint = "internal".to_owned();
    cache.update_entries(vec![entry("a", &sel), changed]);
    let update = sub.next().await.unwrap();
    assert_eq!(update.identities[1].entry.hint, "internal");

    // Remove.
    cache.update_entries(vec![entry("b", &sel)]);
    let update = sub.next().await.unwrap();
    assert_eq!(ids(&update.identities), ["b"]);
    assert_eq!(update.identities[0].entry.hint, "");
}

#[tokio::test]
async fn unrelated_and_no_op_changes_do_not_wake_subscribers() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel), entry("x", &["unix:uid:2"])]);
    store(&cache, &["a", "x"]);
    let mut sub = cache.subscribe(selectors(&sel));
    let first = sub.next().await.unwrap();

    cache.update_entries(vec![entry("a", &sel), entry("x", &["unix:uid:2"])]);
    cache.update_bundles(Bundle::new(td("example.org")), BTreeMap::new());
    store(&cache, &["x"]);
    let mut other = entry("x", &["unix:uid:2"]);
    other.hint = "h".to_owned();
    cache.update_entries(vec![entry("a", &sel), other]);
    assert!(!has_update(&mut sub).await);
    assert!(
        !sub.rx.has_changed().unwrap(),
        "the group was not republished"
    );

    let mut bundle = Bundle::new(td("example.org"));
    bundle.sequence_number = 2;
    cache.update_bundles(bundle, BTreeMap::new());
    let update = sub.next().await.unwrap();
    assert_eq!(update.bundle.sequence_number, 2);
    assert!(Arc::ptr_eq(
        &update.identities[0].svid,
        &first.identities[0].svid
    ));
}

#[tokio::test]
async fn a_slow_subscriber_gets_the_latest_state_only() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel)]);
    store(&cache, &["a"]);
    let mut sub = cache.subscribe(selectors(&sel));
    sub.next().await.unwrap();
    for seq in 1..=5 {
        let mut bundle = Bundle::new(td("example.org"));
        bundle.sequence_number = seq;
        cache.update_bundles(bundle, BTreeMap::new());
    }
    assert_eq!(sub.next().await.unwrap().bundle.sequence_number, 5);
    assert!(!has_update(&mut sub).await);
}

#[tokio::test]
async fn federated_bundles_only_for_federating_identities() {
    let cache = cache(100);
    let mut a = entry("a", &["unix:uid:1"]);
    a.federates_with = vec![td("one.org"), td("missing.org")];
    let b = entry("b", &["unix:uid:2"]);
    cache.update_entries(vec![a, b]);
    store(&cache, &["a", "b"]);
    assert_eq!(
        cache.federated_trust_domains(),
        [td("missing.org"), td("one.org")]
    );
    let federated: BTreeMap<_, _> = ["one.org", "two.org"]
        .into_iter()
        .map(|n| (td(n), Bundle::new(td(n))))
        .collect();
    cache.update_bundles(Bundle::new(td("example.org")), federated.clone());

    let mut sub_a = cache.subscribe(selectors(&["unix:uid:1"]));
    let mut sub_b = cache.subscribe(selectors(&["unix:uid:2"]));
    let update = sub_a.next().await.unwrap();
    assert_eq!(
        update.federated_bundles.keys().collect::<Vec<_>>(),
        [&td("one.org")]
    );
    assert!(sub_b.next().await.unwrap().federated_bundles.is_empty());
    assert_eq!(cache.bundles().borrow().federated.len(), 2);

    // A change of two.org concerns nobody; one.org concerns only a.
    let mut changed = federated.clone();
    changed.get_mut(&td("two.org")).unwrap().sequence_number = 7;
    cache.update_bundles(Bundle::new(td("example.org")), changed.clone());
    assert!(!has_update(&mut sub_a).await);
    assert!(!has_update(&mut sub_b).await);
    changed.get_mut(&td("one.org")).unwrap().sequence_number = 3;
    cache.update_bundles(Bundle::new(td("example.org")), changed);
    assert_eq!(
        sub_a.next().await.unwrap().federated_bundles[&td("one.org")].sequence_number,
        3
    );
    assert!(!has_update(&mut sub_b).await);
}

#[tokio::test]
async fn bundles_watch_changes_only_on_change() {
    let cache = cache(100);
    let mut rx = cache.bundles();
    cache.update_bundles(Bundle::new(td("example.org")), BTreeMap::new());
    assert!(!rx.has_changed().unwrap());
    let mut bundle = Bundle::new(td("example.org"));
    bundle.refresh_hint = 60;
    cache.update_bundles(bundle, BTreeMap::new());
    rx.changed().await.unwrap();
    assert_eq!(rx.borrow_and_update().own.refresh_hint, 60);
}

#[tokio::test]
async fn prefetch_stops_at_the_limit_but_subscribers_are_always_served() {
    let cache = cache(2);
    let sel: Vec<String> = (0..5).map(|i| format!("unix:uid:{i}")).collect();
    cache.update_entries(
        (0..5)
            .map(|i| entry(&format!("e{i}"), &[sel[i].as_str()]))
            .collect(),
    );
    cache.work_available().await; // update_entries left a wakeup
    assert_eq!(minted(&cache.svids_to_mint(t0())), ["e0", "e1"]);

    let sub3 = subscribe_ready(&cache, &sel[3], &["e0", "e3"]).await;
    // The manager also finishes e1 from the first round: one too many, the LRU one goes.
    store(&cache, &["e0", "e1", "e3"]);
    assert_eq!(cache.state().held_count(), 2);
    assert_eq!(held(&cache, &sel), [1, 3], "e0 was the least recently used");
    assert!(cache.svids_to_mint(t0()).is_empty(), "the limit is reached");

    // Soft limit: subscribed SVIDs are minted and kept beyond it.
    let sub2 = subscribe_ready(&cache, &sel[2], &["e2"]).await;
    let sub4 = subscribe_ready(&cache, &sel[4], &["e2", "e4"]).await;
    store(&cache, &["e2", "e4"]);
    assert_eq!(
        held(&cache, &sel),
        [2, 3, 4],
        "e1 evicted, the subscribed stay"
    );
    drop(sub2);
    assert_eq!(held(&cache, &sel), [3, 4]);
    drop((sub3, sub4));
    assert_eq!(held(&cache, &sel), [3, 4], "at the limit: nothing to evict");
}

/// Subscribes to `selector` and checks what is then due (the subscriber's entries are).
async fn subscribe_ready(cache: &Cache, selector: &str, due: &[&str]) -> Subscription {
    let sub = cache.subscribe(selectors(&[selector]));
    cache.work_available().await; // the subscriber waits for its SVID
    assert_eq!(minted(&cache.svids_to_mint(t0())), due);
    sub
}

/// Indexes of the `selectors` whose single entry holds an SVID.
fn held(cache: &Cache, selectors_by_index: &[String]) -> Vec<usize> {
    (0..selectors_by_index.len())
        .filter(|i| {
            !cache
                .identities(&selectors(&[selectors_by_index[*i].as_str()]))
                .is_empty()
        })
        .collect()
}

#[test]
fn rotation_is_due_between_45_and_55_percent_of_the_lifetime() {
    let cache = cache(100);
    cache.update_entries(vec![entry("a", &["unix:uid:1"])]);
    assert!(cache.next_rotation().is_none());
    store(&cache, &["a"]);
    let deadline = cache.next_rotation().unwrap();
    let offset = deadline.duration_since(t0()).unwrap();
    assert!(
        offset >= Duration::from_secs(1620) && offset <= Duration::from_secs(1980),
        "{offset:?}"
    );
    assert!(cache.svids_to_mint(t0()).is_empty());
    assert!(
        cache
            .svids_to_mint(deadline - Duration::from_nanos(1))
            .is_empty()
    );
    assert_eq!(minted(&cache.svids_to_mint(deadline)), ["a"]);
    // Replacing the SVID moves the deadline.
    let mut next = svid("a2");
    next.not_before = deadline;
    next.not_after = deadline + Duration::from_secs(3600);
    cache.store_svids(vec![("a".to_owned(), next)]);
    assert!(cache.next_rotation().unwrap() > deadline);
    assert!(cache.svids_to_mint(deadline).is_empty());
}

#[test]
fn an_entry_change_that_affects_the_svid_makes_it_stale() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel)]);
    store(&cache, &["a"]);
    assert!(cache.svids_to_mint(t0()).is_empty());

    let mut hint_only = entry("a", &sel);
    hint_only.hint = "h".to_owned();
    cache.update_entries(vec![hint_only]);
    assert!(
        cache.svids_to_mint(t0()).is_empty(),
        "the hint is not in the SVID"
    );

    let mut bumped = entry("a", &sel);
    bumped.revision_number = 2;
    cache.update_entries(vec![bumped.clone()]);
    assert_eq!(minted(&cache.svids_to_mint(t0())), ["a"]);
    // Still served until replaced.
    assert_eq!(ids(&cache.identities(&selectors(&sel))), ["a"]);
    store(&cache, &["a"]);
    assert!(cache.svids_to_mint(t0()).is_empty());

    for change in [
        |e: &mut Entry| e.dns_names = vec!["a.example.org".to_owned()],
        |e: &mut Entry| e.x509_svid_ttl = 60,
        |e: &mut Entry| e.created_at += 1,
        |e: &mut Entry| e.spiffe_id = SpiffeId::parse("spiffe://example.org/other").unwrap(),
    ] {
        let mut changed = bumped.clone();
        change(&mut changed);
        cache.update_entries(vec![changed]);
        assert_eq!(minted(&cache.svids_to_mint(t0())), ["a"]);
        cache.update_entries(vec![bumped.clone()]);
    }
}

#[test]
fn an_svid_minted_for_an_older_entry_stays_stale() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel)]);
    assert_eq!(minted(&cache.svids_to_mint(t0())), ["a"]);
    let mut bumped = entry("a", &sel);
    bumped.revision_number = 2;
    cache.update_entries(vec![bumped]);
    store(&cache, &["a"]); // minted for revision 1
    assert_eq!(minted(&cache.svids_to_mint(t0())), ["a"]);
}

#[tokio::test]
async fn store_svid_entries_are_neither_minted_nor_served() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    let mut stored = entry("s", &sel);
    stored.store_svid = true;
    cache.update_entries(vec![entry("a", &sel), stored]);
    assert_eq!(minted(&cache.svids_to_mint(t0())), ["a"]);
    store(&cache, &["a", "s"]);
    assert_eq!(ids(&cache.identities(&selectors(&sel))), ["a"]);
    let mut sub = cache.subscribe(selectors(&sel));
    assert_eq!(ids(&sub.next().await.unwrap().identities), ["a"]);
}

#[tokio::test]
async fn equal_selector_sets_share_one_group_until_the_last_subscription_drops() {
    let cache = cache(100);
    let sel = ["unix:uid:1", "unix:gid:2"];
    cache.update_entries(vec![entry("a", &["unix:uid:1"])]);
    store(&cache, &["a"]);
    let mut one = cache.subscribe(selectors(&sel));
    let mut two = cache.subscribe(selectors(&["unix:gid:2", "unix:uid:1"]));
    let mut other = cache.subscribe(selectors(&["unix:uid:1"]));
    assert_eq!(cache.state().group_count(), 2);
    let (u1, u2) = (one.next().await.unwrap(), two.next().await.unwrap());
    assert!(Arc::ptr_eq(&u1, &u2), "one update per group");
    assert!(!Arc::ptr_eq(&u1, &other.next().await.unwrap()));
    drop(one);
    assert_eq!(cache.state().group_count(), 2);
    drop(two);
    assert_eq!(cache.state().group_count(), 1);
    drop(other);
    assert_eq!(cache.state().group_count(), 0);
}

#[tokio::test]
async fn next_ends_when_the_cache_is_gone() {
    let cache = cache(100);
    let mut sub = cache.subscribe(selectors(&["unix:uid:1"]));
    assert!(sub.next().await.is_some());
    drop(cache);
    assert!(sub.next().await.is_none());
}

#[tokio::test]
async fn work_available_is_kept_until_awaited_and_fires_on_entry_changes() {
    let cache = cache(100);
    cache.update_entries(vec![entry("a", &["unix:uid:1"])]);
    cache.work_available().await;
    // A no-op sync gives no new work.
    cache.update_entries(vec![entry("a", &["unix:uid:1"])]);
    let pending = tokio::select! {
        biased;
        () = cache.work_available() => false,
        () = std::future::ready(()) => true,
    };
    assert!(pending);
}

#[test]
fn memo_builds_once_per_type() {
    let update = WorkloadUpdate::new(
        Vec::new(),
        Arc::new(Bundle::new(td("example.org"))),
        BTreeMap::new(),
    );
    let builds = AtomicUsize::new(0);
    let first = update.memo(|u| {
        builds.fetch_add(1, Ordering::SeqCst);
        u.identities.len() + 41
    });
    let second = update.memo::<usize>(|_| {
        builds.fetch_add(1, Ordering::SeqCst);
        0
    });
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(*second, 41);
    let text = update.memo(|_| String::from("encoded"));
    assert_eq!(*text, "encoded");
    assert_eq!(builds.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_subscriber_on_another_task_receives_the_stored_svid() {
    let cache = cache(100);
    let sel = ["unix:uid:1"];
    cache.update_entries(vec![entry("a", &sel)]);
    let mut sub = cache.subscribe(selectors(&sel));
    let waiter = tokio::spawn(async move { sub.next().await.map(|u| u.identities.len()) });
    cache.work_available().await;
    let due = cache.svids_to_mint(t0());
    cache.store_svids(due.iter().map(|e| (e.id.clone(), svid(&e.id))).collect());
    assert_eq!(waiter.await.unwrap(), Some(1));
}

#[tokio::test]
async fn large_changes_rebuild_every_group_without_spurious_updates() {
    let cache = cache(1000);
    let all: Vec<Entry> = (0..100)
        .map(|i| entry(&format!("e{i:03}"), &[format!("unix:uid:{i}").as_str()]))
        .collect();
    cache.update_entries(all.clone());
    let ids_all: Vec<String> = all.iter().map(|e| e.id.clone()).collect();
    let refs: Vec<&str> = ids_all.iter().map(String::as_str).collect();
    store(&cache, &refs);
    let mut quiet = cache.subscribe(selectors(&["unix:uid:5"]));
    let mut touched = cache.subscribe(selectors(&["unix:uid:50"]));
    quiet.next().await.unwrap();
    touched.next().await.unwrap();
    // Rotate 50 SVIDs at once (more than the per-entry test threshold), not the one `quiet` uses.
    store(&cache, &refs[50..]);
    assert!(!has_update(&mut quiet).await);
    assert_eq!(ids(&touched.next().await.unwrap().identities), ["e050"]);
}

#[tokio::test]
async fn svids_signed_by_a_tainted_root_are_due_at_once() {
    let cache = cache(10);
    cache.update_entries(vec![entry("a", &["u:1"]), entry("b", &["u:1"])]);
    let _ = cache.svids_to_mint(t0());
    let mut signed_by_old = svid("a");
    signed_by_old.chain.push(b"old-root".to_vec());
    let mut signed_by_new = svid("b");
    signed_by_new.chain.push(b"new-root".to_vec());
    cache.store_svids(vec![
        ("a".to_owned(), signed_by_old),
        ("b".to_owned(), signed_by_new),
    ]);
    assert!(cache.svids_to_mint(t0()).is_empty());

    let mut bundle = Bundle::new(td("example.org"));
    bundle.x509_authorities = vec![
        spire_svid::X509Authority {
            asn1: b"old-root".to_vec(),
            tainted: false,
        },
        spire_svid::X509Authority {
            asn1: b"new-root".to_vec(),
            tainted: false,
        },
    ];
    cache.update_bundles(bundle.clone(), BTreeMap::new());
    assert!(cache.svids_to_mint(t0()).is_empty(), "nothing tainted yet");

    bundle.x509_authorities[0].tainted = true;
    cache.update_bundles(bundle, BTreeMap::new());
    // The minting loop is woken, and only the SVID the tainted root signed is due.
    tokio::time::timeout(Duration::from_secs(5), cache.work_available())
        .await
        .unwrap();
    assert_eq!(minted(&cache.svids_to_mint(t0())), ["a"]);
    assert_eq!(cache.next_rotation(), Some(SystemTime::UNIX_EPOCH));
}
