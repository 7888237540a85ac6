//! Watches over real HTTP: initial ADDED events, resuming from a resourceVersion, bookmarks,
//! `410 Expired` after the history is gone, selector transitions, timeouts, closing, and
//! both HTTP/1.1 (chunked) and HTTP/2.

mod support;

use std::time::Duration;

use http::Version;
use serde_json::{Value, json};
use spire_test_k8s::{PodBuilder, TestApiServer};
use support::{Client, MERGE_PATCH, rv};

const CMS: &str = "/api/v1/namespaces/spire/configmaps";

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}})
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"]
        .as_str()
        .expect("objects have a name")
}

#[tokio::test]
async fn a_watch_without_resource_version_starts_with_the_current_objects() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    client.create(CMS, &config_map("b")).await;
    client.create(CMS, &config_map("a")).await;

    let mut watch = client.watch(&format!("{CMS}?watch=true")).await;
    assert_eq!(watch.version, Version::HTTP_11);
    assert_eq!(watch.transfer_encoding.as_deref(), Some("chunked"));
    let (kind, a) = watch.event().await;
    assert_eq!((kind.as_str(), name(&a)), ("ADDED", "a"));
    let (kind, b) = watch.event().await;
    assert_eq!((kind.as_str(), name(&b)), ("ADDED", "b"));
    assert_eq!(a["kind"], "ConfigMap");

    // The watch is registered before its response arrives: nothing after it is missed.
    assert_eq!(server.open_watch_count(), 1);
    let (_, c) = client.create(CMS, &config_map("c")).await;
    let (_, patched) = client
        .patch(
            &format!("{CMS}/a"),
            MERGE_PATCH,
            &json!({"data": {"k": "v"}}),
        )
        .await;
    let (code, _) = client.delete(&format!("{CMS}/b")).await;
    assert_eq!(code, 200);
    let (kind, added) = watch.event().await;
    assert_eq!(
        (kind.as_str(), name(&added), rv(&added)),
        ("ADDED", "c", rv(&c))
    );
    let (kind, modified) = watch.event().await;
    assert_eq!(
        (kind.as_str(), modified["data"]["k"].as_str()),
        ("MODIFIED", Some("v"))
    );
    assert_eq!(rv(&modified), rv(&patched));
    let (kind, deleted) = watch.event().await;
    assert_eq!((kind.as_str(), name(&deleted)), ("DELETED", "b"));
    assert_eq!(
        rv(&deleted),
        server.resource_version().to_string(),
        "a DELETED event carries the deletion's resourceVersion"
    );

    // `resourceVersion=0` and `watch=1` behave the same.
    let mut again = client
        .watch(&format!("{CMS}?watch=1&resourceVersion=0"))
        .await;
    assert_eq!(name(&again.event().await.1), "a");
    assert_eq!(name(&again.event().await.1), "c");
}

#[tokio::test]
async fn a_watch_resumes_after_a_resource_version() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    client.create(CMS, &config_map("before")).await;
    let list = client.list(CMS).await;

    client.create(CMS, &config_map("x")).await;
    client.create(CMS, &config_map("y")).await;
    // Other resources share the counter but not the watch.
    client
        .create(
            "/api/v1/namespaces/spire/secrets",
            &json!({"metadata": {"name": "s"}}),
        )
        .await;
    client.delete(&format!("{CMS}/x")).await;

    let mut watch = client
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&list)))
        .await;
    let (kind, x) = watch.event().await;
    assert_eq!((kind.as_str(), name(&x)), ("ADDED", "x"));
    let (kind, y) = watch.event().await;
    assert_eq!((kind.as_str(), name(&y)), ("ADDED", "y"));
    let (kind, gone) = watch.event().await;
    assert_eq!((kind.as_str(), name(&gone)), ("DELETED", "x"));
    drop(watch);

    // Resume after the last event seen; only later changes arrive.
    client.create(CMS, &config_map("z")).await;
    let mut resumed = client
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&gone)))
        .await;
    let (kind, z) = resumed.event().await;
    assert_eq!((kind.as_str(), name(&z)), ("ADDED", "z"));
}

#[tokio::test]
async fn bookmarks_carry_the_current_resource_version() {
    let server = TestApiServer::start().await;
    server.set_bookmark_interval(Duration::from_millis(20));
    let client = Client::new(&server);
    client.create(CMS, &config_map("a")).await;
    let list = client.list(CMS).await;

    let mut watch = client
        .watch(&format!(
            "{CMS}?watch=true&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds=290",
            rv(&list)
        ))
        .await;
    let (kind, bookmark) = watch.event().await;
    assert_eq!(kind, "BOOKMARK");
    assert_eq!(
        bookmark,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": rv(&list)}})
    );

    let (_, b) = client.create(CMS, &config_map("b")).await;
    let (kind, added) = watch.change().await;
    assert_eq!((kind.as_str(), name(&added)), ("ADDED", "b"));
    let (kind, bookmark) = watch.event().await;
    assert_eq!(kind, "BOOKMARK");
    assert_eq!(bookmark["metadata"]["resourceVersion"], rv(&b));

    // A change to another resource moves the bookmark on too.
    server.put_node(json!({"metadata": {"name": "n"}}));
    let now = server.resource_version().to_string();
    loop {
        let (kind, bookmark) = watch.event().await;
        assert_eq!(kind, "BOOKMARK");
        if bookmark["metadata"]["resourceVersion"] == now.as_str() {
            break;
        }
    }
}

#[tokio::test]
async fn a_watch_without_bookmarks_ends_at_its_timeout_with_no_events() {
    let server = TestApiServer::start().await;
    server.set_bookmark_interval(Duration::from_millis(10));
    let client = Client::new(&server);
    let rv = server.resource_version();
    let mut watch = client
        .watch(&format!(
            "{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ))
        .await;
    assert_eq!(
        watch.next().await,
        None,
        "no bookmarks unless allowed, then the end"
    );
    assert_eq!(server.open_watch_count(), 0);
}

#[tokio::test]
async fn send_initial_events_ends_with_an_annotated_bookmark() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    client.create(CMS, &config_map("a")).await;
    let mut watch = client
        .watch(&format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    let (kind, a) = watch.event().await;
    assert_eq!((kind.as_str(), name(&a)), ("ADDED", "a"));
    let (kind, bookmark) = watch.event().await;
    assert_eq!(kind, "BOOKMARK");
    assert_eq!(
        bookmark["metadata"],
        json!({"resourceVersion": rv(&a), "annotations": {"k8s.io/initial-events-end": "true"}})
    );
}

#[tokio::test]
async fn a_watch_from_before_the_history_gets_410_expired() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let (_, a) = client.create(CMS, &config_map("a")).await;
    client.create(CMS, &config_map("b")).await;
    server.expire_watch_history();
    let current = server.resource_version();

    let mut watch = client
        .watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&a)))
        .await;
    let (kind, status) = watch.event().await;
    assert_eq!(kind, "ERROR");
    assert_eq!(
        status,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("too old resource version: {} ({current})", rv(&a)),
            "reason": "Expired",
            "code": 410,
        })
    );
    assert_eq!(watch.next().await, None, "the stream ends after the error");
    assert_eq!(server.open_watch_count(), 0, "an expired watch never opens");

    // From the current resourceVersion (or later) the watch works.
    let mut watch = client
        .watch(&format!("{CMS}?watch=true&resourceVersion={current}"))
        .await;
    client.create(CMS, &config_map("c")).await;
    assert_eq!(name(&watch.event().await.1), "c");

    // A bounded history forgets the oldest changes by itself.
    server.set_watch_history_limit(1);
    client.create(CMS, &config_map("d")).await;
    let mut watch = client
        .watch(&format!("{CMS}?watch=true&resourceVersion={current}"))
        .await;
    assert_eq!(watch.event().await.0, "ERROR");
}

#[tokio::test]
async fn selectors_turn_changes_into_added_and_deleted() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let pods = "/api/v1/namespaces/a/pods";
    let rv = server.resource_version();
    let mut watch = client
        .watch(&format!(
            "/api/v1/pods?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1"
        ))
        .await;

    let pod = |name: &str, ns: &str, node: &str| {
        PodBuilder::new(name, ns, &format!("uid-{name}"))
            .node(node)
            .build()
    };
    client.create(pods, &pod("plain", "a", "n1")).await;
    let mut labelled = pod("web", "b", "n1");
    labelled["metadata"]["labels"] = json!({"app": "web"});
    client.create("/api/v1/namespaces/b/pods", &labelled).await;
    let (kind, web) = watch.event().await;
    assert_eq!(
        (kind.as_str(), name(&web)),
        ("ADDED", "web"),
        "plain was not selected"
    );

    client
        .patch(
            &format!("{pods}/plain"),
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"app": "web"}}}),
        )
        .await;
    let (kind, plain) = watch.event().await;
    assert_eq!(
        (kind.as_str(), name(&plain)),
        ("ADDED", "plain"),
        "moved into the selection"
    );
    client
        .patch(
            &format!("{pods}/plain"),
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"tier": "x"}}}),
        )
        .await;
    let (kind, _) = watch.event().await;
    assert_eq!(kind, "MODIFIED");
    client
        .patch(
            &format!("{pods}/plain"),
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"app": "db"}}}),
        )
        .await;
    let (kind, plain) = watch.event().await;
    assert_eq!(
        (kind.as_str(), name(&plain)),
        ("DELETED", "plain"),
        "moved out of it"
    );
    assert_eq!(plain["metadata"]["labels"]["app"], "db", "in its new state");
    client.delete(&format!("{pods}/plain")).await;
    client.delete("/api/v1/namespaces/b/pods/web").await;
    let (kind, web) = watch.event().await;
    assert_eq!((kind.as_str(), name(&web)), ("DELETED", "web"));
}

#[tokio::test]
async fn closed_watches_end_and_are_counted() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let watcher = {
        let client = Client::new(&server);
        tokio::spawn(async move {
            let mut watch = client.watch(&format!("{CMS}?watch=true")).await;
            let mut seen = Vec::new();
            while let Some(event) = watch.next().await {
                seen.push(
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            seen
        })
    };
    server.wait_for_watches(1).await;
    client.create(CMS, &config_map("a")).await;
    server.close_watches();
    assert_eq!(server.open_watch_count(), 0);
    assert_eq!(
        watcher.await.unwrap(),
        ["a"],
        "changes due before the close arrive"
    );

    // A client that goes away unregisters its watch (noticed at the next write to it).
    server.set_bookmark_interval(Duration::from_millis(10));
    let watch = client
        .watch(&format!("{CMS}?watch=true&allowWatchBookmarks=true"))
        .await;
    assert_eq!(server.open_watch_count(), 1);
    drop(watch);
    assert_eq!(server.wait_for_watch_count(|open| open == 0).await, 0);
}

#[tokio::test]
async fn watches_stream_over_http2() {
    let server = TestApiServer::start().await;
    let client = Client::http2(&server);
    let mut watch = client
        .watch("/apis/coordination.k8s.io/v1/namespaces/spire/leases?watch=true")
        .await;
    assert_eq!(watch.version, Version::HTTP_2);
    let (code, _) = client
        .create(
            "/apis/coordination.k8s.io/v1/namespaces/spire/leases",
            &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "leader"}, "spec": {"holderIdentity": "me"}}),
        )
        .await;
    assert_eq!(code, 201);
    let (kind, lease) = watch.event().await;
    assert_eq!(
        (kind.as_str(), lease["kind"].as_str()),
        ("ADDED", Some("Lease"))
    );
    assert_eq!(lease["spec"]["holderIdentity"], "me");
}
