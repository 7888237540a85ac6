//! Entry.GetAuthorizedEntries and Entry.SyncAuthorizedEntries against a real SQLite store:
//! SPIRE's sync protocol (compat §1.3), the crawl (node aliases, descendants, cycles), output
//! masks, and freshness after writes through the Entry service.
#![allow(clippy::unwrap_used)]

mod support;

use spire_id::{Selector, SelectorSet};
use spire_proto::spire::api::server::entry::v1::{
    BatchUpdateEntryRequest, GetAuthorizedEntriesRequest, SyncAuthorizedEntriesRequest,
    SyncAuthorizedEntriesResponse, entry_client::EntryClient,
};
use spire_proto::spire::api::types;
use spire_server_api::entry::authorized::{IDS_ON_FIRST_MESSAGE, PAGE_SIZE};
use spire_server_datastore::{AttestedNode, RegistrationEntry};
use support::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

const AGENT: &str = "/spire/agent/x509pop/node-1";
const OTHER_AGENT: &str = "/spire/agent/x509pop/node-2";
const SERIAL: &str = "1234";

/// Stores an attested agent with these node selectors.
async fn add_agent(h: &Harness, path: &str, selectors: &[&str]) {
    let node = AttestedNode {
        spiffe_id: id(path),
        attestation_type: "x509pop".into(),
        cert_serial_number: SERIAL.into(),
        cert_not_after: h.now() + 3600,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        can_reattest: false,
        selectors: selectors
            .iter()
            .map(|s| Selector::parse(s).unwrap())
            .collect::<SelectorSet>(),
    };
    h.ds.create_attested_node(node).await.unwrap();
}

fn agent_spiffe(path: &str) -> String {
    id(path).to_string()
}

/// An entry with several selectors (a node alias needs a set).
fn entry_with(path: &str, parent: &str, selectors: &[&str]) -> RegistrationEntry {
    let mut entry = domain_entry(path, parent, selectors[0]);
    entry.selectors = selectors
        .iter()
        .map(|s| Selector::parse(s).unwrap())
        .collect();
    entry
}

/// A client side of one sync stream.
struct Sync {
    send: mpsc::Sender<SyncAuthorizedEntriesRequest>,
    recv: Streaming<SyncAuthorizedEntriesResponse>,
}

impl Sync {
    async fn open(h: &Harness, agent: &str, first: SyncAuthorizedEntriesRequest) -> Self {
        let (send, rx) = mpsc::channel(4);
        send.send(first).await.unwrap();
        let request = as_peer(&agent_spiffe(agent), SERIAL, ReceiverStream::new(rx));
        let recv = EntryClient::new(h.tcp_channel.clone())
            .sync_authorized_entries(request)
            .await
            .unwrap()
            .into_inner();
        Self { send, recv }
    }

    /// Messages up to and including the first with `more == false`.
    async fn pages(&mut self) -> Vec<SyncAuthorizedEntriesResponse> {
        let mut pages = Vec::new();
        loop {
            let page = self.recv.message().await.unwrap().unwrap();
            let more = page.more;
            pages.push(page);
            if !more {
                return pages;
            }
        }
    }
}

fn mask_request(mask: Option<types::EntryMask>) -> SyncAuthorizedEntriesRequest {
    SyncAuthorizedEntriesRequest {
        output_mask: mask,
        ids: Vec::new(),
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn small_set_comes_at_once_with_aliases_descendants_and_cycles() {
    let h = Harness::start().await;
    add_agent(
        &h,
        AGENT,
        &["x509pop:subject:cn:node-1", "x509pop:ca:fp:abc"],
    )
    .await;
    add_agent(&h, OTHER_AGENT, &["x509pop:subject:cn:node-2"]).await;
    let direct = h.add_entry(domain_entry("/web", AGENT, "unix:uid:1")).await;
    let child = h
        .add_entry(domain_entry("/web/child", "/web", "unix:uid:2"))
        .await;
    // A cycle below a direct entry: /web → /loop-a → /loop-b → /loop-a.
    let loop_a = h
        .add_entry(domain_entry("/loop-a", "/web", "unix:uid:3"))
        .await;
    let loop_b = h
        .add_entry(domain_entry("/loop-b", "/loop-a", "unix:uid:4"))
        .await;
    let back = h
        .add_entry(domain_entry("/loop-a", "/loop-b", "unix:uid:5"))
        .await;
    // A node alias whose selectors are a subset of the agent's, and a workload under it.
    let alias = h
        .add_entry(entry_with(
            "/cluster",
            "/spire/server",
            &["x509pop:ca:fp:abc"],
        ))
        .await;
    let under_alias = h
        .add_entry(domain_entry("/db", "/cluster", "unix:uid:6"))
        .await;
    // Not for this agent: an alias needing a selector it lacks, another agent's entry.
    let too_narrow = entry_with(
        "/other-cluster",
        "/spire/server",
        &["x509pop:ca:fp:abc", "x509pop:subject:cn:node-2"],
    );
    h.add_entry(too_narrow).await;
    h.add_entry(domain_entry("/elsewhere", OTHER_AGENT, "unix:uid:7"))
        .await;
    h.refresh_entries().await;

    let expected = sorted(
        [
            &direct,
            &child,
            &loop_a,
            &loop_b,
            &back,
            &alias,
            &under_alias,
        ]
        .iter()
        .map(|e| e.id.clone())
        .collect(),
    );
    let mask = types::EntryMask {
        spiffe_id: true,
        revision_number: true,
        created_at: true,
        ..types::EntryMask::default()
    };
    let mut sync = Sync::open(&h, AGENT, mask_request(Some(mask))).await;
    let pages = sync.pages().await;
    assert_eq!(pages.len(), 1);
    assert!(pages[0].entry_revisions.is_empty());
    let ids: Vec<String> = pages[0].entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, expected, "ordered by entry ID");
    let web = pages[0].entries.iter().find(|e| e.id == direct.id).unwrap();
    assert_eq!(web.spiffe_id, Some(pid(TD, "/web")));
    assert_eq!(web.parent_id, None, "masked out");
    assert!(web.selectors.is_empty(), "masked out");
    assert_eq!(web.created_at, direct.created_at);
    drop(sync.send);
    assert!(sync.recv.message().await.unwrap().is_none(), "server ends");

    // The unary form answers the same set, all fields without a mask.
    let request = as_peer(
        &agent_spiffe(AGENT),
        SERIAL,
        GetAuthorizedEntriesRequest { output_mask: None },
    );
    let entries = EntryClient::new(h.tcp_channel.clone())
        .get_authorized_entries(request)
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(entries.iter().all(|e| e.parent_id.is_some()));

    // An agent without entries gets one empty, final page.
    add_agent(&h, "/spire/agent/x509pop/node-3", &[]).await;
    let mut sync = Sync::open(&h, "/spire/agent/x509pop/node-3", mask_request(None)).await;
    let pages = sync.pages().await;
    assert_eq!(pages.len(), 1);
    assert!(pages[0].entries.is_empty() && pages[0].entry_revisions.is_empty());
}

#[tokio::test]
async fn ids_on_the_first_message_are_invalid() {
    let h = Harness::start().await;
    add_agent(&h, AGENT, &[]).await;
    let first = SyncAuthorizedEntriesRequest {
        output_mask: None,
        ids: vec!["some-id".into()],
    };
    let mut sync = Sync::open(&h, AGENT, first).await;
    let status = sync.recv.message().await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), IDS_ON_FIRST_MESSAGE);
}

#[tokio::test]
async fn large_set_pages_revisions_then_answers_ids() {
    let h = Harness::start().await;
    add_agent(&h, AGENT, &[]).await;
    let total = 2 * PAGE_SIZE + 100;
    let batch: Vec<RegistrationEntry> = (0..total)
        .map(|i| domain_entry(&format!("/w/{i}"), AGENT, &format!("unix:uid:{i}")))
        .collect();
    let mut created: Vec<RegistrationEntry> =
        h.ds.create_registration_entries(batch)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
    created.sort_by(|a, b| a.id.cmp(&b.id));
    h.add_entry(domain_entry("/not-mine", OTHER_AGENT, "unix:uid:1"))
        .await;
    h.refresh_entries().await;

    let mask = types::EntryMask {
        spiffe_id: true,
        selectors: true,
        ..types::EntryMask::default()
    };
    let mut sync = Sync::open(&h, AGENT, mask_request(Some(mask))).await;
    let pages = sync.pages().await;
    let sizes: Vec<(usize, bool)> = pages
        .iter()
        .map(|p| (p.entry_revisions.len(), p.more))
        .collect();
    assert_eq!(sizes, [(PAGE_SIZE, true), (PAGE_SIZE, true), (100, false)]);
    assert!(pages.iter().all(|p| p.entries.is_empty()));
    let revisions: Vec<_> = pages.into_iter().flat_map(|p| p.entry_revisions).collect();
    for (revision, entry) in revisions.iter().zip(&created) {
        assert_eq!(revision.id, entry.id);
        assert_eq!(revision.revision_number, entry.revision_number);
        assert_eq!(revision.created_at, entry.created_at);
    }

    // A few stale IDs (and one the agent may not have, which is skipped) in one message.
    let wanted = vec![
        created[3].id.clone(),
        created[700].id.clone(),
        "not-an-authorized-id".to_owned(),
    ];
    sync.send
        .send(SyncAuthorizedEntriesRequest {
            output_mask: None,
            ids: wanted,
        })
        .await
        .unwrap();
    let pages = sync.pages().await;
    assert_eq!(pages.len(), 1);
    let got: Vec<&types::Entry> = pages[0].entries.iter().collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, created[3].id);
    assert_eq!(got[1].id, created[700].id);
    assert!(got[0].spiffe_id.is_some() && !got[0].selectors.is_empty());
    assert_eq!(
        got[0].parent_id, None,
        "the first message's mask still applies"
    );

    // More IDs than a page: entries come back paged.
    let ids: Vec<String> = created[..PAGE_SIZE + 20]
        .iter()
        .map(|e| e.id.clone())
        .collect();
    sync.send
        .send(SyncAuthorizedEntriesRequest {
            output_mask: None,
            ids,
        })
        .await
        .unwrap();
    let pages = sync.pages().await;
    let sizes: Vec<(usize, bool)> = pages.iter().map(|p| (p.entries.len(), p.more)).collect();
    assert_eq!(sizes, [(PAGE_SIZE, true), (20, false)]);
    drop(sync.send);
    assert!(sync.recv.message().await.unwrap().is_none());

    // An update through the Entry service is reflected without an explicit refresh: the
    // service tells the feed. Await the feed, then sync again.
    let mut states = h.ctx.entries.subscribe();
    let mut update = spire_server_api::convert::entry_to_proto(&created[5]);
    update.hint = "changed".into();
    let results = EntryClient::new(h.channel.clone())
        .batch_update_entry(BatchUpdateEntryRequest {
            entries: vec![update],
            input_mask: Some(types::EntryMask {
                hint: true,
                ..types::EntryMask::default()
            }),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].status.as_ref().unwrap().code, 0);
    let latest = h.ds.latest_revision().await.unwrap();
    let wait = states.wait_for(|s| s.revision >= latest);
    tokio::time::timeout(secs(30), wait).await.unwrap().unwrap();
    let mut sync = Sync::open(&h, AGENT, mask_request(None)).await;
    let revisions: Vec<_> = sync
        .pages()
        .await
        .into_iter()
        .flat_map(|p| p.entry_revisions)
        .collect();
    let updated = revisions.iter().find(|r| r.id == created[5].id).unwrap();
    assert_eq!(updated.revision_number, created[5].revision_number + 1);
}
