//! One synchronisation with the server: the authorized entries through
//! `SyncAuthorizedEntries`, then the own and federated bundles.
//!
//! Protocol (SPIRE ≥ 1.13): the first request carries only the output mask. A server with
//! few entries for this agent answers with `entries` pages; otherwise with `entry_revisions`
//! pages (`more` on all but the last), after which the agent asks for the entries it lacks or
//! holds stale (different `revision_number` or `created_at`) by `ids`, sorted, at most
//! [`ID_CHUNK`] per request, each answered by `entries` pages. The agent then closes its side.
//! Entries the server did not mention are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use spire_agent_cache::Entry;
use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::bundle::v1::{
    GetBundleRequest, GetFederatedBundleRequest, bundle_client::BundleClient,
};
use spire_proto::spire::api::server::entry::v1::{
    EntryRevision, SyncAuthorizedEntriesRequest, SyncAuthorizedEntriesResponse,
    entry_client::EntryClient,
};
use spire_proto::spire::api::types::EntryMask;
use spire_svid::Bundle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::{Error, Result, convert};

/// Most IDs sent in one request (the server's page size).
pub const ID_CHUNK: usize = 500;

/// The fields the agent asks for: SPIRE's mask plus the parent, DNS names and TTL (to notice
/// changes that need a new SVID).
pub fn output_mask() -> EntryMask {
    EntryMask {
        spiffe_id: true,
        parent_id: true,
        selectors: true,
        x509_svid_ttl: true,
        federates_with: true,
        admin: true,
        downstream: true,
        expires_at: false,
        dns_names: true,
        revision_number: true,
        store_svid: true,
        jwt_svid_ttl: false,
        hint: true,
        created_at: true,
    }
}

/// The IDs to request after a revisions listing: entries the agent does not hold, or holds
/// with a different revision or creation time. Sorted, without duplicates.
pub fn ids_to_request(
    local: &BTreeMap<String, Arc<Entry>>,
    revisions: &[EntryRevision],
) -> Vec<String> {
    revisions
        .iter()
        .filter(|r| {
            local.get(&r.id).is_none_or(|e| {
                e.revision_number != r.revision_number || e.created_at != r.created_at
            })
        })
        .map(|r| r.id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Runs one `SyncAuthorizedEntries` exchange. `local` = the entries held now (by ID);
/// `agent_id` fills in a parent the server left out. Returns the complete new set.
pub async fn sync_entries(
    channel: Channel,
    local: &BTreeMap<String, Arc<Entry>>,
    agent_id: &SpiffeId,
) -> Result<Vec<Entry>> {
    const CALL: &str = "SyncAuthorizedEntries";
    let (tx, rx) = mpsc::channel(4);
    let first = SyncAuthorizedEntriesRequest {
        output_mask: Some(output_mask()),
        ids: Vec::new(),
    };
    tx.send(first)
        .await
        .map_err(|_| Error::InvalidResponse("sync request stream closed".into()))?;
    let mut responses = EntryClient::new(channel)
        .sync_authorized_entries(ReceiverStream::new(rx))
        .await
        .map_err(Error::rpc(CALL))?
        .into_inner();

    let mut full = Vec::new();
    let mut revisions = Vec::new();
    loop {
        let page = recv(&mut responses).await?;
        full.extend(page.entries);
        revisions.extend(page.entry_revisions);
        if !page.more {
            break;
        }
    }
    let mut out = Vec::with_capacity(full.len().max(revisions.len()));
    for e in full {
        out.push(convert::entry(e, agent_id)?);
    }
    if revisions.is_empty() {
        return Ok(out);
    }

    let wanted = ids_to_request(local, &revisions);
    let wanted_set: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    // Unchanged entries are kept as held.
    let mut seen = BTreeSet::new();
    for r in &revisions {
        if !wanted_set.contains(r.id.as_str())
            && seen.insert(r.id.clone())
            && let Some(e) = local.get(&r.id)
        {
            out.push(Entry::clone(e));
        }
    }
    for chunk in wanted.chunks(ID_CHUNK) {
        tx.send(SyncAuthorizedEntriesRequest {
            output_mask: None,
            ids: chunk.to_vec(),
        })
        .await
        .map_err(|_| Error::InvalidResponse("sync request stream closed".into()))?;
        loop {
            let page = recv(&mut responses).await?;
            for e in page.entries {
                if !wanted_set.contains(e.id.as_str()) {
                    return Err(Error::InvalidResponse(format!(
                        "server sent entry {} that was not requested",
                        e.id
                    )));
                }
                out.push(convert::entry(e, agent_id)?);
            }
            if !page.more {
                break;
            }
        }
    }
    drop(tx);
    Ok(out)
}

async fn recv(
    responses: &mut tonic::Streaming<SyncAuthorizedEntriesResponse>,
) -> Result<SyncAuthorizedEntriesResponse> {
    responses
        .message()
        .await
        .map_err(Error::rpc("SyncAuthorizedEntries"))?
        .ok_or_else(|| Error::InvalidResponse("sync stream ended early".into()))
}

/// The own bundle (`GetBundle`).
pub async fn fetch_bundle(channel: Channel) -> Result<Bundle> {
    let bundle = BundleClient::new(channel)
        .get_bundle(GetBundleRequest { output_mask: None })
        .await
        .map_err(Error::rpc("GetBundle"))?
        .into_inner();
    convert::bundle(bundle)
}

/// The bundles of `trust_domains` the server holds (`GetFederatedBundle` each; NotFound is
/// skipped, other failures fail the sync so that held bundles are kept).
pub async fn fetch_federated_bundles(
    channel: Channel,
    trust_domains: &[TrustDomain],
) -> Result<BTreeMap<TrustDomain, Bundle>> {
    let mut client = BundleClient::new(channel);
    let mut out = BTreeMap::new();
    for td in trust_domains {
        let request = GetFederatedBundleRequest {
            trust_domain: td.name().to_owned(),
            output_mask: None,
        };
        match client.get_federated_bundle(request).await {
            Ok(b) => {
                out.insert(td.clone(), convert::bundle(b.into_inner())?);
            }
            Err(s) if s.code() == tonic::Code::NotFound => {
                tracing::debug!(trust_domain = %td, "federated bundle not found on the server");
            }
            Err(s) => return Err(Error::rpc("GetFederatedBundle")(s)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
