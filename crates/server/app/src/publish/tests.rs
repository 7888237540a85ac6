//! The bundle outlets against a real SQLite store, the real change feed and a test
//! kube-apiserver: the loaded bundle reaches the ConfigMap at startup, and a new root written
//! to the datastore reaches it through the feed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use spire_server_api::ChangeFeed;
use spire_server_datastore::DataStore;
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_plugin::notifier::K8sBundleConfig;
use spire_svid::{Bundle, X509Authority};
use spire_test_k8s::{TestApiServer, config_map_json};

use super::*;
use crate::config::KeyManagerChoice;

const PATH: &str = "/api/v1/namespaces/spire/configmaps/spire-bundle";

fn root(name: &str) -> X509Authority {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    X509Authority {
        asn1: params.self_signed(&key).unwrap().der().to_vec(),
        tainted: false,
    }
}

fn config_map_pem(api: &TestApiServer) -> String {
    api.get_object(PATH).unwrap()["data"]["bundle.crt"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_config_map_follows_the_bundle() {
    let api = TestApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    api.put_config_map(config_map_json("spire", "spire-bundle", &[]));
    let datastore_config = SqlConfig {
        database_type: "sqlite3".into(),
        connection_string: dir.path().join("datastore.sqlite3").display().to_string(),
    };
    let datastore: Arc<dyn DataStore> = Arc::new(SqlStore::open(&datastore_config).await.unwrap());
    let trust_domain = TrustDomain::new("example.org").unwrap();
    let mut bundle = Bundle::new(trust_domain.clone());
    bundle.x509_authorities.push(root("first"));
    let bundle = datastore.create_bundle(bundle).await.unwrap();

    let notifier = K8sBundleConfig::from_plugin_data(&json!({
        "kube_config_file_path": api.kubeconfig(dir.path()).to_str().unwrap(),
    }))
    .unwrap();
    let outlets = BundleOutlets::build(&ServerPlugins {
        datastore: datastore_config,
        key_manager: KeyManagerChoice::Memory,
        upstream_authority: None,
        node_attestors: Vec::new(),
        notifiers: vec![NotifierChoice::K8sBundle(notifier)],
        bundle_publishers: Vec::new(),
    })
    .unwrap();
    outlets.loaded(&bundle).await.unwrap();
    assert_eq!(config_map_pem(&api), bundle.x509_authorities_pem());

    let feed = Arc::new(ChangeFeed::new(datastore.clone()));
    feed.refresh().await.unwrap();
    let stop = Shutdown::new();
    let following = tokio::spawn(feed.clone().run(Duration::from_secs(3600), stop.watch()));
    let publishing = tokio::spawn(outlets.follow(
        datastore.clone(),
        trust_domain.clone(),
        feed.clone(),
        stop.clone(),
        bundle,
    ));

    // A CA rotation prepares a new root: it is appended, and the feed is told at once.
    let answered = api.answered_count();
    let mut next = Bundle::new(trust_domain);
    next.x509_authorities.push(root("second"));
    let rotated = datastore.append_bundle(next).await.unwrap();
    feed.notify();
    // The notifier's GET and PATCH.
    tokio::time::timeout(Duration::from_secs(10), api.wait_for_answers(answered + 2))
        .await
        .expect("the notifier wrote the rotated bundle");
    assert_eq!(rotated.x509_authorities.len(), 2);
    assert_eq!(config_map_pem(&api), rotated.x509_authorities_pem());

    stop.trigger();
    following.await.unwrap();
    publishing.await.unwrap();
}
