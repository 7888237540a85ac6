//! Lists over real HTTP: paging with continue tokens over a consistent snapshot, expired
//! tokens, cluster-wide lists, label and field selectors.

mod support;

use serde_json::{Value, json};
use spire_test_k8s::{PodBuilder, TestApiServer};
use support::{Client, names, rv};

const CMS: &str = "/api/v1/namespaces/spire/configmaps";

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}})
}

#[tokio::test]
async fn paging_walks_a_consistent_snapshot() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    for name in ["e", "b", "d", "a", "c"] {
        let (code, _) = client.create(CMS, &config_map(name)).await;
        assert_eq!(code, 201);
    }

    let first = client.list(&format!("{CMS}?limit=2")).await;
    assert_eq!(first["kind"], "ConfigMapList");
    assert_eq!(first["apiVersion"], "v1");
    assert_eq!(names(&first), ["a", "b"], "sorted by name, not by creation");
    let snapshot = rv(&first);
    assert_eq!(snapshot, server.resource_version().to_string());
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();

    // Writes between pages do not show in the rest of the list.
    client.delete(&format!("{CMS}/d")).await;
    client.create(CMS, &config_map("bb")).await;
    let mut c = server.get_object(&format!("{CMS}/c")).unwrap();
    c["data"]["changed"] = "yes".into();
    client.put(&format!("{CMS}/c"), &c).await;

    let second = client
        .list(&format!("{CMS}?limit=2&continue={token}"))
        .await;
    assert_eq!(names(&second), ["c", "d"], "the snapshot of the first page");
    assert_eq!(second["items"][0]["data"], json!({}), "c as it was");
    assert_eq!(
        rv(&second),
        snapshot,
        "every page has the first page's resourceVersion"
    );
    let token = second["metadata"]["continue"].as_str().unwrap().to_owned();
    let last = client
        .list(&format!("{CMS}?limit=2&continue={token}"))
        .await;
    assert_eq!(names(&last), ["e"]);
    assert!(last["metadata"].get("continue").is_none(), "{last}");
    assert!(last["metadata"].get("remainingItemCount").is_none());

    // A fresh list sees the writes.
    let now = client.list(CMS).await;
    assert_eq!(names(&now), ["a", "b", "bb", "c", "e"]);
    assert!(now["metadata"].get("continue").is_none());
}

#[tokio::test]
async fn expired_and_invalid_continue_tokens_are_refused() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    for name in ["a", "b", "c"] {
        client.create(CMS, &config_map(name)).await;
    }
    let first = client.list(&format!("{CMS}?limit=1")).await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();

    server.expire_continue_tokens();
    let (code, status) = client.get(&format!("{CMS}?limit=1&continue={token}")).await;
    assert_eq!(code, 410);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old"),
        "{status}"
    );
    // The inconsistent continuation the status offers lists the rest as it is now.
    let inconsistent = status["metadata"]["continue"].as_str().unwrap();
    let rest = client.list(&format!("{CMS}?continue={inconsistent}")).await;
    assert_eq!(names(&rest), ["b", "c"]);

    // A new list's tokens are valid again.
    let again = client.list(&format!("{CMS}?limit=1")).await;
    let token = again["metadata"]["continue"].as_str().unwrap().to_owned();
    assert_eq!(
        names(&client.list(&format!("{CMS}?continue={token}")).await),
        ["b", "c"]
    );

    let (code, status) = client.get(&format!("{CMS}?continue=not-a-token")).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
}

#[tokio::test]
async fn a_snapshot_older_than_the_history_is_expired() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    for name in ["a", "b"] {
        client.create(CMS, &config_map(name)).await;
    }
    let first = client.list(&format!("{CMS}?limit=1")).await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    client.create(CMS, &config_map("c")).await;
    server.expire_watch_history();
    let (code, status) = client.get(&format!("{CMS}?continue={token}")).await;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")));
}

#[tokio::test]
async fn cluster_wide_lists_and_selectors() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let pod = |name: &str, ns: &str, node: &str, labels: &[(&str, &str)]| {
        let mut builder = PodBuilder::new(name, ns, &format!("uid-{name}")).node(node);
        for (k, v) in labels {
            builder = builder.label(k, v);
        }
        server.put_pod(builder.build());
    };
    pod("p1", "a", "n1", &[("app", "web"), ("tier", "front")]);
    pod("p2", "a", "n2", &[("app", "db")]);
    pod("p3", "b", "n1", &[("app", "web"), ("canary", "")]);
    pod("p4", "b", "n2", &[]);

    let query = |q: &str| {
        let client = &client;
        let q = q.to_owned();
        async move { names(&client.list(&format!("/api/v1/pods?{q}")).await) }
    };
    assert_eq!(query("").await, ["p1", "p2", "p3", "p4"]);
    assert_eq!(
        names(&client.list("/api/v1/namespaces/b/pods").await),
        ["p3", "p4"]
    );
    assert_eq!(query("labelSelector=app%3Dweb").await, ["p1", "p3"]);
    assert_eq!(query("labelSelector=app%3D%3Dweb").await, ["p1", "p3"]);
    assert_eq!(query("labelSelector=app!%3Dweb").await, ["p2", "p4"]);
    assert_eq!(query("labelSelector=app+in+(web,db),tier").await, ["p1"]);
    assert_eq!(
        query("labelSelector=app%20notin%20(web)").await,
        ["p2", "p4"]
    );
    assert_eq!(query("labelSelector=canary").await, ["p3"]);
    assert_eq!(query("labelSelector=!app").await, ["p4"]);
    assert_eq!(
        query("fieldSelector=spec.nodeName%3Dn1").await,
        ["p1", "p3"]
    );
    assert_eq!(
        query("fieldSelector=metadata.namespace%3Db,spec.nodeName!%3Dn1").await,
        ["p4"]
    );
    assert_eq!(
        query("fieldSelector=metadata.name%3Dp2&labelSelector=app%3Ddb").await,
        ["p2"]
    );
    // Paging applies after the selection; no remainingItemCount with selectors.
    let page = client.list("/api/v1/pods?labelSelector=app&limit=1").await;
    assert_eq!(names(&page), ["p1"]);
    assert!(page["metadata"].get("remainingItemCount").is_none());
    let token = page["metadata"]["continue"].as_str().unwrap();
    assert_eq!(
        query(&format!("labelSelector=app&continue={token}")).await,
        ["p2", "p3"]
    );

    let (code, status) = client.get("/api/v1/pods?labelSelector=app+in+web").await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));

    // Cluster-scoped custom resources list under their group.
    server.put_object(
        "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids",
        json!({"metadata": {"name": "x"}, "spec": {"spiffeIDTemplate": "t"}}),
    );
    let list = client
        .list("/apis/spire.spiffe.io/v1alpha1/clusterspiffeids")
        .await;
    assert_eq!(list["kind"], "ClusterSPIFFEIDList");
    assert_eq!(list["apiVersion"], "spire.spiffe.io/v1alpha1");
    assert_eq!(list["items"][0]["kind"], "ClusterSPIFFEID");
    assert_eq!(list["items"][0]["metadata"]["generation"], 1);
}
