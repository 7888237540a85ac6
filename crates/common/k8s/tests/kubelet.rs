//! `KubeletClient::get_pods` against the test kubelet: auth modes, verification modes and
//! misbehaviour.

use std::time::Duration;

use serde_json::Value;
use spire_k8s::Error;
use spire_k8s::kubelet::{KubeletAuth, KubeletClient, KubeletConfig, KubeletVerify};
use spire_test_k8s::{
    KubeletBehavior, PodBuilder, TestCa, TestKubelet, TestKubeletAuth, TestKubeletConfig,
};

const NODE: &str = "node-1";

fn pod(name: &str) -> Value {
    PodBuilder::new(name, "default", &format!("uid-{name}"))
        .node(NODE)
        .service_account("sleep")
        .container(
            "sleep",
            "containerd://9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961",
            "docker.io/curlimages/curl:latest",
            "docker.io/curlimages/curl@sha256:00",
        )
        .build()
}

fn verify(kubelet: &TestKubelet) -> KubeletVerify {
    KubeletVerify::Roots {
        ca_pem: kubelet.ca_pem().as_bytes().to_vec(),
        server_name: Some(NODE.to_owned()),
    }
}

fn client(url: String, auth: KubeletAuth, verify: KubeletVerify) -> KubeletClient {
    KubeletClient::new(KubeletConfig::new(url, auth, verify)).expect("a valid configuration")
}

async fn bearer_kubelet() -> (TestKubelet, KubeletClient) {
    let kubelet = TestKubelet::start(TestKubeletConfig::new(
        NODE,
        TestKubeletAuth::Bearer("sa-token".into()),
    ))
    .await;
    let client = client(
        kubelet.url(),
        KubeletAuth::Bearer("sa-token".into()),
        verify(&kubelet),
    );
    (kubelet, client)
}

#[tokio::test]
async fn bearer_tokens_fetch_the_raw_pod_list() {
    let (kubelet, client) = bearer_kubelet().await;
    kubelet.set_pods(vec![pod("a"), pod("b")]);
    let body = client.get_pods().await.unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":["#),
        "{text}"
    );
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["items"], serde_json::json!([pod("a"), pod("b")]));
    let requests = kubelet.requests();
    assert_eq!(requests[0].path, "/pods");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer sa-token")
    );

    // Keep-alive: later fetches reuse the connection.
    for _ in 0..5 {
        client.get_pods().await.unwrap();
    }
    assert_eq!(kubelet.request_count(), 6);
    assert_eq!(kubelet.connections(), 1);

    let wrong = self::client(
        kubelet.url(),
        KubeletAuth::Bearer("other".into()),
        verify(&kubelet),
    );
    let error = wrong.get_pods().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "unexpected status code on pods response: 401 Unauthorized"
    );
    assert_eq!(error.status_code(), Some(401));
}

#[tokio::test]
async fn client_certificates_authenticate() {
    let kubelet =
        TestKubelet::start(TestKubeletConfig::new(NODE, TestKubeletAuth::ClientCert)).await;
    let cert = kubelet.client_ca().issue_client_cert("spire-agent", &[]);
    let with_cert = client(
        kubelet.url(),
        KubeletAuth::ClientCert {
            cert_pem: cert.cert_pem.into_bytes(),
            key_pem: cert.key_pem.into_bytes(),
        },
        verify(&kubelet),
    );
    with_cert.get_pods().await.unwrap();
    assert_eq!(
        kubelet.requests()[0].client_cert.as_deref(),
        Some("spire-agent")
    );

    let without = client(kubelet.url(), KubeletAuth::Anonymous, verify(&kubelet));
    let error = without.get_pods().await.unwrap_err();
    assert_eq!(error.status_code(), Some(401));
}

#[tokio::test]
async fn anonymous_callers_and_every_verification_mode() {
    let kubelet =
        TestKubelet::start(TestKubeletConfig::new(NODE, TestKubeletAuth::Anonymous)).await;
    kubelet.set_pods(vec![pod("a")]);
    let ca = kubelet.ca_pem().as_bytes().to_vec();
    let get = |url: String, verify: KubeletVerify| async move {
        client(url, KubeletAuth::Anonymous, verify).get_pods().await
    };
    // By node name (the certificate holds it), connecting to 127.0.0.1.
    get(kubelet.url(), verify(&kubelet)).await.unwrap();
    // Chain only: `localhost` is not in the certificate, but the name is not checked.
    let localhost = format!("https://localhost:{}", kubelet.port());
    let chain_only = KubeletVerify::Roots {
        ca_pem: ca.clone(),
        server_name: None,
    };
    get(localhost.clone(), chain_only).await.unwrap();
    // ...whereas a name check fails.
    let named = KubeletVerify::Roots {
        ca_pem: ca.clone(),
        server_name: Some("other-node".into()),
    };
    let error = get(kubelet.url(), named).await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    // A chain from another CA fails even without the name check.
    let other = KubeletVerify::Roots {
        ca_pem: TestCa::new("other").cert_pem().as_bytes().to_vec(),
        server_name: None,
    };
    let error = get(localhost.clone(), other).await.unwrap_err();
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
    // skip_kubelet_verification.
    get(localhost, KubeletVerify::Skip).await.unwrap();
}

#[tokio::test]
async fn the_read_only_port_is_plain_http() {
    let kubelet = TestKubelet::start(TestKubeletConfig::read_only(NODE)).await;
    kubelet.set_pods(vec![pod("a")]);
    assert!(kubelet.url().starts_with("http://127.0.0.1:"));
    let client = client(kubelet.url(), KubeletAuth::Anonymous, KubeletVerify::Skip);
    let list: Value = serde_json::from_slice(&client.get_pods().await.unwrap()).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "a");
}

#[tokio::test]
async fn error_statuses_and_garbage_bodies() {
    let (kubelet, client) = bearer_kubelet().await;
    kubelet.set_behavior(KubeletBehavior::Status(403)).await;
    let error = client.get_pods().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "unexpected status code on pods response: 403 Forbidden (user=system:serviceaccount:spire:spire-agent, verb=get, resource=nodes, subresource=proxy)"
    );
    kubelet.set_behavior(KubeletBehavior::Status(500)).await;
    let error = client.get_pods().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "unexpected status code on pods response: 500 Internal Server Error"
    );
    // A garbage 200 body is returned as is: the attestor judges it.
    kubelet.set_behavior(KubeletBehavior::Garbage).await;
    let body = client.get_pods().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let kubelet =
        TestKubelet::start(TestKubeletConfig::new(NODE, TestKubeletAuth::Anonymous)).await;
    let limit = 1024 * 1024;
    let mut config = KubeletConfig::new(kubelet.url(), KubeletAuth::Anonymous, verify(&kubelet));
    config.max_body_bytes = limit;
    let client = KubeletClient::new(config).unwrap();
    for content_length in [true, false] {
        kubelet
            .set_behavior(KubeletBehavior::Oversized {
                bytes: limit + 1,
                content_length,
            })
            .await;
        let error = client.get_pods().await.unwrap_err();
        assert!(
            matches!(error, Error::BodyTooLarge { limit: l } if l == limit),
            "content_length={content_length}: {error}"
        );
        // Exactly the limit is fine.
        kubelet
            .set_behavior(KubeletBehavior::Oversized {
                bytes: limit,
                content_length,
            })
            .await;
        assert_eq!(client.get_pods().await.unwrap().len(), limit);
    }
    // A 1 GiB body is refused as well (streamed by the kubelet, never buffered by either side).
    kubelet
        .set_behavior(KubeletBehavior::Oversized {
            bytes: 1 << 30,
            content_length: false,
        })
        .await;
    assert!(matches!(
        client.get_pods().await,
        Err(Error::BodyTooLarge { .. })
    ));
}

#[tokio::test]
async fn slow_kubelets_time_out() {
    let kubelet =
        TestKubelet::start(TestKubeletConfig::new(NODE, TestKubeletAuth::Anonymous)).await;
    kubelet
        .set_behavior(KubeletBehavior::Slow(Duration::from_secs(3600)))
        .await;
    let mut config = KubeletConfig::new(kubelet.url(), KubeletAuth::Anonymous, verify(&kubelet));
    config.timeout = Duration::from_millis(200);
    let client = KubeletClient::new(config).unwrap();
    let error = client.get_pods().await.unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert_eq!(
        kubelet.request_count(),
        1,
        "the request arrived, the answer did not"
    );
}

#[tokio::test]
async fn a_kubelet_that_goes_down_and_comes_back() {
    let (kubelet, client) = bearer_kubelet().await;
    client.get_pods().await.unwrap();
    kubelet.set_behavior(KubeletBehavior::Down).await;
    let error = client.get_pods().await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    let fresh = self::client(
        kubelet.url(),
        KubeletAuth::Bearer("sa-token".into()),
        verify(&kubelet),
    );
    let error = fresh.get_pods().await.unwrap_err();
    assert!(error.to_string().contains("onnection refused"), "{error}");
    assert_eq!(kubelet.request_count(), 1);

    kubelet.set_behavior(KubeletBehavior::Normal).await;
    client.get_pods().await.unwrap();
    fresh.get_pods().await.unwrap();
    assert_eq!(kubelet.request_count(), 3);
}

#[tokio::test]
async fn concurrent_fetches_are_counted_as_they_arrive() {
    let (kubelet, client) = bearer_kubelet().await;
    kubelet
        .set_behavior(KubeletBehavior::Slow(Duration::from_secs(3600)))
        .await;
    let fetches: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_pods().await })
        })
        .collect();
    kubelet.wait_for_requests(3).await;
    assert_eq!(kubelet.request_count(), 3);
    for fetch in fetches {
        fetch.abort();
    }
}
