//! spire-server's admin API as the controller uses it: entries, federation relationships,
//! the webhook's serving SVID and the trust bundle, over the admin Unix socket.
//!
//! Writes go in batches of SPIRE's controller sizes (create/update 50, delete 200); each item's
//! outcome is returned in input order, so a refused item never hides the others.

use std::io;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use spire_proto::spire::api::server::bundle::v1::GetBundleRequest;
use spire_proto::spire::api::server::bundle::v1::bundle_client::BundleClient;
use spire_proto::spire::api::server::entry::v1::entry_client::EntryClient;
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchDeleteEntryRequest, BatchUpdateEntryRequest, GetEntryRequest,
    ListEntriesRequest,
};
use spire_proto::spire::api::server::svid::v1::MintX509svidRequest;
use spire_proto::spire::api::server::svid::v1::svid_client::SvidClient;
use spire_proto::spire::api::server::trustdomain::v1::trust_domain_client::TrustDomainClient;
use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipRequest, BatchDeleteFederationRelationshipRequest,
    BatchUpdateFederationRelationshipRequest, ListFederationRelationshipsRequest,
};
use spire_proto::spire::api::types::{
    Bundle, Entry, FederationRelationship, Status as ItemStatus, X509svid,
};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

/// Entries per `BatchCreateEntry` / `BatchUpdateEntry` call.
pub const WRITE_BATCH: usize = 50;
/// IDs per `BatchDeleteEntry` call.
pub const DELETE_BATCH: usize = 200;
/// Entries per `ListEntries` page.
pub const LIST_PAGE: i32 = 1000;

/// The outcome of one batch item: the entry (or relationship) the server returned, or the
/// item's status.
pub type ItemResult<T> = Result<T, Status>;

/// A client of spire-server's admin API on its Unix socket. Cheap to clone; the connection is
/// made on first use and re-made after a failure, so the controller may start before the
/// server.
#[derive(Clone, Debug)]
pub struct SpireClient {
    channel: Channel,
    socket: PathBuf,
}

impl SpireClient {
    /// A client for the admin socket at `socket` (nothing is dialed yet).
    pub fn new(socket: &Path) -> Self {
        let path = socket.to_owned();
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        });
        let channel =
            Endpoint::from_static("http://localhost").connect_with_connector_lazy(connector);
        Self {
            channel,
            socket: socket.to_owned(),
        }
    }

    /// The socket this client dials.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every entry, page by page.
    pub async fn list_entries(&self) -> Result<Vec<Entry>, Status> {
        let mut client = EntryClient::new(self.channel.clone());
        let mut entries = Vec::new();
        let mut page_token = String::new();
        loop {
            let response = client
                .list_entries(ListEntriesRequest {
                    page_size: LIST_PAGE,
                    page_token: std::mem::take(&mut page_token),
                    ..Default::default()
                })
                .await?
                .into_inner();
            entries.extend(response.entries);
            if response.next_page_token.is_empty() {
                return Ok(entries);
            }
            page_token = response.next_page_token;
        }
    }

    /// One entry, or `None` when the server has no entry with that ID.
    pub async fn get_entry(&self, id: &str) -> Result<Option<Entry>, Status> {
        let mut client = EntryClient::new(self.channel.clone());
        match client
            .get_entry(GetEntryRequest {
                id: id.to_owned(),
                output_mask: None,
            })
            .await
        {
            Ok(entry) => Ok(Some(entry.into_inner())),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// Creates `entries`; one result per entry, in order. On `AlreadyExists` the server's
    /// similar entry is returned in the error's place by [`CreateOutcome::Exists`].
    pub async fn create_entries(&self, entries: Vec<Entry>) -> Result<Vec<CreateOutcome>, Status> {
        let mut client = EntryClient::new(self.channel.clone());
        let mut outcomes = Vec::with_capacity(entries.len());
        for chunk in chunks(entries, WRITE_BATCH) {
            let sent = chunk.len();
            let results = client
                .batch_create_entry(BatchCreateEntryRequest {
                    entries: chunk,
                    output_mask: None,
                })
                .await?
                .into_inner()
                .results;
            check_count(sent, results.len())?;
            outcomes.extend(
                results
                    .into_iter()
                    .map(|r| match (item_status(r.status), r.entry) {
                        (Ok(()), Some(entry)) => CreateOutcome::Created(entry),
                        (Err(status), Some(entry)) if status.code() == Code::AlreadyExists => {
                            CreateOutcome::Exists(entry)
                        }
                        (Err(status), _) => CreateOutcome::Failed(status),
                        (Ok(()), None) => CreateOutcome::Failed(Status::internal(
                            "server returned no entry for a created item",
                        )),
                    }),
            );
        }
        Ok(outcomes)
    }

    /// Updates `entries` (every field); one result per entry, in order.
    pub async fn update_entries(
        &self,
        entries: Vec<Entry>,
    ) -> Result<Vec<ItemResult<Entry>>, Status> {
        let mut client = EntryClient::new(self.channel.clone());
        let mut outcomes = Vec::with_capacity(entries.len());
        for chunk in chunks(entries, WRITE_BATCH) {
            let sent = chunk.len();
            let results = client
                .batch_update_entry(BatchUpdateEntryRequest {
                    entries: chunk,
                    input_mask: None,
                    output_mask: None,
                })
                .await?
                .into_inner()
                .results;
            check_count(sent, results.len())?;
            outcomes.extend(results.into_iter().map(|r| item(r.status, r.entry)));
        }
        Ok(outcomes)
    }

    /// Deletes the entries `ids`; one result per ID, in order (NotFound is reported, callers
    /// usually accept it).
    pub async fn delete_entries(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<ItemResult<String>>, Status> {
        let mut client = EntryClient::new(self.channel.clone());
        let mut outcomes = Vec::with_capacity(ids.len());
        for chunk in chunks(ids, DELETE_BATCH) {
            let sent = chunk.len();
            let results = client
                .batch_delete_entry(BatchDeleteEntryRequest { ids: chunk })
                .await?
                .into_inner()
                .results;
            check_count(sent, results.len())?;
            outcomes.extend(
                results
                    .into_iter()
                    .map(|r| item_status(r.status).map(|()| r.id)),
            );
        }
        Ok(outcomes)
    }

    /// Every federation relationship.
    pub async fn list_federation_relationships(
        &self,
    ) -> Result<Vec<FederationRelationship>, Status> {
        let mut client = TrustDomainClient::new(self.channel.clone());
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let response = client
                .list_federation_relationships(ListFederationRelationshipsRequest {
                    output_mask: None,
                    page_size: LIST_PAGE,
                    page_token: std::mem::take(&mut page_token),
                })
                .await?
                .into_inner();
            all.extend(response.federation_relationships);
            if response.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = response.next_page_token;
        }
    }

    /// Creates federation relationships; one result per item, in order.
    pub async fn create_federation_relationships(
        &self,
        relationships: Vec<FederationRelationship>,
    ) -> Result<Vec<ItemResult<FederationRelationship>>, Status> {
        let sent = relationships.len();
        let results = TrustDomainClient::new(self.channel.clone())
            .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
                federation_relationships: relationships,
                output_mask: None,
            })
            .await?
            .into_inner()
            .results;
        check_count(sent, results.len())?;
        Ok(results
            .into_iter()
            .map(|r| item(r.status, r.federation_relationship))
            .collect())
    }

    /// Updates federation relationships (every field); one result per item, in order.
    pub async fn update_federation_relationships(
        &self,
        relationships: Vec<FederationRelationship>,
    ) -> Result<Vec<ItemResult<FederationRelationship>>, Status> {
        let sent = relationships.len();
        let results = TrustDomainClient::new(self.channel.clone())
            .batch_update_federation_relationship(BatchUpdateFederationRelationshipRequest {
                federation_relationships: relationships,
                input_mask: None,
                output_mask: None,
            })
            .await?
            .into_inner()
            .results;
        check_count(sent, results.len())?;
        Ok(results
            .into_iter()
            .map(|r| item(r.status, r.federation_relationship))
            .collect())
    }

    /// Deletes the federation relationships with `trust_domains`; one result per item.
    pub async fn delete_federation_relationships(
        &self,
        trust_domains: Vec<String>,
    ) -> Result<Vec<ItemResult<String>>, Status> {
        let sent = trust_domains.len();
        let results = TrustDomainClient::new(self.channel.clone())
            .batch_delete_federation_relationship(BatchDeleteFederationRelationshipRequest {
                trust_domains,
            })
            .await?
            .into_inner()
            .results;
        check_count(sent, results.len())?;
        Ok(results
            .into_iter()
            .map(|r| item_status(r.status).map(|()| r.trust_domain))
            .collect())
    }

    /// Mints an X509-SVID for the SPIFFE ID in `csr` (DER PKCS#10), `ttl` seconds (0: the
    /// server's default).
    pub async fn mint_x509_svid(&self, csr: Vec<u8>, ttl: i32) -> Result<X509svid, Status> {
        SvidClient::new(self.channel.clone())
            .mint_x509svid(MintX509svidRequest { csr, ttl })
            .await?
            .into_inner()
            .svid
            .ok_or_else(|| Status::internal("server returned no SVID"))
    }

    /// The server's own trust bundle.
    pub async fn get_bundle(&self) -> Result<Bundle, Status> {
        Ok(BundleClient::new(self.channel.clone())
            .get_bundle(GetBundleRequest::default())
            .await?
            .into_inner())
    }
}

/// The outcome of creating one entry.
#[derive(Debug)]
pub enum CreateOutcome {
    /// Created; the server's entry (with its ID).
    Created(Entry),
    /// A similar entry already existed; the server's entry.
    Exists(Entry),
    /// Refused.
    Failed(Status),
}

fn item_status(status: Option<ItemStatus>) -> Result<(), Status> {
    match status {
        None => Ok(()),
        Some(status) if status.code == 0 => Ok(()),
        Some(status) => Err(Status::new(Code::from_i32(status.code), status.message)),
    }
}

/// One batch item: its status, then the value the server must return with an OK status.
fn item<T>(status: Option<ItemStatus>, value: Option<T>) -> ItemResult<T> {
    item_status(status)?;
    value.ok_or_else(|| Status::internal("server returned no value for an item"))
}

fn check_count(sent: usize, received: usize) -> Result<(), Status> {
    if sent == received {
        Ok(())
    } else {
        Err(Status::internal(format!(
            "server answered {received} results for {sent} items"
        )))
    }
}

fn chunks<T>(items: Vec<T>, size: usize) -> impl Iterator<Item = Vec<T>> {
    let mut items = items.into_iter().peekable();
    std::iter::from_fn(move || {
        items.peek()?;
        Some(items.by_ref().take(size).collect())
    })
}
