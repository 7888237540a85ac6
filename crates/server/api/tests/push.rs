//! spirers.server.push.v1.Push/Watch: a message at once, one when the agent's entries or
//! bundles change, none for changes that do not concern it, and across two servers sharing
//! one PostgreSQL database (SPIRE_TEST_POSTGRES_URL).
//!
//! Timeouts here only turn a hang into a failure; nothing asserts how long anything took.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use spire_id::SelectorSet;
use spire_proto::spire::api::server::bundle::v1::{
    AppendBundleRequest, bundle_client::BundleClient,
};
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, entry_client::EntryClient,
};
use spire_proto::spire::api::types;
use spire_proto::spirers::server::push::v1::{
    WatchRequest, WatchResponse, push_client::PushClient,
};
use spire_server_datastore::{AttestedNode, DataStore};
use spire_server_datastore_sql::SqlConfig;
use sqlx::{Connection, Executor, PgConnection};
use support::*;
use tonic::{Code, Streaming};

const AGENT: &str = "/spire/agent/x509pop/node-1";
const SERIAL: &str = "99";
/// Only to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

async fn add_agent(ds: &dyn DataStore, now: i64) {
    let node = AttestedNode {
        spiffe_id: id(AGENT),
        attestation_type: "x509pop".into(),
        cert_serial_number: SERIAL.into(),
        cert_not_after: now + 3600,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: false,
        selectors: SelectorSet::new(),
    };
    ds.create_attested_node(node).await.unwrap();
}

async fn watch(h: &Harness) -> Streaming<WatchResponse> {
    let request = as_peer(&id(AGENT).to_string(), SERIAL, WatchRequest {});
    PushClient::new(h.tcp_channel.clone())
        .watch(request)
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a push message")
        .unwrap()
        .unwrap()
}

/// Creates an entry through the Entry service (admin socket); returns the datastore
/// revision right after it.
async fn create_entry(h: &Harness, path: &str, parent: &str) -> i64 {
    let mut entry = proto_entry(path);
    entry.parent_id = Some(pid(TD, parent));
    let results = EntryClient::new(h.channel.clone())
        .batch_create_entry(BatchCreateEntryRequest {
            entries: vec![entry],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].status.as_ref().unwrap().code, 0);
    h.ds.latest_revision().await.unwrap()
}

#[tokio::test]
async fn entries_for_the_agent_are_pushed_and_others_are_not() {
    let h = Harness::start().await;
    add_agent(h.ds.as_ref(), h.now()).await;
    let mut stream = watch(&h).await;
    let first = next(&mut stream).await;
    assert!(first.entries_changed && first.bundles_changed);

    // An entry for another agent, then one for ours: the next message is about the second
    // (had the first produced one, its revision would be older).
    create_entry(&h, "/not-mine", "/spire/agent/x509pop/node-2").await;
    let mine = create_entry(&h, "/mine", AGENT).await;
    let message = next(&mut stream).await;
    assert!(message.entries_changed);
    assert!(!message.bundles_changed);
    assert!(message.revision >= mine, "{} < {mine}", message.revision);

    // A change to the trust domain's bundle.
    BundleClient::new(h.channel.clone())
        .append_bundle(AppendBundleRequest {
            x509_authorities: vec![types::X509Certificate {
                asn1: ca_cert("extra root"),
                tainted: false,
            }],
            jwt_authorities: Vec::new(),
            output_mask: None,
        })
        .await
        .unwrap();
    let message = next(&mut stream).await;
    assert!(message.bundles_changed && !message.entries_changed);
}

#[tokio::test]
async fn only_agents_may_watch() {
    let h = Harness::start().await;
    let status = PushClient::new(h.channel.clone())
        .watch(WatchRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn without_push_watch_is_unimplemented_as_on_a_spire_server() {
    let h = Harness::start_with(|ctx| ctx.push = false).await;
    add_agent(h.ds.as_ref(), h.now()).await;
    let request = as_peer(&id(AGENT).to_string(), SERIAL, WatchRequest {});
    let status = PushClient::new(h.tcp_channel.clone())
        .watch(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

/// A uniquely named PostgreSQL database, dropped when the test ends.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!("spire_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await.ok();
        Self {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The admin URL with its database replaced by ours.
    fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        let authority = base.find("://").map_or(0, |i| i + 3);
        let path = base[authority..]
            .find('/')
            .map_or(base.len(), |i| authority + i);
        format!("{}/{}{query}", &base[..path], self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    admin.execute(sqlx::AssertSqlSafe(statement)).await.ok();
                    admin.close().await.ok();
                }
            });
        });
        done.join().ok();
    }
}

#[tokio::test]
async fn an_entry_written_on_one_server_reaches_a_watch_on_another() {
    let Ok(admin_url) = std::env::var("SPIRE_TEST_POSTGRES_URL") else {
        spire_test::skip("SPIRE_TEST_POSTGRES_URL is not set");
        return;
    };
    let database = PgDatabase::create(&admin_url).await;
    let config = SqlConfig::postgres(database.url());
    let a = Harness::start_on(tempfile::tempdir().unwrap(), &config, |_| {}).await;
    let b = Harness::start_on(tempfile::tempdir().unwrap(), &config, |_| {}).await;
    add_agent(a.ds.as_ref(), a.now()).await;

    let mut stream = watch(&b).await;
    let first = next(&mut stream).await;
    assert!(first.entries_changed);
    // Written through server A, seen by B's follower on its interval (it is not notified).
    let revision = create_entry(&a, "/from-a", AGENT).await;
    loop {
        let message = next(&mut stream).await;
        // B's CA may add its root to the shared bundle meanwhile: skip bundle-only news.
        if message.entries_changed {
            assert!(message.revision >= revision);
            break;
        }
    }
    drop((a, b));
    drop(database);
}
