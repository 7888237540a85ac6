//! GetAuthorizedEntries and SyncAuthorizedEntries: an agent's authorized entries, answered
//! from the change feed's cache (never a table scan per call).
//!
//! SyncAuthorizedEntries follows SPIRE's protocol (compat §1.3): the first client message
//! carries only the output mask. With fewer authorized entries than [`PAGE_SIZE`] the server
//! sends them at once; otherwise it pages their revisions (`id`, `revision_number`,
//! `created_at`), and then answers each client message of `ids` with those entries. Every
//! reply sequence ends with a message whose `more` is false. One snapshot of the authorized
//! set serves the whole stream, so ids are answered from the set whose revisions were sent.
//! While a paged stream waits for the agent's next message, each change the feed reports is
//! checked against the agent's standing: evicted or banned, the stream ends with the agent
//! authorizer's `PermissionDenied` (and its details reason). Such streams are short-lived, so
//! the check reads the agent's node directly.

use std::collections::HashMap;
use std::sync::Arc;

use spire_id::SpiffeId;
use spire_proto::spire::api::server::entry::v1::{
    EntryRevision, SyncAuthorizedEntriesRequest, SyncAuthorizedEntriesResponse,
};
use spire_proto::spire::api::types;
use spire_server_cache::ChangeFeed;
use spire_server_datastore::{DataStore, RegistrationEntry};
use tokio::sync::mpsc;
use tonic::{Code, Request, Status, Streaming};

use crate::AuthorizedCaller;
use crate::authz::revoked::check_node;
use crate::convert::{apply_entry_mask, entry_to_proto};
use crate::status::make_err;

/// Entries (or revisions) per response message, and the threshold above which the server
/// sends revisions first (SPIRE's server page size).
pub const PAGE_SIZE: usize = 500;

/// The status message for `ids` on the first SyncAuthorizedEntries message.
pub const IDS_ON_FIRST_MESSAGE: &str = "specifying IDs on initial message is not supported";

type SyncReply = Result<SyncAuthorizedEntriesResponse, Status>;

/// The SPIFFE ID of the (agent) caller, as the authorization layer recorded it.
pub(crate) fn caller_id<T>(request: &Request<T>) -> Result<SpiffeId, Status> {
    request
        .extensions()
        .get::<AuthorizedCaller>()
        .and_then(|caller| caller.id.clone())
        .ok_or_else(|| {
            make_err(
                Code::Internal,
                "caller ID missing from request context",
                None,
            )
        })
}

/// The entries `agent` is authorized for, ordered by entry ID.
pub(crate) async fn authorized_entries(
    feed: &ChangeFeed,
    agent: &SpiffeId,
) -> Result<Vec<Arc<RegistrationEntry>>, Status> {
    let cache = feed
        .cache()
        .await
        .map_err(|e| make_err(Code::Internal, "failed to fetch entries", Some(&e)))?;
    Ok(cache.authorized_entries(agent))
}

/// An entry as sent, with the output mask applied.
pub(crate) fn masked(entry: &RegistrationEntry, mask: Option<&types::EntryMask>) -> types::Entry {
    let mut proto = entry_to_proto(entry);
    apply_entry_mask(&mut proto, mask);
    proto
}

/// Serves one SyncAuthorizedEntries stream until the client closes it (or goes away).
pub(crate) async fn sync(
    feed: Arc<ChangeFeed>,
    datastore: Arc<dyn DataStore>,
    agent: SpiffeId,
    mut requests: Streaming<SyncAuthorizedEntriesRequest>,
    replies: mpsc::Sender<SyncReply>,
) {
    // Before anything is read: a ban that lands later is seen at the next change.
    let mut states = feed.subscribe();
    let first = match requests.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(status) => {
            let _ = replies.send(Err(status)).await;
            return;
        }
    };
    if !first.ids.is_empty() {
        let status = make_err(Code::InvalidArgument, IDS_ON_FIRST_MESSAGE, None);
        let _ = replies.send(Err(status)).await;
        return;
    }
    let mask = first.output_mask;
    let entries = match authorized_entries(&feed, &agent).await {
        Ok(entries) => entries,
        Err(status) => {
            let _ = replies.send(Err(status)).await;
            return;
        }
    };
    if entries.len() < PAGE_SIZE {
        send_entries(&replies, entries.iter().map(Arc::as_ref), mask.as_ref()).await;
        return;
    }
    if let Err(status) = check_node(datastore.as_ref(), &agent).await {
        let _ = replies.send(Err(status)).await;
        return;
    }
    if !send_revisions(&replies, &entries).await {
        return;
    }
    let by_id: HashMap<&str, &RegistrationEntry> = entries
        .iter()
        .map(|e| (e.id.as_str(), e.as_ref()))
        .collect();
    let mut seen = *states.borrow_and_update();
    let mut following = true;
    loop {
        let message = tokio::select! {
            message = requests.message() => message,
            changed = states.changed(), if following => {
                if changed.is_err() {
                    // The server is going away; the client decides when the stream ends.
                    following = false;
                    continue;
                }
                let state = *states.borrow_and_update();
                // Evictions and bans are node events: they move the entries revision.
                let moved =
                    state.entries_revision != seen.entries_revision || state.loads != seen.loads;
                seen = state;
                if moved && let Err(status) = check_node(datastore.as_ref(), &agent).await {
                    let _ = replies.send(Err(status)).await;
                    return;
                }
                continue;
            }
        };
        let request = match message {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(status) => {
                let _ = replies.send(Err(status)).await;
                return;
            }
        };
        // IDs the agent may not have (or that are gone since) are skipped, as in SPIRE.
        let wanted = request
            .ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied());
        if !send_entries(&replies, wanted, mask.as_ref()).await {
            return;
        }
    }
}

/// Sends `entries` in pages of [`PAGE_SIZE`], `more` on all but the last (one empty message
/// when there are none). False when the client is gone.
async fn send_entries<'a>(
    replies: &mpsc::Sender<SyncReply>,
    entries: impl Iterator<Item = &'a RegistrationEntry>,
    mask: Option<&types::EntryMask>,
) -> bool {
    let mut page: Vec<types::Entry> = Vec::new();
    for entry in entries {
        if page.len() == PAGE_SIZE {
            let full = std::mem::take(&mut page);
            if !send(replies, Vec::new(), full, true).await {
                return false;
            }
        }
        page.push(masked(entry, mask));
    }
    send(replies, Vec::new(), page, false).await
}

/// Sends the revisions of `entries` in pages of [`PAGE_SIZE`], `more` on all but the last.
async fn send_revisions(
    replies: &mpsc::Sender<SyncReply>,
    entries: &[Arc<RegistrationEntry>],
) -> bool {
    let pages = entries.chunks(PAGE_SIZE);
    let last = pages.len().saturating_sub(1);
    for (index, chunk) in pages.enumerate() {
        let revisions = chunk
            .iter()
            .map(|e| EntryRevision {
                id: e.id.clone(),
                revision_number: e.revision_number,
                created_at: e.created_at,
            })
            .collect();
        if !send(replies, revisions, Vec::new(), index != last).await {
            return false;
        }
    }
    true
}

async fn send(
    replies: &mpsc::Sender<SyncReply>,
    entry_revisions: Vec<EntryRevision>,
    entries: Vec<types::Entry>,
    more: bool,
) -> bool {
    let reply = SyncAuthorizedEntriesResponse {
        entry_revisions,
        entries,
        more,
    };
    replies.send(Ok(reply)).await.is_ok()
}
