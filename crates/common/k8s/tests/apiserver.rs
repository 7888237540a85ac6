//! Every `ApiClient` call against the test kube-apiserver.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use spire_k8s::{ApiClient, ClientConfig, Error};
use spire_test_k8s::{
    Fault, PodBuilder, TestApiServer, TestCa, TokenReviewOutcome, config_map_json, node_json,
    token_review_user,
};

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const BUNDLE: &str = "/api/v1/namespaces/spire/configmaps/spire-bundle";

async fn server_and_client() -> (TestApiServer, ApiClient, tempfile::TempDir) {
    let server = TestApiServer::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = ClientConfig::from_kubeconfig(&server.kubeconfig(dir.path()))
        .expect("the test server's kubeconfig loads");
    let client = ApiClient::new(config).expect("a valid configuration");
    (server, client, dir)
}

fn agent_pod() -> Value {
    PodBuilder::new("spire-agent-x7k2p", "spire", "pod-uid-1")
        .node("node-1")
        .service_account("spire-agent")
        .host_ip("10.0.0.5")
        .label("app", "spire-agent")
        .owner("DaemonSet", "spire-agent", "ds-uid")
        .container(
            "spire-agent",
            "containerd://9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961",
            "ghcr.io/spiffe/spire-agent:1.5.4",
            "ghcr.io/spiffe/spire-agent@sha256:00",
        )
        .build()
}

#[tokio::test]
async fn pods_nodes_and_config_maps_are_read_with_the_kubeconfig_token() {
    let (server, client, _dir) = server_and_client().await;
    server.put_pod(agent_pod());
    server.put_node(node_json(
        "node-1",
        "node-uid-1",
        &[("topology.kubernetes.io/zone", "z1")],
    ));
    server.put_config_map(config_map_json(
        "spire",
        "spire-bundle",
        &[("bundle.crt", "PEM")],
    ));

    let pod = client.get_pod("spire", "spire-agent-x7k2p").await.unwrap();
    assert_eq!(pod.metadata.uid, "pod-uid-1");
    assert_eq!(pod.metadata.labels["app"], "spire-agent");
    assert_eq!(pod.metadata.owner_references[0].kind, "DaemonSet");
    assert!(pod.metadata.creation_timestamp.is_some());
    assert_eq!(pod.spec.node_name, "node-1");
    assert_eq!(pod.spec.service_account_name, "spire-agent");
    assert_eq!(pod.status.host_ip, "10.0.0.5");
    assert_eq!(
        pod.status.container_statuses[0].image,
        "ghcr.io/spiffe/spire-agent:1.5.4"
    );

    let node = client.get_node("node-1").await.unwrap();
    assert_eq!(node.metadata.uid, "node-uid-1");
    assert_eq!(node.metadata.labels["topology.kubernetes.io/zone"], "z1");

    let config_map = client
        .get_config_map("spire", "spire-bundle")
        .await
        .unwrap();
    assert_eq!(config_map.data["bundle.crt"], "PEM");
    assert_eq!(
        config_map.metadata.resource_version,
        server.resource_version().to_string()
    );

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/spire/pods/spire-agent-x7k2p",
            "/api/v1/nodes/node-1",
            BUNDLE,
        ]
    );
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {}", server.token()).as_str())
        );
    }
}

#[tokio::test]
async fn api_errors_carry_the_status_message_code_and_reason() {
    let (server, client, _dir) = server_and_client().await;
    let error = client.get_pod("spire", "gone").await.unwrap_err();
    assert_eq!(error.to_string(), r#"pods "gone" not found"#);
    assert_eq!(error.status_code(), Some(404));
    assert_eq!(error.reason(), Some("NotFound"));
    assert!(error.is_not_found());

    server.inject(Fault::status("/api/v1/nodes/n", 500).message("etcdserver: request timed out"));
    let error = client.get_node("n").await.unwrap_err();
    assert_eq!(error.to_string(), "etcdserver: request timed out");
    assert_eq!(
        (error.status_code(), error.reason()),
        (Some(500), Some("InternalError"))
    );

    server.inject(Fault::status("/api/v1/nodes/n", 403).message(
        r#"nodes "n" is forbidden: User "system:serviceaccount:spire:spire-server" cannot get resource "nodes""#,
    ));
    let error = client.get_node("n").await.unwrap_err();
    assert_eq!(error.reason(), Some("Forbidden"));
    assert!(error.to_string().starts_with(r#"nodes "n" is forbidden"#));

    let error = client.get_pod("spire", "").await.unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)), "{error}");
}

#[tokio::test]
async fn namespaces_are_read_with_their_labels() {
    let (server, client, _dir) = server_and_client().await;
    server.put_object(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "labels": {
                   "kubernetes.io/metadata.name": "shop", "team": "payments"}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
    );
    server.put_object(
        "/api/v1/namespaces",
        json!({"metadata": {"name": "bare", "labels": null}}),
    );

    let shop = client.get_namespace("shop").await.unwrap();
    assert_eq!(shop.metadata.name, "shop");
    assert_eq!(
        shop.metadata.labels,
        BTreeMap::from([
            ("kubernetes.io/metadata.name".to_owned(), "shop".to_owned()),
            ("team".to_owned(), "payments".to_owned()),
        ])
    );
    assert!(!shop.metadata.uid.is_empty());
    assert!(
        client
            .get_namespace("bare")
            .await
            .unwrap()
            .metadata
            .labels
            .is_empty()
    );

    let error = client.get_namespace("gone").await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.to_string(), r#"namespaces "gone" not found"#);
    server.inject(Fault::status("/api/v1/namespaces/shop", 403).message(
        r#"namespaces "shop" is forbidden: User "system:serviceaccount:spire:spire-agent" cannot get resource "namespaces""#,
    ));
    let error = client.get_namespace("shop").await.unwrap_err();
    assert_eq!(error.reason(), Some("Forbidden"));
    assert!(matches!(
        client.get_namespace("").await,
        Err(Error::InvalidRequest(_))
    ));

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/shop",
            "/api/v1/namespaces/bare",
            "/api/v1/namespaces/gone",
            "/api/v1/namespaces/shop",
        ]
    );
    assert!(requests.iter().all(|r| r.method == "GET"
        && r.authorization.as_deref() == Some(format!("Bearer {}", server.token()).as_str())));
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized() {
    let server = TestApiServer::start().await;
    let client = ApiClient::new(
        ClientConfig::new(server.url())
            .with_ca_pem(server.ca_pem())
            .with_token("not-a-valid-token"),
    )
    .unwrap();
    let error = client.get_node("n").await.unwrap_err();
    assert_eq!(error.to_string(), "Unauthorized");
    assert_eq!(error.status_code(), Some(401));
    // Without any credentials as well.
    let anonymous =
        ApiClient::new(ClientConfig::new(server.url()).with_ca_pem(server.ca_pem())).unwrap();
    let error = anonymous.get_node("n").await.unwrap_err();
    assert_eq!(error.status_code(), Some(401));
    assert!(server.requests()[1].authorization.is_none());
}

#[tokio::test]
async fn token_reviews_send_client_gos_exact_body_and_return_the_status() {
    let (server, client, _dir) = server_and_client().await;
    let user = token_review_user(
        "spire",
        "spire-agent",
        "spire-agent-x7k2p",
        "pod-uid-1",
        "node-1",
        "node-uid-1",
    );
    server.set_token_review("psat", TokenReviewOutcome::authenticated(user));
    let status = client
        .create_token_review("psat", &["spire-server".to_owned()])
        .await
        .unwrap();
    assert!(status.authenticated);
    assert!(status.error.is_empty());
    assert_eq!(status.audiences, ["spire-server"]);
    assert_eq!(
        status.user.username,
        "system:serviceaccount:spire:spire-agent"
    );
    assert_eq!(status.user.groups.len(), 3);
    assert_eq!(
        status.user.extra["authentication.kubernetes.io/pod-name"],
        ["spire-agent-x7k2p"]
    );
    assert_eq!(
        status.user.extra["authentication.kubernetes.io/pod-uid"],
        ["pod-uid-1"]
    );

    let request = &server.requests_to(TOKEN_REVIEWS)[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":"psat","audiences":["spire-server"]},"status":{"user":{}}}"#
    );

    // No audiences: spec.audiences is omitted and the apiserver's own audience comes back.
    let status = client.create_token_review("psat", &[]).await.unwrap();
    assert_eq!(status.audiences, [spire_test_k8s::DEFAULT_AUDIENCE]);
    assert_eq!(
        std::str::from_utf8(&server.requests_to(TOKEN_REVIEWS)[1].body).unwrap(),
        r#"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":"psat"},"status":{"user":{}}}"#
    );

    // Failed reviews are answers, not errors: the caller decides.
    server.set_token_review(
        "expired",
        TokenReviewOutcome::Error("token has expired".into()),
    );
    let status = client.create_token_review("expired", &[]).await.unwrap();
    assert!(!status.authenticated);
    assert_eq!(status.error, "token has expired");
    server.set_token_review("nope", TokenReviewOutcome::Unauthenticated);
    let status = client.create_token_review("nope", &[]).await.unwrap();
    assert!(!status.authenticated && status.error.is_empty());
    let status = client.create_token_review("unknown", &[]).await.unwrap();
    assert!(!status.error.is_empty());
    server.set_token_review(
        "other-audience",
        TokenReviewOutcome::Authenticated {
            user: json!({"username": "u"}),
            audiences: Some(vec!["other".into()]),
        },
    );
    let status = client
        .create_token_review("other-audience", &["spire-server".to_owned()])
        .await
        .unwrap();
    assert_eq!(status.audiences, ["other"]);
}

#[tokio::test]
async fn update_config_map_key_patches_with_the_resource_version_it_read() {
    let (server, client, _dir) = server_and_client().await;
    let seeded = server.put_config_map(config_map_json(
        "spire",
        "spire-bundle",
        &[("other", "kept")],
    ));
    client
        .update_config_map_key(
            "spire",
            "spire-bundle",
            "bundle.crt",
            "-----BEGIN CERTIFICATE-----\n",
        )
        .await
        .unwrap();
    let stored = server.get_object(BUNDLE).unwrap();
    assert_eq!(
        stored["data"],
        json!({"other": "kept", "bundle.crt": "-----BEGIN CERTIFICATE-----\n"})
    );
    assert_eq!(
        stored["metadata"]["creationTimestamp"],
        seeded["metadata"]["creationTimestamp"]
    );

    let requests = server.requests_to(BUNDLE);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    let patch = &requests[1];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.path, BUNDLE);
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        std::str::from_utf8(&patch.body).unwrap(),
        format!(
            r#"{{"metadata":{{"resourceVersion":"{}","creationTimestamp":null}},"data":{{"bundle.crt":"-----BEGIN CERTIFICATE-----\n"}}}}"#,
            seeded["metadata"]["resourceVersion"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn update_config_map_key_rereads_and_retries_on_conflict() {
    let (server, client, _dir) = server_and_client().await;
    server.put_config_map(config_map_json("spire", "spire-bundle", &[]));
    server.inject(Fault::status(BUNDLE, 409).method("PATCH").times(2));
    client
        .update_config_map_key("spire", "spire-bundle", "bundle.crt", "v1")
        .await
        .unwrap();
    let methods: Vec<String> = server
        .requests_to(BUNDLE)
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["GET", "PATCH", "GET", "PATCH", "GET", "PATCH"]);
    assert_eq!(
        server.get_object(BUNDLE).unwrap()["data"]["bundle.crt"],
        "v1"
    );

    // Five conflicts in a row: the last one is returned.
    server.clear_requests();
    server.inject(Fault::status(BUNDLE, 409).method("PATCH").times(5));
    let error = client
        .update_config_map_key("spire", "spire-bundle", "bundle.crt", "v2")
        .await
        .unwrap_err();
    assert!(error.is_conflict(), "{error}");
    assert_eq!(
        server
            .requests_to(BUNDLE)
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        5
    );

    // Other errors are not retried.
    server.clear_requests();
    server.inject(Fault::status(BUNDLE, 403).method("PATCH"));
    let error = client
        .update_config_map_key("spire", "spire-bundle", "bundle.crt", "v3")
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), Some(403));
    assert_eq!(server.requests_to(BUNDLE).len(), 2);
}

#[tokio::test]
async fn update_config_map_key_needs_an_existing_config_map() {
    let (server, client, _dir) = server_and_client().await;
    let error = client
        .update_config_map_key("spire", "spire-bundle", "bundle.crt", "x")
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), r#"configmaps "spire-bundle" not found"#);
    assert_eq!(server.requests().len(), 1, "no PATCH after the failed GET");
    assert!(server.get_object(BUNDLE).is_none());
}

#[tokio::test]
async fn apply_config_map_creates_then_updates_with_server_side_apply() {
    let (server, client, _dir) = server_and_client().await;
    let manager = "spire-bundlepublisher-k8s_configmap";
    let data = BTreeMap::from([("bundle.spiffe".to_owned(), r#"{"keys":[]}"#.to_owned())]);
    client
        .apply_config_map("spire", "spire-bundle", manager, &data)
        .await
        .unwrap();
    let created = server.get_object(BUNDLE).unwrap();
    assert_eq!(created["data"]["bundle.spiffe"], r#"{"keys":[]}"#);
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], manager);

    let request = &server.requests()[0];
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.path, format!("{BUNDLE}?fieldManager={manager}"));
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        std::str::from_utf8(&request.body).unwrap(),
        r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"spire-bundle","namespace":"spire"},"data":{"bundle.spiffe":"{\"keys\":[]}"}}"#
    );

    let data = BTreeMap::from([("bundle.spiffe".to_owned(), "two".to_owned())]);
    client
        .apply_config_map("spire", "spire-bundle", manager, &data)
        .await
        .unwrap();
    let updated = server.get_object(BUNDLE).unwrap();
    assert_eq!(updated["data"]["bundle.spiffe"], "two");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
}

#[tokio::test]
async fn connections_are_kept_alive_and_shared_between_clones() {
    let (server, client, _dir) = server_and_client().await;
    server.put_node(node_json("node-1", "uid", &[]));
    for _ in 0..20 {
        client.get_node("node-1").await.unwrap();
    }
    assert_eq!(server.connections(), 1);

    // Concurrent calls from clones multiplex on the same (HTTP/2) connection.
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_node("node-1").await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.request_count(), 120);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn slow_answers_time_out_per_request() {
    let (server, client, _dir) = server_and_client().await;
    server.put_node(node_json("node-1", "uid", &[]));
    server.inject(Fault::delay(
        "/api/v1/nodes/node-1",
        Duration::from_secs(3600),
    ));
    let client = client.with_timeout(Duration::from_millis(200));
    let error = client.get_node("node-1").await.unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert_eq!(error.to_string(), "request timed out after 200ms");
    // The fault is used up; the next call is answered.
    client.get_node("node-1").await.unwrap();
}

#[tokio::test]
async fn bodies_that_are_not_the_expected_object_are_decode_errors() {
    let (server, client, _dir) = server_and_client().await;
    server.put_object(
        "/api/v1/namespaces/spire/pods/odd",
        json!({"metadata": {"name": "odd"}, "spec": "not an object"}),
    );
    let error = client.get_pod("spire", "odd").await.unwrap_err();
    assert!(
        matches!(error, Error::Decode { what: "Pod", .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("unable to decode Pod: "),
        "{error}"
    );
}

#[tokio::test]
async fn token_files_and_client_certificates_authenticate() {
    let server = TestApiServer::start().await;
    server.put_node(node_json("node-1", "uid", &[]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), server.ca_pem()).unwrap();
    std::fs::write(dir.path().join("token"), format!("{}\n", server.token())).unwrap();
    let cert = server.issue_client_cert("spire-server");
    std::fs::write(dir.path().join("client.crt"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &cert.key_pem).unwrap();
    let kubeconfig = |user: &str| {
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "clusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: ca.crt\n\
                 contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n\
                 users:\n- name: u\n  user:\n{user}",
                server.url()
            ),
        )
        .unwrap();
        ApiClient::new(ClientConfig::from_kubeconfig(&path).unwrap()).unwrap()
    };
    let by_file = kubeconfig("    tokenFile: token\n");
    by_file.get_node("node-1").await.unwrap();
    assert_eq!(
        server.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {}", server.token()).as_str())
    );

    server.remove_token(server.token());
    let by_cert = kubeconfig("    client-certificate: client.crt\n    client-key: client.key\n");
    by_cert.get_node("node-1").await.unwrap();
    assert!(server.requests()[1].authorization.is_none());
    let error = by_file.get_node("node-1").await.unwrap_err();
    assert_eq!(error.status_code(), Some(401), "the token was revoked");
}

#[tokio::test]
async fn in_cluster_configuration_reaches_the_apiserver() {
    let server = TestApiServer::start().await;
    server.put_node(node_json("node-1", "uid", &[]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), server.token()).unwrap();
    std::fs::write(dir.path().join("ca.crt"), server.ca_pem()).unwrap();
    let url = server.url();
    let port = url.rsplit(':').next().unwrap().to_owned();
    let env = move |name: &str| match name {
        "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".to_owned()),
        "KUBERNETES_SERVICE_PORT" => Some(port.clone()),
        _ => None,
    };
    let config = ClientConfig::in_cluster_from(env, dir.path()).unwrap();
    let client = ApiClient::new(config).unwrap();
    assert_eq!(client.get_node("node-1").await.unwrap().metadata.uid, "uid");
}

#[tokio::test]
async fn the_server_certificate_is_verified() {
    let server = TestApiServer::start().await;
    server.put_node(node_json("node-1", "uid", &[]));
    let base = || ClientConfig::new(server.url()).with_token(server.token());
    let other_ca = TestCa::new("other");

    let error = ApiClient::new(base().with_ca_pem(other_ca.cert_pem()))
        .unwrap()
        .get_node("node-1")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );

    // tls-server-name: verified against another name the certificate holds, or not.
    let named = |name: &str| {
        ApiClient::new(
            base()
                .with_ca_pem(server.ca_pem())
                .with_tls_server_name(name),
        )
        .unwrap()
    };
    named("kubernetes.default.svc")
        .get_node("node-1")
        .await
        .unwrap();
    let error = named("wrong.example").get_node("node-1").await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error}");

    // insecure-skip-tls-verify trusts anything.
    ApiClient::new(base().with_insecure_skip_tls_verify())
        .unwrap()
        .get_node("node-1")
        .await
        .unwrap();
    assert!(
        ApiClient::new(base().with_ca_pem("not PEM"))
            .unwrap_err()
            .is_config()
    );
}

#[tokio::test]
async fn load_uses_the_kubeconfig_when_given() {
    let server = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = server.kubeconfig(dir.path());
    let config = ClientConfig::load(Some(&path)).unwrap();
    assert_eq!(config.server(), server.url());
    // Neither a path nor an in-cluster environment: a configuration error.
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        assert!(
            ClientConfig::load(Some(Path::new("")))
                .unwrap_err()
                .is_config()
        );
        assert!(ClientConfig::load(None).unwrap_err().is_config());
    }
}
