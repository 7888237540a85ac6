#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use spire_proto::spire::api::server::entry::v1::{
    self as entry_v1,
    entry_server::{Entry as EntryService, EntryServer},
};
use spire_proto::spire::api::types;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use super::*;

const TD: &str = "example.org";

fn agent_id() -> SpiffeId {
    SpiffeId::parse("spiffe://example.org/spire/agent/join_token/t").unwrap()
}

fn proto_entry(n: usize, revision: i64, created_at: i64) -> types::Entry {
    types::Entry {
        id: format!("entry-{n:05}"),
        spiffe_id: Some(types::Spiffeid {
            trust_domain: TD.into(),
            path: format!("/w/{n}"),
        }),
        parent_id: Some(types::Spiffeid {
            trust_domain: TD.into(),
            path: "/spire/agent/join_token/t".into(),
        }),
        selectors: vec![types::Selector {
            r#type: "unix".into(),
            value: format!("uid:{n}"),
        }],
        revision_number: revision,
        created_at,
        ..Default::default()
    }
}

fn local_of(entries: Vec<types::Entry>) -> BTreeMap<String, Arc<Entry>> {
    entries
        .into_iter()
        .map(|e| {
            let e = convert::entry(e, &agent_id()).unwrap();
            (e.id.clone(), Arc::new(e))
        })
        .collect()
}

fn revision(id: &str, revision_number: i64, created_at: i64) -> EntryRevision {
    EntryRevision {
        id: id.into(),
        revision_number,
        created_at,
    }
}

#[test]
fn ids_to_request_are_missing_or_stale_sorted_and_unique() {
    let local = local_of(vec![
        proto_entry(1, 1, 100),
        proto_entry(2, 1, 100),
        proto_entry(3, 1, 100),
        proto_entry(9, 1, 100),
    ]);
    let revisions = vec![
        revision("entry-00004", 1, 100), // missing
        revision("entry-00003", 1, 101), // recreated (created_at differs)
        revision("entry-00002", 2, 100), // updated
        revision("entry-00001", 1, 100), // unchanged
        revision("entry-00004", 1, 100), // duplicate
    ];
    assert_eq!(
        ids_to_request(&local, &revisions),
        vec!["entry-00002", "entry-00003", "entry-00004"]
    );
    assert!(ids_to_request(&local, &[]).is_empty());
}

/// A server speaking the real protocol with a configurable page size, recording what the
/// client asked for.
struct FakeEntryServer {
    entries: Vec<types::Entry>,
    page_size: usize,
    id_requests: Arc<Mutex<Vec<Vec<String>>>>,
}

type SyncStream =
    tokio_stream::wrappers::ReceiverStream<Result<entry_v1::SyncAuthorizedEntriesResponse, Status>>;

fn pages<T: Clone>(items: &[T], size: usize) -> Vec<(Vec<T>, bool)> {
    if items.is_empty() {
        return vec![(Vec::new(), false)];
    }
    let chunks: Vec<_> = items.chunks(size).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c.to_vec(), i + 1 < n))
        .collect()
}

#[tonic::async_trait]
impl EntryService for FakeEntryServer {
    async fn count_entries(
        &self,
        _: Request<entry_v1::CountEntriesRequest>,
    ) -> Result<Response<entry_v1::CountEntriesResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn list_entries(
        &self,
        _: Request<entry_v1::ListEntriesRequest>,
    ) -> Result<Response<entry_v1::ListEntriesResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_entry(
        &self,
        _: Request<entry_v1::GetEntryRequest>,
    ) -> Result<Response<types::Entry>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn batch_create_entry(
        &self,
        _: Request<entry_v1::BatchCreateEntryRequest>,
    ) -> Result<Response<entry_v1::BatchCreateEntryResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn batch_update_entry(
        &self,
        _: Request<entry_v1::BatchUpdateEntryRequest>,
    ) -> Result<Response<entry_v1::BatchUpdateEntryResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn batch_delete_entry(
        &self,
        _: Request<entry_v1::BatchDeleteEntryRequest>,
    ) -> Result<Response<entry_v1::BatchDeleteEntryResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn get_authorized_entries(
        &self,
        _: Request<entry_v1::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<entry_v1::GetAuthorizedEntriesResponse>, Status> {
        Err(Status::unimplemented(""))
    }

    type SyncAuthorizedEntriesStream = SyncStream;

    async fn sync_authorized_entries(
        &self,
        request: Request<Streaming<SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<SyncStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.unwrap();
        if first.output_mask.is_none() || !first.ids.is_empty() {
            return Err(Status::invalid_argument("first message: output_mask only"));
        }
        let (tx, rx) = mpsc::channel(16);
        let entries = self.entries.clone();
        let page_size = self.page_size;
        let id_requests = self.id_requests.clone();
        tokio::spawn(async move {
            let send = |entries: Vec<types::Entry>, revisions: Vec<EntryRevision>, more| {
                tx.send(Ok(SyncAuthorizedEntriesResponse {
                    entry_revisions: revisions,
                    entries,
                    more,
                }))
            };
            if entries.len() < page_size {
                for (page, more) in pages(&entries, page_size) {
                    send(page, Vec::new(), more).await.unwrap();
                }
                return;
            }
            let revisions: Vec<_> = entries
                .iter()
                .map(|e| revision(&e.id, e.revision_number, e.created_at))
                .collect();
            for (page, more) in pages(&revisions, page_size) {
                send(Vec::new(), page, more).await.unwrap();
            }
            while let Ok(Some(req)) = inbound.message().await {
                assert!(req.ids.len() <= page_size);
                let mut sorted = req.ids.clone();
                sorted.sort();
                assert_eq!(sorted, req.ids, "ids must be sorted");
                id_requests.lock().unwrap().push(req.ids.clone());
                let found: Vec<_> = entries
                    .iter()
                    .filter(|e| req.ids.contains(&e.id))
                    .cloned()
                    .collect();
                for (page, more) in pages(&found, page_size) {
                    send(page, Vec::new(), more).await.unwrap();
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}

async fn serve(server: FakeEntryServer) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EntryServer::new(server))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn ids(entries: &[Entry]) -> Vec<String> {
    let mut ids: Vec<_> = entries.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn few_entries_come_whole_without_id_requests() {
    let id_requests = Arc::new(Mutex::new(Vec::new()));
    let server_entries: Vec<_> = (0..7).map(|n| proto_entry(n, 1, 100)).collect();
    let channel = serve(FakeEntryServer {
        entries: server_entries.clone(),
        page_size: 10,
        id_requests: id_requests.clone(),
    })
    .await;
    let got = sync_entries(channel, &BTreeMap::new(), &agent_id())
        .await
        .unwrap();
    assert_eq!(
        ids(&got),
        ids(&local_of(server_entries)
            .values()
            .map(|e| Entry::clone(e))
            .collect::<Vec<_>>())
    );
    assert!(id_requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn many_entries_page_revisions_and_fetch_only_what_changed_in_chunks() {
    let id_requests = Arc::new(Mutex::new(Vec::new()));
    // 1200 entries on the server; the agent holds 0..600 at revision 1, except that the
    // server has 100..110 at revision 2 and 200 recreated; the agent also holds one entry the
    // server no longer has.
    let server_entries: Vec<_> = (0..1200)
        .map(|n| match n {
            100..110 => proto_entry(n, 2, 100),
            200 => proto_entry(n, 1, 999),
            _ => proto_entry(n, 1, 100),
        })
        .collect();
    let mut held: Vec<_> = (0..600).map(|n| proto_entry(n, 1, 100)).collect();
    held.push(proto_entry(5000, 1, 100));
    let local = local_of(held);
    let channel = serve(FakeEntryServer {
        entries: server_entries.clone(),
        page_size: ID_CHUNK,
        id_requests: id_requests.clone(),
    })
    .await;

    let got = sync_entries(channel, &local, &agent_id()).await.unwrap();

    let expected: Vec<Entry> = server_entries
        .into_iter()
        .map(|e| convert::entry(e, &agent_id()).unwrap())
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        got_sorted, expected,
        "the full, current set; entry-05000 dropped"
    );

    let requests = id_requests.lock().unwrap().clone();
    let sizes: Vec<_> = requests.iter().map(Vec::len).collect();
    // 11 changed + 600 missing = 611 → chunks of 500 and 111.
    assert_eq!(sizes, vec![500, 111]);
    let requested: Vec<String> = requests.concat();
    assert!(requested.contains(&"entry-00105".to_owned()));
    assert!(requested.contains(&"entry-00200".to_owned()));
    assert!(!requested.contains(&"entry-00001".to_owned()));
    assert!(
        requested.windows(2).all(|w| w[0] < w[1]),
        "sorted across chunks"
    );
}
