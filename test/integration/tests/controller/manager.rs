//! spire-controller-manager mode: Istio's ClusterSPIFFEID against a real server.

use crate::support::{Cluster, ISTIO_CLUSTER_SPIFFE_ID, NODE_UID, parent_id, selectors, spiffe_id};

const SLEEP_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";

fn workload_entries(
    entries: &[spire_proto::spire::api::types::Entry],
) -> Vec<&spire_proto::spire::api::types::Entry> {
    entries
        .iter()
        .filter(|e| spiffe_id(e).contains("/ns/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_cluster_spiffe_id_registers_pods_and_follows_them() {
    let cluster = Cluster::start().await;
    cluster.api.apply_manifest(ISTIO_CLUSTER_SPIFFE_ID).unwrap();
    cluster.put_pod(
        "default",
        "sleep-5f4d47c948-njvpk",
        SLEEP_UID,
        &[
            ("app", "sleep"),
            ("spiffe.io/spire-managed-identity", "true"),
        ],
    );
    // Not selected: no label; ignored namespace.
    cluster.put_pod(
        "default",
        "unlabelled",
        "8d1d7c1e-0000-4000-8000-000000000001",
        &[],
    );
    cluster.put_pod(
        "kube-system",
        "system",
        "8d1d7c1e-0000-4000-8000-000000000002",
        &[("spiffe.io/spire-managed-identity", "true")],
    );
    let metrics_port = spire_integration_tests::free_port().unwrap();
    let controller = cluster
        .start_manager(cluster.manager_config(&format!(
            "metrics:\n  bindAddress: 127.0.0.1:{metrics_port}\n"
        )))
        .await;

    let entries = cluster
        .wait_entries("the sleep pod's entry", |e| workload_entries(e).len() == 1)
        .await;
    let entry = workload_entries(&entries)[0];
    assert_eq!(spiffe_id(entry), "spiffe://example.org/ns/default/sa/sleep");
    assert_eq!(
        parent_id(entry),
        format!("spiffe://example.org/spire/agent/k8s_psat/demo-cluster/{NODE_UID}")
    );
    assert_eq!(selectors(entry), vec![format!("k8s:pod-uid:{SLEEP_UID}")]);
    assert!(
        entry.dns_names.is_empty(),
        "no DNS names by default: {:?}",
        entry.dns_names
    );

    // The status counts what the object selected.
    cluster
        .api
        .wait_for(
            "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/example",
            |o| {
                o["status"]["stats"]["podsSelected"] == 1
                    && o["status"]["stats"]["entriesToSet"] == 1
            },
        )
        .await;

    // The metrics count the write.
    let metrics = http_get(metrics_port, "/metrics").await;
    for line in [
        "spire_controller_entry_writes_total{operation=\"create\"} 1",
        "spire_controller_declared_entries 1",
        "spire_controller_leader 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }

    // Edited template → entries re-templated (same key changes: delete + create).
    let mut object = cluster
        .api
        .get_object("/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/example")
        .unwrap();
    object["spec"]["spiffeIDTemplate"] =
        "spiffe://{{ .TrustDomain }}/team/{{ index .PodMeta.Labels \"app\" }}".into();
    object["spec"]["dnsNameTemplates"] =
        serde_json::json!(["{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}"]);
    cluster.api.put_object(
        "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/example",
        object,
    );
    let entries = cluster
        .wait_entries("the re-templated entry", |e| {
            e.iter()
                .any(|e| spiffe_id(e) == "spiffe://example.org/team/sleep")
                && !e.iter().any(|e| spiffe_id(e).contains("/ns/"))
        })
        .await;
    let entry = entries
        .iter()
        .find(|e| spiffe_id(e) == "spiffe://example.org/team/sleep")
        .unwrap();
    assert_eq!(entry.dns_names, vec!["sleep-5f4d47c948-njvpk.default"]);

    // Pod deleted → entry deleted.
    cluster
        .api
        .delete_object("/api/v1/namespaces/default/pods/sleep-5f4d47c948-njvpk");
    cluster
        .wait_entries("the entry of the deleted pod gone", |e| {
            !e.iter()
                .any(|e| spiffe_id(e) == "spiffe://example.org/team/sleep")
        })
        .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_converges_without_churn_and_collects_what_was_deleted_while_down() {
    let cluster = Cluster::start().await;
    cluster.api.apply_manifest(ISTIO_CLUSTER_SPIFFE_ID).unwrap();
    let label = [("spiffe.io/spire-managed-identity", "true")];
    cluster.put_pod(
        "default",
        "a",
        "8d1d7c1e-0000-4000-8000-00000000000a",
        &label,
    );
    cluster.put_pod(
        "default",
        "b",
        "8d1d7c1e-0000-4000-8000-00000000000b",
        &label,
    );
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    let before = cluster
        .wait_entries("two pod entries", |e| {
            e.iter().filter(|e| spiffe_id(e).contains("/ns/")).count() == 2
        })
        .await;
    controller.stop().await;

    // Restart with nothing changed: the same entries, same IDs (no delete + create).
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    cluster
        .api
        .wait_for(
            "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/example",
            |o| o["status"]["stats"]["entriesToSet"] == 2,
        )
        .await;
    let mut ids_before: Vec<_> = before.iter().map(|e| e.id.clone()).collect();
    ids_before.sort();
    let mut ids_after: Vec<_> = cluster
        .entries()
        .await
        .iter()
        .map(|e| e.id.clone())
        .collect();
    ids_after.sort();
    assert_eq!(ids_before, ids_after, "a restart must not recreate entries");
    controller.stop().await;

    // A pod deleted while the controller is down: its entry is gone after the restart.
    cluster
        .api
        .delete_object("/api/v1/namespaces/default/pods/b");
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    let after = cluster
        .wait_entries("only pod a's entry", |e| {
            e.iter().filter(|e| spiffe_id(e).contains("/ns/")).count() == 1
        })
        .await;
    assert!(after.iter().any(
        |e| selectors(e) == vec!["k8s:pod-uid:8d1d7c1e-0000-4000-8000-00000000000a".to_owned()]
    ));
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_sample_file_applies_verbatim() {
    let Some(dir) = spire_test::shared_testdata("istio-samples") else {
        return;
    };
    let cluster = Cluster::start().await;
    let yaml = std::fs::read_to_string(dir.join("clusterspiffeid.yaml")).unwrap();
    cluster.api.apply_manifest(&yaml).unwrap();
    cluster.put_pod(
        "default",
        "sleep",
        SLEEP_UID,
        &[("spiffe.io/spire-managed-identity", "true")],
    );
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    cluster
        .wait_entries("the sleep pod's entry", |e| {
            e.iter()
                .any(|e| spiffe_id(e) == "spiffe://example.org/ns/default/sa/sleep")
        })
        .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_while_the_pod_list_fails() {
    use spire_test_k8s::Fault;

    let cluster = Cluster::start().await;
    cluster.api.apply_manifest(ISTIO_CLUSTER_SPIFFE_ID).unwrap();
    let label = [("spiffe.io/spire-managed-identity", "true")];
    cluster.put_pod(
        "default",
        "a",
        "8d1d7c1e-0000-4000-8000-00000000000a",
        &label,
    );
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    cluster
        .wait_entries("pod a's entry", |e| {
            e.iter().any(|e| spiffe_id(e).contains("/ns/"))
        })
        .await;
    controller.stop().await;

    // While the controller is down the pod goes away, and when it comes back the apiserver
    // fails its pod lists: the desired state is unknown, so the entry must stay.
    cluster
        .api
        .delete_object("/api/v1/namespaces/default/pods/a");
    cluster.api.clear_requests();
    cluster
        .api
        .inject(Fault::status("/api/v1/pods", 503).times(3));
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    spire_integration_tests::eventually("three failed pod lists", || async {
        (cluster.api.requests_to("/api/v1/pods").len() >= 3).then_some(())
    })
    .await
    .unwrap();
    assert!(
        cluster
            .entries()
            .await
            .iter()
            .any(|e| spiffe_id(e).contains("/ns/")),
        "an entry was deleted while the pod list was failing"
    );
    // Once the list succeeds, the stale entry goes.
    cluster
        .wait_entries("pod a's entry gone", |e| {
            !e.iter().any(|e| spiffe_id(e).contains("/ns/"))
        })
        .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over() {
    let cluster = Cluster::start().await;
    cluster.api.apply_manifest(ISTIO_CLUSTER_SPIFFE_ID).unwrap();
    let label = [("spiffe.io/spire-managed-identity", "true")];
    cluster.put_pod(
        "default",
        "a",
        "8d1d7c1e-0000-4000-8000-00000000000a",
        &label,
    );
    let election = "leaderElection:\n  leaderElect: true\n  resourceName: 98c9c988.spiffe.io\n  \
                    resourceNamespace: spire\n  leaseDuration: 2s\n  renewDeadline: 1500ms\n  retryPeriod: 200ms\n";
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/spire/leases/98c9c988.spiffe.io";
    let first = cluster
        .start_manager(cluster.manager_config(election))
        .await;
    let lease = cluster
        .api
        .wait_for(lease_path, |l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .is_some_and(|h| !h.is_empty())
        })
        .await;
    let first_holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    cluster
        .wait_entries("pod a's entry", |e| {
            e.iter().any(|e| spiffe_id(e).contains("/ns/"))
        })
        .await;
    let second = cluster
        .start_manager(cluster.manager_config(election))
        .await;

    // The leader stops cleanly and releases the lease; the standby takes it.
    first.stop().await;
    let lease = cluster
        .api
        .wait_for(lease_path, |l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .is_some_and(|h| !h.is_empty() && h != first_holder)
        })
        .await;
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // And reconciles: a deleted pod's entry goes.
    cluster
        .api
        .delete_object("/api/v1/namespaces/default/pods/a");
    cluster
        .wait_entries("pod a's entry gone", |e| {
            !e.iter().any(|e| spiffe_id(e).contains("/ns/"))
        })
        .await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_accepts_a_good_object_and_refuses_a_bad_one_over_tls() {
    let cluster = Cluster::start().await;
    let port = spire_integration_tests::free_port().unwrap();
    let service = "spire-controller-manager-webhook-service";
    cluster.api.put_object(
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "spire-controller-manager-webhook"},
            "webhooks": [
                {"name": "vclusterspiffeid.kb.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"service": {"name": service, "namespace": "spire",
                    "path": "/validate-spire-spiffe-io-v1alpha1-clusterspiffeid"}}},
                {"name": "vclusterfederatedtrustdomain.kb.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "clientConfig": {"service": {"name": service, "namespace": "spire",
                    "path": "/validate-spire-spiffe-io-v1alpha1-clusterfederatedtrustdomain"}}}
            ]
        }),
    );
    let config = cluster.manager_config_with(
        &format!("webhook:\n  port: {port}\n  host: 127.0.0.1\n"),
        true,
    );
    let controller = cluster.start_manager(config).await;
    let vwc = cluster
        .api
        .wait_for(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/spire-controller-manager-webhook",
            |o| o["webhooks"][0]["clientConfig"]["caBundle"].is_string()
                && o["webhooks"][1]["clientConfig"]["caBundle"].is_string(),
        )
        .await;
    // Written as upstream writes it: a strategic merge patch (the `patch` verb Istio grants).
    let writes: Vec<_> = cluster
        .api
        .requests_to("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/spire-controller-manager-webhook")
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(!writes.is_empty());
    for write in &writes {
        assert_eq!(write.method, "PATCH");
        assert_eq!(
            write.content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
    }
    let ca_bundle = base64_decode(
        vwc["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        String::from_utf8(ca_bundle.clone()).unwrap(),
        cluster.server.bundle_pem().await.unwrap()
    );

    let good = serde_json::json!({
        "apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
        "metadata": {"name": "good"},
        "spec": {"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}"}
    });
    let bad = serde_json::json!({
        "apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterSPIFFEID",
        "metadata": {"name": "bad"},
        "spec": {"spiffeIDTemplate": "spiffe://{{ .TrustDomain }/x"}
    });
    let path = "/validate-spire-spiffe-io-v1alpha1-clusterspiffeid";
    let host = format!("{service}.spire.svc");
    let answer = admission_review(port, &host, &ca_bundle, path, &good).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    let answer = admission_review(port, &host, &ca_bundle, path, &bad).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 403);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("template"), "{message}");
    controller.stop().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// POSTs one AdmissionReview (v1, CREATE) over TLS as the apiserver does, verifying the
/// webhook's certificate for `host` against `ca_pem`; returns the answer.
async fn admission_review(
    port: u16,
    host: &str,
    ca_pem: &[u8],
    path: &str,
    object: &serde_json::Value,
) -> serde_json::Value {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "spire.spiffe.io", "version": "v1alpha1", "kind": "ClusterSPIFFEID"},
            "resource": {"group": "spire.spiffe.io", "version": "v1alpha1", "resource": "clusterspiffeids"},
            "requestKind": {"group": "spire.spiffe.io", "version": "v1alpha1", "kind": "ClusterSPIFFEID"},
            "requestResource": {"group": "spire.spiffe.io", "version": "v1alpha1", "resource": "clusterspiffeids"},
            "name": object["metadata"]["name"],
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        let der: rustls_pki_types::CertificateDer<'static> = der.unwrap();
        roots.add(der).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let body = serde_json::to_vec(&review).unwrap();
    let head = format!(
        "POST {path}?timeout=10s HTTP/1.1\r\nHost: {host}:443\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_entries_federation_relationships_and_service_dns_names() {
    use spire_test_k8s::EndpointsBuilder;

    let cluster = Cluster::start().await;
    cluster
        .api
        .apply_manifest(
            r#"
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: services
spec:
  spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"
  autoPopulateDNSNames: true
  federatesWith: ["domain.test"]
---
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterStaticEntry
metadata:
  name: database
spec:
  spiffeID: spiffe://example.org/db
  parentID: spiffe://example.org/spire/agent/x509pop/db-host
  selectors: ["unix:uid:1001"]
  dnsNames: ["db.internal"]
---
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterFederatedTrustDomain
metadata:
  name: domain-test
spec:
  trustDomain: domain.test
  bundleEndpointURL: https://bundle.domain.test:8443
  bundleEndpointProfile:
    type: https_spiffe
    endpointSPIFFEID: spiffe://domain.test/spire/server
"#,
        )
        .unwrap();
    cluster.put_pod(
        "default",
        "web",
        "8d1d7c1e-0000-4000-8000-0000000000e1",
        &[],
    );
    cluster.api.put_endpoints(
        EndpointsBuilder::new("default", "web")
            .address(
                "10.244.0.9",
                "web",
                "8d1d7c1e-0000-4000-8000-0000000000e1",
                "node-1",
            )
            .port("http", 80)
            .build(),
    );
    let controller = cluster
        .start_manager(cluster.manager_config("gcInterval: 1s\n"))
        .await;

    // The pod entry federates with domain.test, whose bundle the server does not have yet
    // (the relationship's endpoint is unreachable): refused, counted, retried.
    cluster
        .api
        .wait_for(
            "/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/services",
            |o| o["status"]["stats"]["entryFailures"] == 1,
        )
        .await;
    let mut foreign = cluster.server.bundle().await.unwrap();
    foreign.trust_domain = "domain.test".to_owned();
    cluster.server.set_federated_bundle(foreign).await.unwrap();
    let entries = cluster
        .wait_entries("the static and the pod entry", |e| {
            e.iter().any(|e| spiffe_id(e) == "spiffe://example.org/db")
                && e.iter()
                    .any(|e| spiffe_id(e) == "spiffe://example.org/ns/default/sa/sleep")
        })
        .await;
    let db = entries
        .iter()
        .find(|e| spiffe_id(e) == "spiffe://example.org/db")
        .unwrap();
    assert_eq!(
        parent_id(db),
        "spiffe://example.org/spire/agent/x509pop/db-host"
    );
    assert_eq!(selectors(db), vec!["unix:uid:1001"]);
    assert_eq!(db.dns_names, vec!["db.internal"]);
    let web = entries
        .iter()
        .find(|e| spiffe_id(e) == "spiffe://example.org/ns/default/sa/sleep")
        .unwrap();
    assert_eq!(web.federates_with, vec!["domain.test"]);
    assert_eq!(
        web.dns_names,
        vec![
            "web",
            "web.default",
            "web.default.svc",
            "web.default.svc.cluster.local"
        ]
    );
    cluster
        .api
        .wait_for(
            "/apis/spire.spiffe.io/v1alpha1/clusterstaticentries/database",
            |o| o["status"] == serde_json::json!({"rendered": true, "masked": false, "set": true}),
        )
        .await;
    let relationships = cluster
        .server
        .trust_domains()
        .await
        .unwrap()
        .list_federation_relationships(
            spire_proto::spire::api::server::trustdomain::v1::ListFederationRelationshipsRequest::default(),
        )
        .await
        .unwrap()
        .into_inner()
        .federation_relationships;
    assert_eq!(relationships.len(), 1);
    assert_eq!(relationships[0].trust_domain, "domain.test");
    assert_eq!(
        relationships[0].bundle_endpoint_url,
        "https://bundle.domain.test:8443"
    );

    // Deleting the objects deletes what they declared.
    cluster
        .api
        .delete_object("/apis/spire.spiffe.io/v1alpha1/clusterstaticentries/database");
    cluster
        .wait_entries("the static entry gone", |e| {
            !e.iter().any(|e| spiffe_id(e) == "spiffe://example.org/db")
        })
        .await;
    controller.stop().await;
}

/// The body of `GET <path>` on 127.0.0.1:`port` (HTTP/1.1, connection closed after).
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_recover_from_dropped_streams_and_expired_history() {
    let cluster = Cluster::start().await;
    cluster.api.apply_manifest(ISTIO_CLUSTER_SPIFFE_ID).unwrap();
    let label = [("spiffe.io/spire-managed-identity", "true")];
    cluster.put_pod(
        "default",
        "a",
        "8d1d7c1e-0000-4000-8000-00000000000a",
        &label,
    );
    let controller = cluster.start_manager(cluster.manager_config("")).await;
    cluster
        .wait_entries("pod a's entry", |e| {
            e.iter().filter(|e| spiffe_id(e).contains("/ns/")).count() == 1
        })
        .await;
    let watches = cluster.api.open_watch_count();

    // Every watch is cut and the history they would resume from is gone: the next watch from
    // the old resourceVersion gets 410 Expired, and the controller lists again.
    cluster.api.expire_watch_history();
    cluster.api.close_watches();
    cluster.put_pod(
        "default",
        "b",
        "8d1d7c1e-0000-4000-8000-00000000000b",
        &label,
    );
    cluster
        .wait_entries("pod b's entry after the re-list", |e| {
            e.iter().filter(|e| spiffe_id(e).contains("/ns/")).count() == 2
        })
        .await;
    cluster.api.wait_for_watches(watches).await;
    controller.stop().await;
}
