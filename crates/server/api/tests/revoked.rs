//! Open agent streams end once their agent is banned or evicted: Push.Watch and a paged
//! SyncAuthorizedEntries fail with PermissionDenied and SPIRE's details reason at the next
//! change the server sees, while the streams of other agents live on.
//!
//! Timeouts here only turn a hang into a failure; nothing asserts how long anything took.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use spire_proto::spire::api::server::agent::v1::{
    BanAgentRequest, DeleteAgentRequest, agent_client::AgentClient,
};
use spire_proto::spire::api::server::entry::v1::{
    SyncAuthorizedEntriesRequest, SyncAuthorizedEntriesResponse, entry_client::EntryClient,
};
use spire_proto::spire::api::types::permission_denied_details::Reason;
use spire_proto::spirers::server::push::v1::{
    WatchRequest, WatchResponse, push_client::PushClient,
};
use spire_server_api::authz::denied_details;
use spire_server_api::entry::authorized::PAGE_SIZE;
use spire_server_datastore::RegistrationEntry;
use support::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

const AGENT: &str = "/spire/agent/x509pop/node-1";
const OTHER: &str = "/spire/agent/x509pop/node-2";
const SERIAL: &str = "99";
/// Only to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

async fn watch(h: &Harness, agent: &str) -> Streaming<WatchResponse> {
    let request = as_peer(&id(agent).to_string(), SERIAL, WatchRequest {});
    let mut stream = PushClient::new(h.tcp_channel.clone())
        .watch(request)
        .await
        .unwrap()
        .into_inner();
    // The first message comes at once.
    next(&mut stream).await.unwrap();
    stream
}

/// The next message, or the status the stream failed with.
async fn next<T>(stream: &mut Streaming<T>) -> Result<T, Status> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a message or a status")
        .map(|message| message.expect("the stream to stay open"))
}

fn assert_denied(status: &Status, reason: Reason) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let details = denied_details(status).expect("PermissionDeniedDetails");
    assert_eq!(details.reason(), reason, "{status:?}");
}

async fn ban(h: &Harness, agent: &str) {
    AgentClient::new(h.channel.clone())
        .ban_agent(BanAgentRequest {
            id: Some(pid(TD, agent)),
        })
        .await
        .unwrap();
}

async fn evict(h: &Harness, agent: &str) {
    AgentClient::new(h.channel.clone())
        .delete_agent(DeleteAgentRequest {
            id: Some(pid(TD, agent)),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn watch_ends_when_its_agent_is_banned_and_others_live_on() {
    let h = Harness::start().await;
    h.add_node(AGENT, SERIAL, "x509pop").await;
    h.add_node(OTHER, SERIAL, "x509pop").await;
    h.refresh_entries().await;
    let mut mine = watch(&h, AGENT).await;
    let mut other = watch(&h, OTHER).await;

    ban(&h, AGENT).await;
    let status = next(&mut mine).await.unwrap_err();
    assert_denied(&status, Reason::AgentBanned);

    // The other agent's stream still follows its entries.
    h.add_entry(domain_entry("/w", OTHER, "unix:uid:1")).await;
    h.refresh_entries().await;
    let message = next(&mut other).await.unwrap();
    assert!(message.entries_changed);
}

#[tokio::test]
async fn watch_ends_when_its_agent_is_evicted() {
    let h = Harness::start().await;
    h.add_node(AGENT, SERIAL, "x509pop").await;
    h.refresh_entries().await;
    let mut stream = watch(&h, AGENT).await;

    evict(&h, AGENT).await;
    let status = next(&mut stream).await.unwrap_err();
    assert_denied(&status, Reason::AgentNotAttested);
}

#[tokio::test]
async fn a_new_watch_of_a_banned_agent_is_refused() {
    let h = Harness::start().await;
    h.add_node(AGENT, SERIAL, "x509pop").await;
    h.refresh_entries().await;
    let _first = watch(&h, AGENT).await;
    ban(&h, AGENT).await;

    let request = as_peer(&id(AGENT).to_string(), SERIAL, WatchRequest {});
    let status = PushClient::new(h.tcp_channel.clone())
        .watch(request)
        .await
        .unwrap_err();
    assert_denied(&status, Reason::AgentBanned);
}

#[tokio::test]
async fn paged_sync_ends_when_its_agent_is_banned() {
    let h = Harness::start().await;
    h.add_node(AGENT, SERIAL, "x509pop").await;
    let batch: Vec<RegistrationEntry> = (0..PAGE_SIZE)
        .map(|i| domain_entry(&format!("/w/{i}"), AGENT, &format!("unix:uid:{i}")))
        .collect();
    for result in h.ds.create_registration_entries(batch).await.unwrap() {
        result.unwrap();
    }
    h.refresh_entries().await;

    let (send, rx) = mpsc::channel(4);
    send.send(SyncAuthorizedEntriesRequest::default())
        .await
        .unwrap();
    let request = as_peer(&id(AGENT).to_string(), SERIAL, ReceiverStream::new(rx));
    let mut stream: Streaming<SyncAuthorizedEntriesResponse> =
        EntryClient::new(h.tcp_channel.clone())
            .sync_authorized_entries(request)
            .await
            .unwrap()
            .into_inner();
    let revisions = next(&mut stream).await.unwrap();
    assert_eq!(revisions.entry_revisions.len(), PAGE_SIZE);
    assert!(!revisions.more);

    // The agent has not asked for entries yet (the request side stays open) when it is banned.
    ban(&h, AGENT).await;
    let status = next(&mut stream).await.unwrap_err();
    assert_denied(&status, Reason::AgentBanned);
    drop(send);
}
