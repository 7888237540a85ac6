//! Writes over real HTTP: the status subresource and generation, optimistic concurrency,
//! finalizers, garbage collection of dependents and namespace deletion.

mod support;

use serde_json::{Value, json};
use spire_test_k8s::TestApiServer;
use support::{Client, JSON_PATCH, MERGE_PATCH, rv};

const CLUSTER_SPIFFE_IDS: &str = "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/spire/leases";
const CMS: &str = "/api/v1/namespaces/spire/configmaps";

fn cluster_spiffe_id(name: &str) -> Value {
    json!({
        "apiVersion": "spire.spiffe.io/v1alpha1",
        "kind": "ClusterSPIFFEID",
        "metadata": {"name": name},
        "spec": {"spiffeIDTemplate": "spiffe://example.org/ns/{{ .PodMeta.Namespace }}"},
        "status": {"stats": {"podsSelected": 99}},
    })
}

fn owner_ref(owner: &Value, block: bool) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": block,
    })
}

#[tokio::test]
async fn the_status_subresource_isolates_status_from_spec() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let path = format!("{CLUSTER_SPIFFE_IDS}/x");

    let (code, created) = client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("x"))
        .await;
    assert_eq!(code, 201);
    assert!(
        created.get("status").is_none(),
        "a create drops status: {created}"
    );
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // PUT on the object: spec changes, status stays as stored, generation moves.
    let mut update = created.clone();
    update["spec"]["dnsNameTemplates"] = json!(["a"]);
    update["status"] = json!({"stats": {"podsSelected": 1}});
    let (code, updated) = client.put(&path, &update).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["spec"]["dnsNameTemplates"], json!(["a"]));
    assert!(updated.get("status").is_none());
    assert_eq!(updated["metadata"]["generation"], 2);

    // PUT on /status: only status changes, generation does not.
    let mut status_update = updated.clone();
    status_update["status"] = json!({"stats": {"podsSelected": 3}});
    status_update["spec"]["dnsNameTemplates"] = json!(["ignored"]);
    status_update["metadata"]["labels"] = json!({"ignored": "too"});
    let (code, with_status) = client.put(&format!("{path}/status"), &status_update).await;
    assert_eq!(code, 200, "{with_status}");
    assert_eq!(with_status["status"]["stats"]["podsSelected"], 3);
    assert_eq!(with_status["spec"]["dnsNameTemplates"], json!(["a"]));
    assert!(with_status["metadata"].get("labels").is_none());
    assert_eq!(with_status["metadata"]["generation"], 2);

    // Merge and JSON patches on /status, and patches on the object that touch status.
    let (code, merged) = client
        .patch(
            &format!("{path}/status"),
            MERGE_PATCH,
            &json!({"status": {"stats": {"entriesToSet": 2}}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        merged["status"]["stats"],
        json!({"podsSelected": 3, "entriesToSet": 2})
    );
    let (code, json_patched) = client
        .patch(
            &format!("{path}/status"),
            JSON_PATCH,
            &json!([{"op": "replace", "path": "/status/stats/podsSelected", "value": 4},
                    {"op": "add", "path": "/spec/ignored", "value": true}]),
        )
        .await;
    assert_eq!(code, 200, "{json_patched}");
    assert_eq!(json_patched["status"]["stats"]["podsSelected"], 4);
    assert!(json_patched["spec"].get("ignored").is_none());
    let (_, patched) = client
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"status": null, "metadata": {"labels": {"l": "v"}}}),
        )
        .await;
    assert_eq!(patched["status"]["stats"]["podsSelected"], 4, "status kept");
    assert_eq!(patched["metadata"]["labels"]["l"], "v");
    assert_eq!(patched["metadata"]["generation"], 2, "metadata is not spec");

    let (code, object) = client.get(&format!("{path}/status")).await;
    assert_eq!(
        (code, object["kind"].as_str()),
        (200, Some("ClusterSPIFFEID"))
    );

    // Custom resources need a resourceVersion to be replaced.
    let mut unconditional = patched.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, status) = client.put(&path, &unconditional).await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));

    // Resources without the subresource have no /status; a namespaced CRD can declare it.
    server.put_config_map(json!({"metadata": {"name": "c", "namespace": "spire"}}));
    let (code, _) = client.get(&format!("{CMS}/c/status")).await;
    assert_eq!(code, 404);
    server.register_resource_with_status("example.com", "widgets", "Widget", true);
    let widgets = "/apis/example.com/v1/namespaces/ns/widgets";
    let (code, widget) = client
        .create(
            widgets,
            &json!({"metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"s": 1}}),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(widget["kind"], "Widget");
    assert!(widget.get("status").is_none());
    let (code, widget) = client
        .patch(
            &format!("{widgets}/w/status"),
            MERGE_PATCH,
            &json!({"status": {"s": 2}}),
        )
        .await;
    assert_eq!((code, widget["status"]["s"].as_i64()), (200, Some(2)));
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_cleared() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let path = format!("{CLUSTER_SPIFFE_IDS}/held");
    let (_, created) = client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("held"))
        .await;

    // kube-rs's finalizer helper: test that there are none, then add one.
    let (code, with_finalizer) = client
        .patch(
            &path,
            JSON_PATCH,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["spire.spiffe.io/entries"]}]),
        )
        .await;
    assert_eq!(code, 200, "{with_finalizer}");
    assert_eq!(
        with_finalizer["metadata"]["finalizers"],
        json!(["spire.spiffe.io/entries"])
    );
    let (code, status) = client
        .patch(
            &path,
            JSON_PATCH,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );

    let mut watch = client
        .watch(&format!(
            "{CLUSTER_SPIFFE_IDS}?watch=true&resourceVersion={}",
            rv(&with_finalizer)
        ))
        .await;
    let (code, deleting) = client.delete(&path).await;
    assert_eq!(code, 200);
    assert_eq!(
        deleting["kind"], "ClusterSPIFFEID",
        "answered with the object"
    );
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(deleting["metadata"]["generation"], 2);
    let (kind, modified) = watch.event().await;
    assert_eq!(kind, "MODIFIED");
    assert_eq!(
        modified["metadata"]["deletionTimestamp"],
        deleting["metadata"]["deletionTimestamp"]
    );
    let (code, still) = client.get(&path).await;
    assert_eq!(
        (code, still["metadata"]["uid"].clone()),
        (200, created["metadata"]["uid"].clone())
    );

    // No new finalizers on an object being deleted; deleting again changes nothing.
    let (code, status) = client
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"metadata": {"finalizers": ["spire.spiffe.io/entries", "other"]}}),
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
    let (code, again) = client.delete(&path).await;
    assert_eq!((code, rv(&again)), (200, rv(&deleting)));

    // kube-rs removes its finalizer by index, after testing it.
    let (code, last) = client
        .patch(
            &path,
            JSON_PATCH,
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "spire.spiffe.io/entries"},
                    {"op": "remove", "path": "/metadata/finalizers/0"}]),
        )
        .await;
    assert_eq!(code, 200, "{last}");
    let (kind, deleted) = watch.event().await;
    assert_eq!(kind, "DELETED", "no MODIFIED for the emptied finalizers");
    assert_eq!(deleted["metadata"]["finalizers"], json!([]));
    assert_eq!(rv(&deleted), rv(&last));
    let (code, status) = client.get(&path).await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));

    // The test helper deletes the same way.
    server.put_config_map(
        json!({"metadata": {"name": "f", "namespace": "spire", "finalizers": ["x"]}}),
    );
    let pending = server.request_deletion(&format!("{CMS}/f")).unwrap();
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    server
        .wait_for(&format!("{CMS}/f"), |cm| {
            cm["metadata"]["deletionTimestamp"].is_string()
        })
        .await;
}

#[tokio::test]
async fn stale_resource_versions_and_existing_names_conflict() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "spire-controller-manager-leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    });
    let (code, created) = client.create(LEASES, &lease).await;
    assert_eq!(code, 201);
    let (code, status) = client.create(LEASES, &lease).await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(
        status["message"],
        r#"leases.coordination.k8s.io "spire-controller-manager-leader" already exists"#
    );

    let path = format!("{LEASES}/spire-controller-manager-leader");
    let mut renew = created.clone();
    renew["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z".into();
    let (code, renewed) = client.put(&path, &renew).await;
    assert_eq!(code, 200);
    assert_ne!(rv(&renewed), rv(&created));

    // Another candidate still holding the first version loses.
    let mut takeover = created.clone();
    takeover["spec"]["holderIdentity"] = "b".into();
    let (code, status) = client.put(&path, &takeover).await;
    assert_eq!(code, 409);
    assert_eq!(
        status,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Operation cannot be fulfilled on leases.coordination.k8s.io \"spire-controller-manager-leader\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict",
            "details": {"name": "spire-controller-manager-leader", "group": "coordination.k8s.io", "kind": "leases"},
            "code": 409,
        })
    );
    // Patches with a stale resourceVersion conflict too, including on /status.
    let (code, _) = client
        .patch(&path, MERGE_PATCH, &json!({"metadata": {"resourceVersion": rv(&created)}, "spec": {"holderIdentity": "b"}}))
        .await;
    assert_eq!(code, 409);
    let (_, csid) = client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("x"))
        .await;
    client
        .patch(
            &format!("{CLUSTER_SPIFFE_IDS}/x"),
            MERGE_PATCH,
            &json!({"spec": {"hint": "h"}}),
        )
        .await;
    let mut stale = csid.clone();
    stale["status"] = json!({"stats": {}});
    let (code, status) = client
        .put(&format!("{CLUSTER_SPIFFE_IDS}/x/status"), &stale)
        .await;
    assert_eq!(code, 409);
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on clusterspiffeids.spire.spiffe.io \"x\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn dependents_are_garbage_collected_with_their_owner() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let (_, owner) = client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("owner"))
        .await;
    let (_, other) = client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("other"))
        .await;
    let dependent = |name: &str, owners: Vec<Value>, finalizers: Vec<&str>| json!({"metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers}});
    client
        .create(
            CMS,
            &dependent("plain", vec![owner_ref(&owner, true)], vec![]),
        )
        .await;
    client
        .create(
            CMS,
            &dependent("held", vec![owner_ref(&owner, true)], vec!["keep"]),
        )
        .await;
    client
        .create(
            CMS,
            &dependent(
                "shared",
                vec![owner_ref(&owner, false), owner_ref(&other, false)],
                vec![],
            ),
        )
        .await;
    // A dependent of a dependent goes too.
    let plain = server.get_object(&format!("{CMS}/plain")).unwrap();
    client
        .create(
            CMS,
            &dependent("grandchild", vec![owner_ref(&plain, false)], vec![]),
        )
        .await;

    let (code, _) = client.delete(&format!("{CLUSTER_SPIFFE_IDS}/owner")).await;
    assert_eq!(code, 200);
    assert_eq!(client.get(&format!("{CMS}/plain")).await.0, 404);
    assert_eq!(client.get(&format!("{CMS}/grandchild")).await.0, 404);
    let (_, held) = client.get(&format!("{CMS}/held")).await;
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    let (code, _) = client.get(&format!("{CMS}/shared")).await;
    assert_eq!(code, 200, "another owner still exists");

    client
        .patch(
            &format!("{CMS}/held"),
            MERGE_PATCH,
            &json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(client.get(&format!("{CMS}/held")).await.0, 404);

    // Orphaning keeps dependents without the reference.
    let (code, _) = client
        .request(
            "DELETE",
            &format!("{CLUSTER_SPIFFE_IDS}/other"),
            "application/json",
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"})),
        )
        .await;
    assert_eq!(code, 200);
    let (_, shared) = client.get(&format!("{CMS}/shared")).await;
    assert!(
        shared["metadata"].get("ownerReferences").is_none(),
        "{shared}"
    );
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let (_, owner) = client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("owner"))
        .await;
    client
        .create(
            CMS,
            &json!({"metadata": {"name": "blocker", "ownerReferences": [owner_ref(&owner, true)],
                                 "finalizers": ["keep"]}}),
        )
        .await;
    let path = format!("{CLUSTER_SPIFFE_IDS}/owner");
    let (code, deleting) = client
        .request(
            "DELETE",
            &format!("{path}?propagationPolicy=Foreground"),
            "",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    let (_, blocker) = client.get(&format!("{CMS}/blocker")).await;
    assert!(blocker["metadata"]["deletionTimestamp"].is_string());

    client
        .patch(
            &format!("{CMS}/blocker"),
            JSON_PATCH,
            &json!([{"op": "remove", "path": "/metadata/finalizers"}]),
        )
        .await;
    assert_eq!(client.get(&format!("{CMS}/blocker")).await.0, 404);
    server.wait_for_absent(&path).await;
}

#[tokio::test]
async fn a_deleted_namespace_empties_before_it_goes() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    server.put_namespace("team", &[("env", "test")]);
    let cms = "/api/v1/namespaces/team/configmaps";
    client
        .create(cms, &json!({"metadata": {"name": "free"}}))
        .await;
    client
        .create(
            cms,
            &json!({"metadata": {"name": "held", "finalizers": ["keep"]}}),
        )
        .await;
    client
        .create(
            "/apis/spiffeid.spiffe.io/v1beta1/namespaces/team/spiffeids",
            &json!({"metadata": {"name": "id"}, "spec": {}}),
        )
        .await;

    let (code, namespace) = client.delete("/api/v1/namespaces/team").await;
    assert_eq!(code, 200);
    assert_eq!(namespace["status"]["phase"], "Terminating");
    assert_eq!(client.get(&format!("{cms}/free")).await.0, 404);
    assert_eq!(
        client
            .get("/apis/spiffeid.spiffe.io/v1beta1/namespaces/team/spiffeids/id")
            .await
            .0,
        404
    );
    let (code, status) = client
        .create(cms, &json!({"metadata": {"name": "new"}}))
        .await;
    assert_eq!(code, 403);
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "configmaps \"new\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    assert_eq!(
        client.get("/api/v1/namespaces/team").await.0,
        200,
        "held by its content"
    );

    client
        .patch(
            &format!("{cms}/held"),
            MERGE_PATCH,
            &json!({"metadata": {"finalizers": []}}),
        )
        .await;
    assert_eq!(client.get("/api/v1/namespaces/team").await.0, 404);
}

#[tokio::test]
async fn strategic_merge_patches_merge_lists_by_key() {
    let server = TestApiServer::start().await;
    let client = Client::new(&server);
    let vwcs = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
    let webhook = |name: &str| {
        json!({"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
               "clientConfig": {"service": {"name": "webhook", "namespace": "spire", "path": format!("/{name}")}},
               "rules": [{"apiGroups": ["spire.spiffe.io"], "apiVersions": ["v1alpha1"],
                          "operations": ["CREATE", "UPDATE"], "resources": ["clusterspiffeids"]}]})
    };
    let (code, created) = client
        .create(
            vwcs,
            &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                    "metadata": {"name": "spire-controller-manager-webhook"},
                    "webhooks": [webhook("a"), webhook("b")]}),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["generation"], 1);

    // What spire-controller-manager sends to inject the CA bundle.
    let (code, patched) = client
        .patch(
            &format!("{vwcs}/spire-controller-manager-webhook"),
            "application/strategic-merge-patch+json",
            &json!({"webhooks": [{"name": "b", "clientConfig": {"caBundle": "UEVN"}}]}),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    let webhooks = patched["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 2);
    assert_eq!(webhooks[0], webhook("a"));
    assert_eq!(webhooks[1]["clientConfig"]["caBundle"], "UEVN");
    assert_eq!(webhooks[1]["clientConfig"]["service"]["path"], "/b");
    assert_eq!(webhooks[1]["rules"], webhook("b")["rules"]);
    assert_eq!(patched["metadata"]["generation"], 2);

    // Custom resources take no strategic merge patch.
    client
        .create(CLUSTER_SPIFFE_IDS, &cluster_spiffe_id("x"))
        .await;
    let (code, status) = client
        .patch(
            &format!("{CLUSTER_SPIFFE_IDS}/x"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"hint": "h"}}),
        )
        .await;
    assert_eq!(code, 415);
    assert_eq!(status["reason"], "UnsupportedMediaType");
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
}
