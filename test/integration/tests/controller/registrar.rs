//! k8s-workload-registrar CRD mode (the 2022 Istio quickstart's registrar) against a real server.

use spire_controller::config::RegistrarConfig;
use spire_test_k8s::{EndpointsBuilder, PodBuilder};

use crate::support::{Cluster, NODE_UID, parent_id, selectors, spiffe_id};

const SLEEP: &str = "sleep-5f4d47c948-njvpk";
const SLEEP_UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const NODE_ALIAS: &str = "spiffe://example.org/k8s-workload-registrar/demo-cluster/node/node-1";

fn registrar_config(cluster: &Cluster) -> RegistrarConfig {
    // The Istio 1.14 quickstart's k8s-workload-registrar.conf, aimed at this server.
    RegistrarConfig::parse(&format!(
        "trust_domain = \"example.org\"\nserver_socket_path = \"{}\"\ncluster = \"demo-cluster\"\n\
         mode = \"crd\"\nmetrics_bind_addr = \"0\"\n",
        cluster.server.socket_path().display()
    ))
    .unwrap()
}

fn spiffe_id_path(namespace: &str, name: &str) -> String {
    format!("/apis/spiffeid.spiffe.io/v1beta1/namespaces/{namespace}/spiffeids/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_spiffe_ids_entries_and_dns_names_and_deletion_waits_for_the_entry() {
    let cluster = Cluster::start().await;
    // The federated trust domain the second pod's annotation names.
    let mut foreign = cluster.server.bundle().await.unwrap();
    foreign.trust_domain = "domain.test".to_owned();
    cluster.server.set_federated_bundle(foreign).await.unwrap();
    cluster.api.put_pod(
        PodBuilder::new(SLEEP, "default", SLEEP_UID)
            .node("node-1")
            .service_account("sleep")
            .label("app", "sleep")
            .build(),
    );
    cluster.api.put_pod(
        PodBuilder::new(
            "federated",
            "default",
            "2c48913c-b29f-11e7-9350-0000000000f1",
        )
        .node("node-1")
        .service_account("federated")
        .annotation("spiffe.io/federatesWith", "domain.test")
        .build(),
    );
    // Not registered: unscheduled, and a disabled namespace.
    cluster.api.put_pod(
        PodBuilder::new("pending", "default", "2c48913c-b29f-11e7-9350-0000000000f2").build(),
    );
    cluster.api.put_pod(
        PodBuilder::new("dns", "kube-system", "2c48913c-b29f-11e7-9350-0000000000f3")
            .node("node-1")
            .build(),
    );
    let registrar = cluster.start_registrar(registrar_config(&cluster)).await;

    // The node alias: object and entry.
    let node = cluster
        .api
        .wait_for(&spiffe_id_path("spire", "node-1"), |o| {
            o["status"]["entryId"].is_string()
        })
        .await;
    assert_eq!(node["spec"]["spiffeId"], NODE_ALIAS);
    assert_eq!(node["metadata"]["labels"]["nodeUid"], NODE_UID);
    // The pod: object with finalizer and entry ID, the entry with the pod name as DNS name.
    let object = cluster
        .api
        .wait_for(&spiffe_id_path("default", SLEEP), |o| {
            o["status"]["entryId"].is_string()
        })
        .await;
    assert_eq!(
        object["metadata"]["finalizers"],
        serde_json::json!(["finalizers.spiffeid.spiffe.io"])
    );
    assert_eq!(object["spec"]["dnsNames"], serde_json::json!([SLEEP]));
    let entries = cluster
        .wait_entries("node alias and two pod entries", |e| e.len() == 3)
        .await;
    let alias = entries.iter().find(|e| spiffe_id(e) == NODE_ALIAS).unwrap();
    assert_eq!(parent_id(alias), "spiffe://example.org/spire/server");
    let mut alias_selectors = selectors(alias);
    alias_selectors.sort();
    assert_eq!(
        alias_selectors,
        vec![
            format!("k8s_psat:agent_node_uid:{NODE_UID}"),
            "k8s_psat:cluster:demo-cluster".to_owned()
        ]
    );
    let sleep = entries
        .iter()
        .find(|e| spiffe_id(e) == "spiffe://example.org/ns/default/sa/sleep")
        .unwrap();
    assert_eq!(object["status"]["entryId"], sleep.id.as_str());
    assert_eq!(parent_id(sleep), NODE_ALIAS);
    assert_eq!(sleep.dns_names, vec![SLEEP]);
    let mut sleep_selectors = selectors(sleep);
    sleep_selectors.sort();
    assert_eq!(
        sleep_selectors,
        vec![
            "k8s:node-name:node-1".to_owned(),
            "k8s:ns:default".to_owned(),
            format!("k8s:pod-uid:{SLEEP_UID}")
        ]
    );
    let federated = entries
        .iter()
        .find(|e| spiffe_id(e) == "spiffe://example.org/ns/default/sa/federated")
        .unwrap();
    assert_eq!(federated.federates_with, vec!["domain.test"]);

    // A Service selecting the pod adds <svc>.<ns>.svc; the entry follows.
    cluster.api.put_endpoints(
        EndpointsBuilder::new("default", "sleep")
            .address("10.244.0.8", SLEEP, SLEEP_UID, "node-1")
            .port("http", 80)
            .build(),
    );
    cluster
        .wait_entries("the service DNS name on the entry", |e| {
            e.iter()
                .any(|e| e.dns_names == vec![SLEEP.to_owned(), "sleep.default.svc".to_owned()])
        })
        .await;

    // The pod goes: the garbage collector deletes its SpiffeID, whose finalizer holds it
    // until the registrar has deleted the entry.
    cluster
        .api
        .request_deletion(&format!("/api/v1/namespaces/default/pods/{SLEEP}"));
    cluster
        .api
        .wait_for_absent(&spiffe_id_path("default", SLEEP))
        .await;
    let entries = cluster.entries().await;
    assert!(
        !entries
            .iter()
            .any(|e| spiffe_id(e) == "spiffe://example.org/ns/default/sa/sleep"),
        "the SpiffeID was released before its entry was deleted"
    );
    registrar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_the_registrar_is_down_loses_its_entry_after_restart() {
    let cluster = Cluster::start().await;
    cluster.api.put_pod(
        PodBuilder::new(SLEEP, "default", SLEEP_UID)
            .node("node-1")
            .service_account("sleep")
            .build(),
    );
    let registrar = cluster.start_registrar(registrar_config(&cluster)).await;
    cluster
        .api
        .wait_for(&spiffe_id_path("default", SLEEP), |o| {
            o["status"]["entryId"].is_string()
        })
        .await;
    let before = cluster.wait_entries("two entries", |e| e.len() == 2).await;
    registrar.stop().await;

    cluster
        .api
        .request_deletion(&format!("/api/v1/namespaces/default/pods/{SLEEP}"));
    // Held by the finalizer while nobody can delete the entry.
    let held = cluster
        .api
        .get_object(&spiffe_id_path("default", SLEEP))
        .unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(cluster.entries().await.len(), 2);

    let registrar = cluster.start_registrar(registrar_config(&cluster)).await;
    cluster
        .api
        .wait_for_absent(&spiffe_id_path("default", SLEEP))
        .await;
    let after = cluster
        .wait_entries("only the node alias", |e| e.len() == 1)
        .await;
    // The node alias kept its entry (same ID): a restart does not churn.
    let alias_before = before.iter().find(|e| spiffe_id(e) == NODE_ALIAS).unwrap();
    assert_eq!(after[0].id, alias_before.id);
    registrar.stop().await;
}
