//! `spire.api.server.entry.v1.Entry`: registration entries.
//!
//! Batches report per item: an invalid or conflicting item gets its own `Status` and never
//! stops the others, and the valid items of a batch are written in one datastore call.

pub mod authorized;
mod filters;
mod validate;

use std::sync::Arc;

use spire_id::TrustDomain;
use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchCreateEntryResponse, BatchDeleteEntryRequest,
    BatchDeleteEntryResponse, BatchUpdateEntryRequest, BatchUpdateEntryResponse,
    CountEntriesRequest, CountEntriesResponse, GetAuthorizedEntriesRequest,
    GetAuthorizedEntriesResponse, GetEntryRequest, ListEntriesRequest, ListEntriesResponse,
    SyncAuthorizedEntriesRequest, SyncAuthorizedEntriesResponse, batch_create_entry_response,
    batch_delete_entry_response, batch_update_entry_response, entry_server::Entry,
};
use spire_proto::spire::api::types;
use spire_server_cache::ChangeFeed;
use spire_server_datastore::{DataStore, Error as DsError, Pagination, RegistrationEntry};
use spire_time::SharedClock;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::ApiContext;
use crate::audit::{Audit, Fields as AuditFields, entry_fields};
use crate::convert::entry_from_proto;
use crate::status::{ds_code, internal, make_err, make_status, ok, plain_status};

/// SPIRE's message for a create that matches an existing entry (same parent, SPIFFE ID and
/// selectors); the existing entry comes back with it.
pub const SIMILAR_ENTRY_EXISTS: &str = "similar entry already exists";

/// What the Entry service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain: entry IDs and parents must be members of it.
    pub trust_domain: TrustDomain,
    /// Where entries live.
    pub datastore: Arc<dyn DataStore>,
    /// Stamps `created_at`.
    pub clock: SharedClock,
    /// Told about every committed write; serves the authorized entries.
    pub feed: Arc<ChangeFeed>,
}

/// The Entry service.
#[derive(Clone, Debug)]
pub struct EntryService {
    config: Config,
}

type CreateResult = batch_create_entry_response::Result;
type UpdateResult = batch_update_entry_response::Result;
type DeleteResult = batch_delete_entry_response::Result;

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            datastore: ctx.datastore.clone(),
            clock: ctx.clock.clone(),
            feed: ctx.entries.clone(),
        }
    }
}

// === impl EntryService ===

impl EntryService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    fn ds(&self) -> &dyn DataStore {
        self.config.datastore.as_ref()
    }

    fn masked(entry: &RegistrationEntry, mask: Option<&types::EntryMask>) -> types::Entry {
        authorized::masked(entry, mask)
    }
}

#[tonic::async_trait]
impl Entry for EntryService {
    async fn count_entries(
        &self,
        request: Request<CountEntriesRequest>,
    ) -> Result<Response<CountEntriesResponse>, Status> {
        let filter = request.into_inner().filter;
        let list = filters::from_count(&self.config.trust_domain, filter.as_ref())?;
        let count = self
            .ds()
            .count_registration_entries(&list)
            .await
            .map_err(|e| internal("failed to count entries", &e))?;
        Ok(Response::new(CountEntriesResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn list_entries(
        &self,
        request: Request<ListEntriesRequest>,
    ) -> Result<Response<ListEntriesResponse>, Status> {
        let request = request.into_inner();
        let mut list = filters::from_list(&self.config.trust_domain, request.filter.as_ref())?;
        if request.page_size > 0 {
            list.pagination = Some(Pagination {
                token: request.page_token,
                page_size: request.page_size.unsigned_abs(),
            });
        }
        let page = self
            .ds()
            .list_registration_entries(&list)
            .await
            .map_err(|e| match e {
                DsError::InvalidArgument(message) => Status::invalid_argument(message),
                e => internal("failed to list entries", &e),
            })?;
        let mask = request.output_mask.as_ref();
        Ok(Response::new(ListEntriesResponse {
            entries: page.items.iter().map(|e| Self::masked(e, mask)).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_entry(
        &self,
        request: Request<GetEntryRequest>,
    ) -> Result<Response<types::Entry>, Status> {
        Audit::add(&request, |f| {
            f.string("entry_id", &request.get_ref().id);
        });
        let request = request.into_inner();
        if request.id.is_empty() {
            return Err(make_err(Code::InvalidArgument, "missing ID", None));
        }
        match self.ds().fetch_registration_entry(&request.id).await {
            Ok(Some(entry)) => Ok(Response::new(Self::masked(
                &entry,
                request.output_mask.as_ref(),
            ))),
            Ok(None) => Err(make_err(Code::NotFound, "entry not found", None)),
            Err(e) => Err(internal("failed to fetch entry", &e)),
        }
    }

    async fn batch_create_entry(
        &self,
        request: Request<BatchCreateEntryRequest>,
    ) -> Result<Response<BatchCreateEntryResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mask = request.output_mask.as_ref();
        let now = self.config.clock.unix_seconds();
        let mut bundles = validate::BundleCache::default();
        let mut results: Vec<Option<CreateResult>> = Vec::with_capacity(request.entries.len());
        let mut pending = Vec::new();
        for (index, proto) in request.entries.iter().enumerate() {
            match self.prepare_create(proto, now, &mut bundles).await {
                Ok(entry) => {
                    pending.push((index, entry));
                    results.push(None);
                }
                Err(status) => results.push(Some(CreateResult {
                    status: Some(status),
                    entry: None,
                })),
            }
        }
        let (indexes, entries): (Vec<usize>, Vec<RegistrationEntry>) = pending.into_iter().unzip();
        let outcomes = match self.ds().create_registration_entries(entries).await {
            Ok(outcomes) => {
                self.config.feed.notify();
                outcomes
            }
            Err(e) => indexes.iter().map(|_| Err(clone_backend(&e))).collect(),
        };
        for (index, outcome) in indexes.into_iter().zip(outcomes) {
            results[index] = Some(create_result(outcome, mask));
        }
        let results: Vec<CreateResult> = results.into_iter().flatten().collect();
        if let Some(audit) = audit {
            for (proto, result) in request.entries.iter().zip(&results) {
                // The request's entry, as SPIRE records it: an assigned ID is not in it.
                audit.item(result.status.as_ref(), &entry_fields(proto, None));
            }
        }
        Ok(Response::new(BatchCreateEntryResponse { results }))
    }

    async fn batch_update_entry(
        &self,
        request: Request<BatchUpdateEntryRequest>,
    ) -> Result<Response<BatchUpdateEntryResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let input_mask = request.input_mask.as_ref();
        let output_mask = request.output_mask.as_ref();
        let mut bundles = validate::BundleCache::default();
        let mut results: Vec<Option<UpdateResult>> = Vec::with_capacity(request.entries.len());
        let mut pending = Vec::new();
        for (index, proto) in request.entries.iter().enumerate() {
            match self.prepare_update(proto, input_mask, &mut bundles).await {
                Ok(update) => {
                    pending.push((index, update));
                    results.push(None);
                }
                Err(status) => results.push(Some(UpdateResult {
                    status: Some(status),
                    entry: None,
                })),
            }
        }
        let (indexes, updates): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        let outcomes = match self.ds().update_registration_entries(updates).await {
            Ok(outcomes) => {
                self.config.feed.notify();
                outcomes
            }
            Err(e) => indexes.iter().map(|_| Err(clone_backend(&e))).collect(),
        };
        for (index, outcome) in indexes.into_iter().zip(outcomes) {
            results[index] = Some(match outcome {
                Ok(entry) => UpdateResult {
                    status: Some(ok()),
                    entry: Some(Self::masked(&entry, output_mask)),
                },
                Err(e) => UpdateResult {
                    status: Some(make_status(ds_code(&e), "failed to update entry", Some(&e))),
                    entry: None,
                },
            });
        }
        let results: Vec<UpdateResult> = results.into_iter().flatten().collect();
        if let Some(audit) = audit {
            for (proto, result) in request.entries.iter().zip(&results) {
                audit.item(result.status.as_ref(), &entry_fields(proto, input_mask));
            }
        }
        Ok(Response::new(BatchUpdateEntryResponse { results }))
    }

    async fn batch_delete_entry(
        &self,
        request: Request<BatchDeleteEntryRequest>,
    ) -> Result<Response<BatchDeleteEntryResponse>, Status> {
        let audit = Audit::batch(&request);
        let ids = request.into_inner().ids;
        let wanted: Vec<String> = ids.iter().filter(|id| !id.is_empty()).cloned().collect();
        let mut outcomes = match self.ds().delete_registration_entries(&wanted).await {
            Ok(outcomes) => {
                self.config.feed.notify();
                outcomes.into_iter()
            }
            Err(e) => wanted
                .iter()
                .map(|_| Err(clone_backend(&e)))
                .collect::<Vec<_>>()
                .into_iter(),
        };
        let results = ids
            .into_iter()
            .map(|id| {
                let status = if id.is_empty() {
                    make_status(Code::InvalidArgument, "missing entry ID", None)
                } else {
                    match outcomes.next() {
                        Some(Ok(_)) => ok(),
                        Some(Err(DsError::NotFound(_))) => {
                            make_status(Code::NotFound, "entry not found", None)
                        }
                        Some(Err(e)) => {
                            make_status(Code::Internal, "failed to delete entry", Some(&e))
                        }
                        None => make_status(Code::Internal, "failed to delete entry", None),
                    }
                };
                DeleteResult {
                    status: Some(status),
                    id,
                }
            })
            .collect::<Vec<DeleteResult>>();
        if let Some(audit) = audit {
            for result in &results {
                let mut fields = AuditFields::default();
                fields.string("entry_id", &result.id);
                audit.item(result.status.as_ref(), &fields);
            }
        }
        Ok(Response::new(BatchDeleteEntryResponse { results }))
    }

    async fn get_authorized_entries(
        &self,
        request: Request<GetAuthorizedEntriesRequest>,
    ) -> Result<Response<GetAuthorizedEntriesResponse>, Status> {
        let agent = authorized::caller_id(&request)?;
        let mask = request.into_inner().output_mask;
        let entries = authorized::authorized_entries(&self.config.feed, &agent).await?;
        Ok(Response::new(GetAuthorizedEntriesResponse {
            entries: entries
                .iter()
                .map(|e| Self::masked(e, mask.as_ref()))
                .collect(),
        }))
    }

    type SyncAuthorizedEntriesStream =
        ReceiverStream<Result<SyncAuthorizedEntriesResponse, Status>>;

    async fn sync_authorized_entries(
        &self,
        request: Request<Streaming<SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        let agent = authorized::caller_id(&request)?;
        let (replies, stream) = mpsc::channel(2);
        tokio::spawn(authorized::sync(
            self.config.feed.clone(),
            self.config.datastore.clone(),
            agent,
            request.into_inner(),
            replies,
        ));
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

/// The per-item result of one create: OK, a similar entry (returned with AlreadyExists), or
/// a failure with the datastore's code.
fn create_result(
    outcome: Result<RegistrationEntry, DsError>,
    mask: Option<&types::EntryMask>,
) -> CreateResult {
    match outcome {
        Ok(entry) => CreateResult {
            status: Some(ok()),
            entry: Some(EntryService::masked(&entry, mask)),
        },
        Err(DsError::AlreadyExists { message, existing }) if message == SIMILAR_ENTRY_EXISTS => {
            CreateResult {
                status: Some(plain_status(Code::AlreadyExists, SIMILAR_ENTRY_EXISTS)),
                entry: existing.map(|e| EntryService::masked(&e, mask)),
            }
        }
        Err(e) => CreateResult {
            status: Some(make_status(ds_code(&e), "failed to create entry", Some(&e))),
            entry: None,
        },
    }
}

/// A whole-batch datastore failure, repeated for each item of the batch.
fn clone_backend(e: &DsError) -> DsError {
    match e {
        DsError::NotFound(m) => DsError::NotFound(m.clone()),
        DsError::InvalidArgument(m) => DsError::InvalidArgument(m.clone()),
        DsError::FailedPrecondition(m) => DsError::FailedPrecondition(m.clone()),
        other => DsError::Backend(other.to_string().into()),
    }
}

impl EntryService {
    async fn prepare_create(
        &self,
        proto: &types::Entry,
        now: i64,
        bundles: &mut validate::BundleCache,
    ) -> Result<RegistrationEntry, types::Status> {
        let (mut entry, _) = entry_from_proto(&self.config.trust_domain, proto, None)
            .map_err(|e| make_status(Code::InvalidArgument, "failed to convert entry", Some(&e)))?;
        validate::for_create(&entry)
            .map_err(|e| make_status(Code::InvalidArgument, "failed to create entry", Some(&e)))?;
        bundles
            .check(self.ds(), &entry.federates_with)
            .await
            .map_err(|e| make_status(e.code(), "failed to create entry", Some(&e)))?;
        entry.created_at = now;
        Ok(entry)
    }

    async fn prepare_update(
        &self,
        proto: &types::Entry,
        input_mask: Option<&types::EntryMask>,
        bundles: &mut validate::BundleCache,
    ) -> Result<(RegistrationEntry, Option<spire_server_datastore::EntryMask>), types::Status> {
        let (entry, mask) = entry_from_proto(&self.config.trust_domain, proto, input_mask)
            .map_err(|e| make_status(Code::InvalidArgument, "failed to convert entry", Some(&e)))?;
        validate::for_update(&entry, &mask)
            .map_err(|e| make_status(Code::InvalidArgument, "failed to update entry", Some(&e)))?;
        if mask.federates_with {
            bundles
                .check(self.ds(), &entry.federates_with)
                .await
                .map_err(|e| make_status(e.code(), "failed to update entry", Some(&e)))?;
        }
        Ok((entry, input_mask.map(|_| mask)))
    }
}
