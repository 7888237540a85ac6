//! k8s_psat against a test kube-apiserver speaking the real TokenReview, pod and node shapes:
//! every row of SPIRE's attestation flow, in order, with its code and message.

use serde_json::{Value, json};
use spire_test_k8s::{
    Fault, PodBuilder, TestApiServer, TokenReviewOutcome, node_json, token_review_user,
};

use super::*;

const CLUSTER: &str = "demo-cluster";
const POD: &str = "spire-agent-x7k2p";
const POD_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const NODE: &str = "node-1";
const NODE_UID: &str = "6f6a1c5e-7d1b-4c41-9e4b-0b0e2b3c4d5e";
const TOKEN: &str = "projected-token";
const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

struct NoChallenge;

#[async_trait]
impl Challenger for NoChallenge {
    async fn challenge(&mut self, _challenge: Vec<u8>) -> Result<Vec<u8>> {
        panic!("k8s_psat never challenges")
    }
}

struct Fixture {
    api: TestApiServer,
    _dir: tempfile::TempDir,
    attestor: K8sPsatAttestor,
}

/// A cluster `demo-cluster` whose apiserver knows the agent pod, its node and its token;
/// `cluster` adds keys to the cluster's configuration.
async fn fixture(cluster: Value) -> Fixture {
    let api = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    api.put_node(node_json(
        NODE,
        NODE_UID,
        &[("topology.kubernetes.io/zone", "z1"), ("other", "x")],
    ));
    api.put_pod(
        PodBuilder::new(POD, "spire", POD_UID)
            .node(NODE)
            .service_account("spire-agent")
            .host_ip("10.0.0.5")
            .label("app", "spire-agent")
            .label("secret", "s")
            .build(),
    );
    api.set_token_review(
        TOKEN,
        TokenReviewOutcome::authenticated(token_review_user(
            "spire",
            "spire-agent",
            POD,
            POD_UID,
            NODE,
            NODE_UID,
        )),
    );
    let mut settings = json!({
        "service_account_allow_list": ["spire:spire-agent"],
        "kube_config_file": kubeconfig.to_str().unwrap(),
    });
    if let (Value::Object(settings), Value::Object(extra)) = (&mut settings, cluster) {
        settings.extend(extra);
    }
    let config =
        K8sPsatConfig::from_plugin_data(&json!({ "clusters": { CLUSTER: settings } })).unwrap();
    let attestor = K8sPsatAttestor::new(&config, TrustDomain::new("example.org").unwrap()).unwrap();
    Fixture {
        api,
        _dir: dir,
        attestor,
    }
}

fn payload(cluster: &str, token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "cluster": cluster, "token": token })).unwrap()
}

impl Fixture {
    async fn attest(&self, payload: Vec<u8>) -> Result<Attestation> {
        self.attestor.attest(payload, &mut NoChallenge).await
    }

    async fn fails(&self, payload: Vec<u8>) -> (AttestCode, String) {
        match self.attest(payload).await {
            Err(Error::Attestation { code, message }) => (code, message),
            other => panic!("expected an attestation failure, got {other:?}"),
        }
    }

    /// Replaces the review of [`TOKEN`] with a user whose extras are edited by `edit`.
    fn review_user(&self, edit: impl FnOnce(&mut Value)) {
        let mut user = token_review_user("spire", "spire-agent", POD, POD_UID, NODE, NODE_UID);
        edit(&mut user);
        self.api
            .set_token_review(TOKEN, TokenReviewOutcome::authenticated(user));
    }
}

/// The project's bad-input catalogue for this surface.
const CATALOGUE: &str = include_str!("../../../../../../test/bad-input/attest_k8s_psat.tsv");

/// Asserts that `got` is the catalogue's row `case`: same code, and the same message (or,
/// for a row ending in `…`, a message with that prefix).
fn assert_row(case: &str, got: (AttestCode, String)) {
    let row = CATALOGUE
        .lines()
        .skip(1)
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|cols| cols[1] == case)
        .unwrap_or_else(|| panic!("no catalogue row {case:?}"));
    let code = match row[2] {
        "InvalidArgument" => AttestCode::InvalidArgument,
        "PermissionDenied" => AttestCode::PermissionDenied,
        "Internal" => AttestCode::Internal,
        other => panic!("unexpected code {other}"),
    };
    assert_eq!(got.0, code, "{case}: {}", got.1);
    match row[3].strip_suffix('…') {
        Some(prefix) => assert!(got.1.starts_with(prefix), "{case}: {}", got.1),
        None => assert_eq!(got.1, row[3], "{case}"),
    }
}

#[test]
fn every_catalogue_row_is_well_formed() {
    let mut cases = std::collections::BTreeSet::new();
    for line in CATALOGUE.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "{line}");
        assert_eq!(cols[0], "AttestAgent/k8s_psat");
        assert!(cases.insert(cols[1]), "duplicate case {}", cols[1]);
        assert!(cols[3].starts_with("nodeattestor(k8s_psat): "), "{line}");
    }
    assert_eq!(cases.len(), 22);
}

#[tokio::test]
async fn attests_with_spires_agent_id_and_selectors_in_order() {
    let f = fixture(json!({
        "allowed_node_label_keys": ["topology.kubernetes.io/zone"],
        "allowed_pod_label_keys": ["app"],
    }))
    .await;
    let attestation = f.attest(payload(CLUSTER, TOKEN)).await.unwrap();
    assert_eq!(
        attestation.agent_id.to_string(),
        format!("spiffe://example.org/spire/agent/k8s_psat/{CLUSTER}/{NODE_UID}")
    );
    assert!(attestation.can_reattest);
    let selectors: Vec<String> = attestation
        .selectors
        .iter()
        .map(|s| format!("{}:{}", s.selector_type(), s.value()))
        .collect();
    assert_eq!(
        selectors,
        [
            format!("k8s_psat:cluster:{CLUSTER}"),
            "k8s_psat:agent_ns:spire".into(),
            "k8s_psat:agent_sa:spire-agent".into(),
            format!("k8s_psat:agent_pod_name:{POD}"),
            format!("k8s_psat:agent_pod_uid:{POD_UID}"),
            "k8s_psat:agent_node_ip:10.0.0.5".into(),
            format!("k8s_psat:agent_node_name:{NODE}"),
            format!("k8s_psat:agent_node_uid:{NODE_UID}"),
            "k8s_psat:agent_node_label:topology.kubernetes.io/zone:z1".into(),
            "k8s_psat:agent_pod_label:app:spire-agent".into(),
        ]
    );

    // The TokenReview went out in client-go's shape with the default audience.
    let reviews = f.api.requests_to(REVIEWS);
    assert_eq!(reviews.len(), 1);
    let body = reviews[0].json().unwrap();
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(body["spec"]["token"], TOKEN);
    assert_eq!(body["spec"]["audiences"], json!(["spire-server"]));
}

#[tokio::test]
async fn pod_uid_agent_ids_and_empty_audiences() {
    let f = fixture(json!({ "use_pod_uid_for_agent_id": true, "audience": [] })).await;
    let attestation = f.attest(payload(CLUSTER, TOKEN)).await.unwrap();
    assert_eq!(
        attestation.agent_id.to_string(),
        format!("spiffe://example.org/spire/agent/k8s_psat/{CLUSTER}/pod/{POD_UID}")
    );
    // No audiences configured: the request leaves spec.audiences out (the apiserver's own
    // audience applies) and nothing is checked against the answer.
    let body = f.api.requests_to(REVIEWS)[0].json().unwrap();
    assert!(body["spec"].get("audiences").is_none(), "{body}");
}

#[tokio::test]
async fn malformed_payloads_are_invalid_arguments() {
    let f = fixture(json!({})).await;
    let rows: [(&str, Vec<u8>); 6] = [
        ("empty payload", Vec::new()),
        ("payload is not JSON", b"{".to_vec()),
        ("no cluster", br#"{"token":"t"}"#.to_vec()),
        ("no token", br#"{"cluster":"demo-cluster"}"#.to_vec()),
        ("no token", payload(CLUSTER, "")),
        ("unknown cluster", payload("other-cluster", TOKEN)),
    ];
    for (case, payload) in rows {
        assert_row(case, f.fails(payload).await);
    }
    // Nothing reached the apiserver.
    assert!(f.api.requests_to(REVIEWS).is_empty());
}

#[tokio::test]
async fn token_review_failures_are_internal() {
    let f = fixture(json!({})).await;

    // An authenticator error in status.error (how a real apiserver reports expired tokens).
    f.api.set_token_review(
        TOKEN,
        TokenReviewOutcome::Error("[invalid bearer token, token has expired]".into()),
    );
    assert_row(
        "TokenReview status.error (expired token)",
        f.fails(payload(CLUSTER, TOKEN)).await,
    );

    // The apiserver itself fails.
    f.review_user(|_| {});
    f.api
        .inject(Fault::status(REVIEWS, 500).message("etcd is down"));
    let failure = f.fails(payload(CLUSTER, TOKEN)).await;
    assert!(failure.1.ends_with("etcd is down"), "{}", failure.1);
    assert_row("apiserver fails the TokenReview", failure);

    // Authenticated, but for another audience.
    f.api.set_token_review(
        TOKEN,
        TokenReviewOutcome::Authenticated {
            user: token_review_user("spire", "spire-agent", POD, POD_UID, NODE, NODE_UID),
            audiences: Some(vec!["https://kubernetes.default.svc".into()]),
        },
    );
    assert_row(
        "token for another audience",
        f.fails(payload(CLUSTER, TOKEN)).await,
    );
}

#[tokio::test]
async fn unauthenticated_and_disallowed_accounts_are_denied() {
    let f = fixture(json!({})).await;
    f.api
        .set_token_review(TOKEN, TokenReviewOutcome::Unauthenticated);
    assert_row(
        "token not authenticated",
        f.fails(payload(CLUSTER, TOKEN)).await,
    );

    f.review_user(|user| user["username"] = json!("system:serviceaccount:spire:other"));
    assert_row(
        "service account not allowed",
        f.fails(payload(CLUSTER, TOKEN)).await,
    );

    // Only "four parts, last two non-empty" is checked.
    for username in ["system:serviceaccount:spire", "a:b:c:", "a:b:c:d:e"] {
        f.review_user(|user| user["username"] = json!(username));
        assert_row("username not ns:sa", f.fails(payload(CLUSTER, TOKEN)).await);
    }
}

#[tokio::test]
async fn pod_extras_must_name_exactly_one_pod() {
    let f = fixture(json!({})).await;
    let rows: [(&str, &str, Value); 6] = [
        (
            "no pod-name extra",
            "authentication.kubernetes.io/pod-name",
            Value::Null,
        ),
        (
            "two pod-name extras",
            "authentication.kubernetes.io/pod-name",
            json!([POD, POD]),
        ),
        (
            "empty pod-name extra",
            "authentication.kubernetes.io/pod-name",
            json!([""]),
        ),
        (
            "no pod-uid extra",
            "authentication.kubernetes.io/pod-uid",
            Value::Null,
        ),
        (
            "no pod-uid values",
            "authentication.kubernetes.io/pod-uid",
            json!([]),
        ),
        (
            "empty pod-uid extra",
            "authentication.kubernetes.io/pod-uid",
            json!([""]),
        ),
    ];
    for (case, key, value) in rows {
        f.review_user(|user| {
            let extra = user["extra"].as_object_mut().unwrap();
            if value.is_null() {
                extra.remove(key);
            } else {
                extra.insert(key.into(), value.clone());
            }
        });
        assert_row(case, f.fails(payload(CLUSTER, TOKEN)).await);
    }
}

#[tokio::test]
async fn pod_and_node_lookups() {
    let f = fixture(json!({})).await;

    // The token is bound to a pod that no longer exists.
    f.review_user(|user| user["extra"]["authentication.kubernetes.io/pod-name"] = json!(["gone"]));
    assert_row("bound pod deleted", f.fails(payload(CLUSTER, TOKEN)).await);

    // A pod of that name exists, but it is a newer one than the token was issued for.
    f.review_user(|user| {
        user["extra"]["authentication.kubernetes.io/pod-uid"] = json!(["old-uid"]);
    });
    assert_row(
        "pod recreated under the same name",
        f.fails(payload(CLUSTER, TOKEN)).await,
    );

    // The pod is not scheduled.
    f.review_user(|_| {});
    f.api.put_pod(
        PodBuilder::new(POD, "spire", POD_UID)
            .service_account("spire-agent")
            .build(),
    );
    assert_row("pod not scheduled", f.fails(payload(CLUSTER, TOKEN)).await);

    // Scheduled on a node the apiserver does not know.
    f.api.put_pod(
        PodBuilder::new(POD, "spire", POD_UID)
            .node("node-2")
            .service_account("spire-agent")
            .build(),
    );
    assert_row("node unknown", f.fails(payload(CLUSTER, TOKEN)).await);

    // A node without a UID.
    f.api.put_node(node_json("node-2", "", &[]));
    assert_row("node without UID", f.fails(payload(CLUSTER, TOKEN)).await);
}

#[test]
fn configuration_rules() {
    // Unknown keys are ignored (the 2022 Istio quickstart sets a removed one).
    let config = K8sPsatConfig::from_plugin_data(&json!({
        "clusters": { "demo-cluster": {
            "use_token_review_api_validation": true,
            "service_account_allow_list": ["spire:spire-agent"],
        }},
    }))
    .unwrap();
    let cluster = &config.clusters["demo-cluster"];
    assert_eq!(cluster.audience, ["spire-server"]);
    assert_eq!(cluster.kube_config_file, None);
    assert!(!cluster.use_pod_uid_for_agent_id);

    let err = K8sPsatConfig::from_plugin_data(&json!({
        "clusters": { "c": { "service_account_allow_list": [] } },
    }))
    .unwrap_err();
    assert_eq!(
        err,
        "cluster \"c\" configuration must have at least one service account allowed"
    );
    // No clusters: valid, attestation just cannot succeed.
    assert!(
        K8sPsatConfig::from_plugin_data(&json!({}))
            .unwrap()
            .clusters
            .is_empty()
    );
}
