//! Store and protocol semantics, through the transport-free request handler.

use bytes::Bytes;
use serde_json::{Value, json};

use super::path::{Target, query_param};
use super::state::{ApiRequest, State, rfc3339};
use super::store::{Answer, Reply};
use super::verbs::{APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH};
use super::{Fault, TokenReviewOutcome};
use crate::lock;

const TOKEN: &str = "test-token";
const CMS: &str = "/api/v1/namespaces/spire/configmaps";

fn request(method: &str, path: &str, content_type: &str, body: &[u8]) -> ApiRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    ApiRequest {
        method: method.parse().unwrap(),
        path: path.to_owned(),
        query: query.to_owned(),
        content_type: content_type.to_owned(),
        accept: String::new(),
        authorization: Some(format!("Bearer {TOKEN}")),
        client_cert_user: None,
        body: Bytes::copy_from_slice(body),
    }
}

/// Answers a request that is not a watch.
fn handle(state: &State, request: &ApiRequest) -> Reply {
    match state.handle(request) {
        Answer::Reply(reply) => reply,
        Answer::Watch(_) => panic!("a watch"),
    }
}

/// Sends a request; returns the code and the raw body.
fn raw(state: &State, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let reply = handle(state, &request(method, path, content_type, body.as_bytes()));
    (reply.code, String::from_utf8(reply.body).unwrap())
}

fn call(state: &State, method: &str, path: &str, content_type: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, text) = raw(state, method, path, content_type, &body);
    (code, serde_json::from_str(&text).unwrap())
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn config_map(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn server() -> State {
    State::new(TOKEN.to_owned())
}

#[test]
fn one_resource_version_counter_spans_all_resources() {
    let state = server();
    let (code, a) = call(
        &state,
        "POST",
        CMS,
        "application/json",
        config_map("a", json!({})),
    );
    assert_eq!(code, 201);
    let (_, pod) = call(
        &state,
        "POST",
        "/api/v1/namespaces/spire/pods",
        "application/json",
        json!({"metadata": {"name": "p"}}),
    );
    let (_, lease) = call(
        &state,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/spire/leases",
        "application/json",
        json!({"metadata": {"name": "l"}}),
    );
    assert_eq!((rv(&a), rv(&pod), rv(&lease)), (1, 2, 3));
    assert_eq!(pod["kind"], "Pod", "kind filled in from the resource");
    assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(a["metadata"]["namespace"], "spire");
    assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        a["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let (_, b) = call(
        &state,
        "POST",
        CMS,
        "application/json",
        config_map("b", json!({})),
    );
    let (code, list) = call(&state, "GET", CMS, "", Value::Null);
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["metadata"]["resourceVersion"], rv(&b).to_string());
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn errors_are_real_status_objects() {
    let state = server();
    let (code, body) = raw(&state, "GET", &format!("{CMS}/x"), "", "");
    assert_eq!(code, 404);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"configmaps"},"code":404}"#
    );
    let (code, body) = raw(
        &state,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/spire/leases/l",
        "",
        "",
    );
    assert_eq!(code, 404);
    assert!(
        body.contains(r#""message":"leases.coordination.k8s.io \"l\" not found""#),
        "{body}"
    );
    assert!(body.contains(r#""group":"coordination.k8s.io""#), "{body}");

    call(
        &state,
        "POST",
        CMS,
        "application/json",
        config_map("x", json!({})),
    );
    let (code, body) = raw(
        &state,
        "POST",
        CMS,
        "application/json",
        &config_map("x", json!({})).to_string(),
    );
    assert_eq!(code, 409);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"x\" already exists","reason":"AlreadyExists","details":{"name":"x","kind":"configmaps"},"code":409}"#
    );

    let mut unauthenticated = request("GET", CMS, "", b"");
    unauthenticated.authorization = Some("Bearer wrong".into());
    let reply = handle(&state, &unauthenticated);
    assert_eq!(reply.code, 401);
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
    );
    unauthenticated.authorization = None;
    assert_eq!(handle(&state, &unauthenticated).code, 401);
    unauthenticated.client_cert_user = Some("admin".into());
    assert_eq!(
        handle(&state, &unauthenticated).code,
        200,
        "a client certificate authenticates"
    );

    let (code, status) = call(
        &state,
        "POST",
        CMS,
        "application/json",
        json!({"metadata": {}}),
    );
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        r#"ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required"#
    );
    let (code, status) = call(&state, "GET", "/api/v1/nosuch/path/at/all", "", Value::Null);
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = call(
        &state,
        "GET",
        "/api/v1/namespaces/spire/nodes/n",
        "",
        Value::Null,
    );
    assert_eq!(code, 404, "nodes are cluster-scoped");
}

#[test]
fn updates_with_a_stale_resource_version_conflict() {
    let state = server();
    let (_, created) = call(
        &state,
        "POST",
        CMS,
        "application/json",
        config_map("x", json!({"k": "1"})),
    );
    let path = format!("{CMS}/x");

    let mut update = created.clone();
    update["data"]["k"] = "2".into();
    let (code, updated) = call(&state, "PUT", &path, "application/json", update.clone());
    assert_eq!(code, 200);
    assert_eq!(rv(&updated), rv(&created) + 1);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);

    // `update` still carries the first resourceVersion.
    let (code, status) = call(&state, "PUT", &path, "application/json", update);
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        r#"Operation cannot be fulfilled on configmaps "x": the object has been modified; please apply your changes to the latest version and try again"#
    );

    // A PATCH carrying a resourceVersion is conditional too (k8sbundle's patch).
    let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"], "creationTimestamp": null}, "data": {"k": "3"}});
    let (code, _) = call(&state, "PATCH", &path, STRATEGIC_MERGE_PATCH, stale);
    assert_eq!(code, 409);
    let fresh = json!({"metadata": {"resourceVersion": updated["metadata"]["resourceVersion"], "creationTimestamp": null}, "data": {"k": "3"}});
    let (code, patched) = call(&state, "PATCH", &path, STRATEGIC_MERGE_PATCH, fresh);
    assert_eq!(code, 200);
    assert_eq!(patched["data"]["k"], "3");
    assert_eq!(
        patched["metadata"]["creationTimestamp"], created["metadata"]["creationTimestamp"],
        "creationTimestamp: null does not erase it"
    );

    // Without a resourceVersion a merge patch always applies; a no-op does not bump it.
    let (_, merged) = call(
        &state,
        "PATCH",
        &path,
        MERGE_PATCH,
        json!({"data": {"other": "x", "k": null}}),
    );
    assert_eq!(merged["data"], json!({"other": "x"}));
    let (_, again) = call(
        &state,
        "PATCH",
        &path,
        MERGE_PATCH,
        json!({"data": {"other": "x"}}),
    );
    assert_eq!(
        rv(&again),
        rv(&merged),
        "an unchanged object keeps its resourceVersion"
    );

    let (code, status) = call(
        &state,
        "PUT",
        &format!("{CMS}/missing"),
        "application/json",
        config_map("missing", json!({})),
    );
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = call(&state, "PATCH", &path, "application/json", json!({}));
    assert_eq!(code, 415);
    let (code, _) = call(&state, "PATCH", &path, JSON_PATCH, json!([]));
    assert_eq!(code, 200, "an empty JSON patch is a no-op");
}

#[test]
fn server_side_apply_creates_then_merges() {
    let state = server();
    let path = format!("{CMS}/spire-bundle?fieldManager=spire-bundlepublisher-k8s_configmap");
    let body = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "spire-bundle", "namespace": "spire"}, "data": {"bundle.spiffe": "one"}});
    let (code, created) = call(&state, "PATCH", &path, APPLY_PATCH, body);
    assert_eq!(code, 201);
    assert_eq!(created["data"]["bundle.spiffe"], "one");
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "spire-bundlepublisher-k8s_configmap"
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );

    // A YAML body works as well.
    let yaml = "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: spire-bundle\n  namespace: spire\ndata:\n  bundle.spiffe: two\n";
    let (code, text) = raw(&state, "PATCH", &path, APPLY_PATCH, yaml);
    assert_eq!(code, 200, "{text}");
    let updated: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(updated["data"]["bundle.spiffe"], "two");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(rv(&updated), rv(&created) + 1);
    assert_eq!(
        updated["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (code, status) = call(
        &state,
        "PATCH",
        &format!("{CMS}/spire-bundle"),
        APPLY_PATCH,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "spire-bundle"}}),
    );
    assert_eq!(
        (code, status["reason"].as_str()),
        (400, Some("BadRequest")),
        "fieldManager is required"
    );
    let (code, _) = call(
        &state,
        "PATCH",
        &format!("{CMS}/other?fieldManager=m"),
        APPLY_PATCH,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "spire-bundle"}}),
    );
    assert_eq!(code, 400, "the name must match the URL");
    // Merge patches do not create.
    let (code, _) = call(
        &state,
        "PATCH",
        &format!("{CMS}/absent"),
        MERGE_PATCH,
        json!({"data": {}}),
    );
    assert_eq!(code, 404);
}

#[test]
fn deletes_answer_a_success_status_and_honour_preconditions() {
    let state = server();
    let (_, created) = call(
        &state,
        "POST",
        CMS,
        "application/json",
        config_map("x", json!({})),
    );
    let path = format!("{CMS}/x");
    let (code, status) = call(
        &state,
        "DELETE",
        &path,
        "application/json",
        json!({"preconditions": {"uid": "other"}}),
    );
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    let before = lock(&state.store).revision();
    let (code, status) = call(&state, "DELETE", &path, "", Value::Null);
    assert_eq!(code, 200);
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        lock(&state.store).revision(),
        before + 1,
        "a delete is a write"
    );
    let (code, _) = call(&state, "DELETE", &path, "", Value::Null);
    assert_eq!(code, 404);
}

#[test]
fn lists_filter_by_namespace_and_selectors() {
    let state = server();
    let mut store = lock(&state.store);
    let pods = |ns: &str| Target::parse(&format!("/api/v1/namespaces/{ns}/pods")).unwrap();
    store.put(
        &pods("a"),
        json!({"metadata": {"name": "p1", "labels": {"app": "x"}}, "spec": {"nodeName": "n1"}}),
        "t",
    );
    store.put(
        &pods("a"),
        json!({"metadata": {"name": "p2", "labels": {"app": "y"}}, "spec": {"nodeName": "n2"}}),
        "t",
    );
    store.put(
        &pods("b"),
        json!({"metadata": {"name": "p3", "uid": "fixed"}, "spec": {"nodeName": "n1"}}),
        "t",
    );
    drop(store);
    let names = |path: &str| -> Vec<String> {
        let (code, list) = call(&state, "GET", path, "", Value::Null);
        assert_eq!(code, 200, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("/api/v1/pods"), ["p1", "p2", "p3"]);
    assert_eq!(names("/api/v1/namespaces/a/pods"), ["p1", "p2"]);
    assert_eq!(names("/api/v1/pods?labelSelector=app%3Dx"), ["p1"]);
    assert_eq!(names("/api/v1/pods?labelSelector=app!=x"), ["p2", "p3"]);
    assert_eq!(names("/api/v1/pods?labelSelector=!app"), ["p3"]);
    assert_eq!(
        names("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1"),
        ["p1", "p3"]
    );
    let (_, p3) = call(
        &state,
        "GET",
        "/api/v1/namespaces/b/pods/p3",
        "",
        Value::Null,
    );
    assert_eq!(p3["metadata"]["uid"], "fixed", "seeded UIDs are kept");
    assert_eq!(p3["kind"], "Pod");
    assert!(matches!(
        state.handle(&request("GET", "/api/v1/pods?watch=1", "", b"")),
        Answer::Watch(_)
    ));
}

#[test]
fn token_reviews_answer_from_registered_outcomes() {
    let state = server();
    let user = crate::token_review_user(
        "spire",
        "spire-agent",
        "agent-x",
        "pod-uid",
        "n1",
        "node-uid",
    );
    lock(&state.reviews).insert(
        "good".into(),
        TokenReviewOutcome::authenticated(user.clone()),
    );
    lock(&state.reviews).insert("off".into(), TokenReviewOutcome::Unauthenticated);
    lock(&state.reviews).insert(
        "expired".into(),
        TokenReviewOutcome::Error("token has expired".into()),
    );
    let review = |token: &str, audiences: Option<Vec<&str>>| {
        let mut body = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": token}});
        if let Some(a) = audiences {
            body["spec"]["audiences"] = json!(a);
        }
        call(
            &state,
            "POST",
            super::state::TOKEN_REVIEWS,
            "application/json",
            body,
        )
    };
    let (code, body) = review("good", Some(vec!["spire-server"]));
    assert_eq!(code, 201);
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(body["spec"]["audiences"], json!(["spire-server"]));
    assert_eq!(body["status"]["authenticated"], true);
    assert_eq!(body["status"]["audiences"], json!(["spire-server"]));
    assert_eq!(body["status"]["user"], user);
    let (_, body) = review("good", None);
    assert_eq!(
        body["status"]["audiences"],
        json!([super::DEFAULT_AUDIENCE])
    );
    assert!(body["spec"].get("audiences").is_none());
    let (_, body) = review("off", None);
    assert_eq!(body["status"], json!({"authenticated": false, "user": {}}));
    let (_, body) = review("expired", None);
    assert_eq!(
        body["status"],
        json!({"user": {}, "error": "token has expired"})
    );
    let (_, body) = review("unknown", None);
    assert!(
        body["status"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid bearer token")
    );
    let (code, _) = review("", None);
    assert_eq!(code, 400);
}

#[test]
fn faults_apply_to_matching_requests_a_given_number_of_times() {
    let state = server();
    lock(&state.faults).push(Fault::status(CMS, 500).times(2).method("GET"));
    let get = request("GET", CMS, "", b"");
    let post = request("POST", CMS, "", b"");
    assert!(state.take_fault(&post).is_none(), "method filter");
    assert!(
        state
            .take_fault(&request("GET", "/api/v1/nodes", "", b""))
            .is_none()
    );
    let action = state.take_fault(&get).unwrap();
    assert_eq!(
        action.status,
        Some((500, "injected fault (500 InternalError)".into()))
    );
    assert!(state.take_fault(&get).is_some());
    assert!(state.take_fault(&get).is_none(), "used up");
}

#[test]
fn paths_and_queries_parse() {
    let t = Target::parse("/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/x/status").unwrap();
    assert_eq!(
        (
            t.group.as_str(),
            t.version.as_str(),
            t.resource.as_str(),
            t.name.as_deref(),
            t.subresource.as_deref(),
            t.namespace
        ),
        (
            "spire.spiffe.io",
            "v1alpha1",
            "clusterspiffeids",
            Some("x"),
            Some("status"),
            None
        )
    );
    let t = Target::parse("/api/v1/namespaces/spire").unwrap();
    assert_eq!(
        (t.resource.as_str(), t.name.as_deref()),
        ("namespaces", Some("spire"))
    );
    let t = Target::parse("/api/v1/namespaces/spire/configmaps").unwrap();
    assert_eq!((t.namespace.as_deref(), t.name), (Some("spire"), None));
    assert!(Target::parse("/api").is_none());
    assert!(Target::parse("/healthz").is_none());
    assert_eq!(
        query_param("a=1&fieldManager=x%20y", "fieldManager").as_deref(),
        Some("x y")
    );
    assert_eq!(query_param("a=1", "b"), None);
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_825_599), "2000-02-29T11:59:59Z");
}
