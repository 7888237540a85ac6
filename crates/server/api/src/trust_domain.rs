//! `spire.api.server.trustdomain.v1.TrustDomain`: dynamic federation relationships and
//! on-demand bundle refresh.
//!
//! Batches report per item: a refused item gets its own `Status` and never stops the others.
//! Codes and messages are SPIRE's, including its choices (a datastore failure on create or
//! update is `Internal`, an unknown relationship on update too). Every committed change is
//! announced on the change feed, so other servers and the refresher notice it, and to the
//! [`BundleRefresher`] (SPIRE's "trigger config reload").

use std::fmt;
use std::sync::Arc;

use spire_id::TrustDomain;
use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipRequest, BatchCreateFederationRelationshipResponse,
    BatchDeleteFederationRelationshipRequest, BatchDeleteFederationRelationshipResponse,
    BatchUpdateFederationRelationshipRequest, BatchUpdateFederationRelationshipResponse,
    GetFederationRelationshipRequest, ListFederationRelationshipsRequest,
    ListFederationRelationshipsResponse, RefreshBundleRequest,
    batch_create_federation_relationship_response as create,
    batch_delete_federation_relationship_response as delete,
    batch_update_federation_relationship_response as update,
    trust_domain_server::TrustDomain as TrustDomainApi,
};
use spire_proto::spire::api::types;
use spire_server_cache::ChangeFeed;
use spire_server_datastore::{
    BundleEndpointProfile, DataStore, Error as DsError, FederationRelationship, Pagination,
};
use tonic::{Code, Request, Response, Status};

use crate::ApiContext;
use crate::audit::{Audit, Fields as AuditFields, relationship_fields};
use crate::convert::{ALL_RELATIONSHIP_FIELDS, relationship_from_proto, relationship_to_proto};
use crate::status::{internal, make_err, make_status, ok};

/// What SPIRE's datastore says when an update names no stored relationship (SPIRE returns it
/// as `Internal`, wrapped in "failed to update federation relationship").
const UPDATE_NOT_FOUND: &str = "unable to fetch federation relationship: record not found";

/// Fetches federated bundles on demand; implemented by the federation refresher and plugged
/// in through [`ApiContext::bundle_refresher`].
#[tonic::async_trait]
pub trait BundleRefresher: Send + Sync + fmt::Debug + 'static {
    /// Fetches and stores the bundle of `trust_domain` now. `Ok(false)`: no relationship with
    /// that trust domain is being refreshed. The error text becomes the cause in SPIRE's
    /// "failed to refresh bundle: …".
    async fn refresh_bundle(&self, trust_domain: &TrustDomain) -> Result<bool, String>;

    /// Called after a batch committed at least one relationship change (SPIRE's
    /// `TriggerConfigReload`). The default does nothing: the change feed announces every
    /// change anyway.
    fn relationships_changed(&self) {}
}

/// What the TrustDomain service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain: no relationship may name it.
    pub trust_domain: TrustDomain,
    /// Where relationships (and their bundles) live.
    pub datastore: Arc<dyn DataStore>,
    /// Told after every batch that changed something.
    pub feed: Arc<ChangeFeed>,
    /// Serves `RefreshBundle`; `None` answers every trust domain as not refreshed.
    pub refresher: Option<Arc<dyn BundleRefresher>>,
}

/// The TrustDomain service.
#[derive(Clone, Debug)]
pub struct TrustDomainService {
    config: Config,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            datastore: ctx.datastore.clone(),
            feed: ctx.entries.clone(),
            refresher: ctx.bundle_refresher.clone(),
        }
    }
}

// === impl TrustDomainService ===

impl TrustDomainService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    fn ds(&self) -> &dyn DataStore {
        self.config.datastore.as_ref()
    }

    /// Announces committed changes (only when there were some, as SPIRE reloads).
    fn changed(&self, any: bool) {
        if any {
            self.config.feed.notify();
            if let Some(refresher) = &self.config.refresher {
                refresher.relationships_changed();
            }
        }
    }

    async fn create_one(
        &self,
        proto: &types::FederationRelationship,
        mask: Option<&types::FederationRelationshipMask>,
    ) -> create::Result {
        let outcome = async {
            let relationship = convert(proto)?;
            if relationship.trust_domain == self.config.trust_domain {
                return Err(make_status(
                    Code::InvalidArgument,
                    "unable to create federation relationship for server trust domain",
                    None,
                ));
            }
            let sent_bundle = relationship.trust_domain_bundle.is_some();
            let mut created = self
                .ds()
                .create_federation_relationship(relationship)
                .await
                .map_err(|e| {
                    make_status(
                        Code::Internal,
                        "failed to create federation relationship",
                        Some(&e),
                    )
                })?;
            // SPIRE answers with what was created: a bundle only when one was sent.
            if !sent_bundle {
                created.trust_domain_bundle = None;
            }
            self.warn_if_endpoint_unverifiable(&created).await;
            tracing::debug!(trust_domain = %created.trust_domain, "Federation relationship created");
            Ok(relationship_to_proto(&created, mask))
        }
        .await;
        let (status, federation_relationship) = split(outcome);
        create::Result {
            status,
            federation_relationship,
        }
    }

    async fn update_one(
        &self,
        proto: &types::FederationRelationship,
        input_mask: &types::FederationRelationshipMask,
        output_mask: Option<&types::FederationRelationshipMask>,
    ) -> update::Result {
        let outcome = async {
            let new = convert(proto)?;
            let failed = |cause: &dyn fmt::Display| {
                make_status(
                    Code::Internal,
                    "failed to update federation relationship",
                    Some(cause),
                )
            };
            let mut merged = match self.ds().fetch_federation_relationship(&new.trust_domain).await
            {
                Ok(Some(current)) => current,
                Ok(None) => return Err(failed(&UPDATE_NOT_FOUND)),
                Err(e) => return Err(failed(&e)),
            };
            if input_mask.bundle_endpoint_url {
                merged.bundle_endpoint_url = new.bundle_endpoint_url;
            }
            if input_mask.bundle_endpoint_profile {
                merged.profile = new.profile;
            }
            // `None` keeps the stored bundle; a bundle is written only when sent and asked for.
            merged.trust_domain_bundle = new
                .trust_domain_bundle
                .filter(|_| input_mask.trust_domain_bundle);
            let updated = match self.ds().update_federation_relationship(merged).await {
                Ok(updated) => updated,
                Err(DsError::NotFound(_)) => return Err(failed(&UPDATE_NOT_FOUND)),
                Err(e) => return Err(failed(&e)),
            };
            self.warn_if_endpoint_unverifiable(&updated).await;
            tracing::debug!(trust_domain = %updated.trust_domain, "Federation relationship updated");
            Ok(relationship_to_proto(&updated, output_mask))
        }
        .await;
        let (status, federation_relationship) = split(outcome);
        update::Result {
            status,
            federation_relationship,
        }
    }

    async fn delete_one(&self, name: String) -> delete::Result {
        let result = |status: types::Status, trust_domain: String| delete::Result {
            status: Some(status),
            trust_domain,
        };
        if name.is_empty() {
            let status = make_status(Code::InvalidArgument, "missing trust domain", None);
            return result(status, name);
        }
        let td = match TrustDomain::parse(&name) {
            Ok(td) => td,
            Err(e) => {
                let status = make_status(
                    Code::InvalidArgument,
                    "failed to parse trust domain",
                    Some(&e),
                );
                return result(status, name);
            }
        };
        let status = match self.ds().delete_federation_relationship(&td).await {
            Ok(()) => {
                tracing::debug!(trust_domain = %td, "Federation relationship deleted");
                ok()
            }
            Err(DsError::NotFound(_)) => {
                make_status(Code::NotFound, "federation relationship not found", None)
            }
            Err(e) => make_status(
                Code::Internal,
                "failed to delete federation relationship",
                Some(&e),
            ),
        };
        result(status, td.name().to_owned())
    }

    /// SPIRE's warning for an `https_spiffe` relationship that has no bundle of its own when
    /// the endpoint's trust domain has no bundle either: the endpoint cannot be authenticated
    /// until one is set.
    async fn warn_if_endpoint_unverifiable(&self, relationship: &FederationRelationship) {
        let BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } = &relationship.profile
        else {
            return;
        };
        if relationship.trust_domain_bundle.is_some() {
            return;
        }
        match self
            .ds()
            .fetch_bundle(endpoint_spiffe_id.trust_domain())
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(
                trust_domain = %relationship.trust_domain,
                endpoint_spiffe_id = %endpoint_spiffe_id,
                "bundle not found for the endpoint SPIFFE ID trust domain"
            ),
            Err(e) => tracing::warn!(
                trust_domain = %relationship.trust_domain,
                endpoint_spiffe_id = %endpoint_spiffe_id,
                error = %e,
                "failed to check whether a bundle exists for the endpoint SPIFFE ID trust domain"
            ),
        }
    }
}

/// A client's relationship → domain, refused with SPIRE's `InvalidArgument` wording.
fn convert(proto: &types::FederationRelationship) -> Result<FederationRelationship, types::Status> {
    relationship_from_proto(proto).map_err(|e| {
        make_status(
            Code::InvalidArgument,
            "failed to convert federation relationship",
            Some(&e),
        )
    })
}

/// A per-item outcome → `(status, relationship)`.
fn split(
    outcome: Result<types::FederationRelationship, types::Status>,
) -> (Option<types::Status>, Option<types::FederationRelationship>) {
    match outcome {
        Ok(relationship) => (Some(ok()), Some(relationship)),
        Err(status) => (Some(status), None),
    }
}

fn is_ok(status: Option<&types::Status>) -> bool {
    status.is_some_and(|s| s.code == Code::Ok as i32)
}

fn parse_trust_domain(name: &str) -> Result<TrustDomain, Status> {
    TrustDomain::parse(name).map_err(|e| {
        make_err(
            Code::InvalidArgument,
            "failed to parse trust domain",
            Some(&e),
        )
    })
}

#[tonic::async_trait]
impl TrustDomainApi for TrustDomainService {
    async fn list_federation_relationships(
        &self,
        request: Request<ListFederationRelationshipsRequest>,
    ) -> Result<Response<ListFederationRelationshipsResponse>, Status> {
        let request = request.into_inner();
        let page = (request.page_size > 0).then(|| Pagination {
            token: request.page_token.clone(),
            page_size: request.page_size.unsigned_abs(),
        });
        let page = self
            .ds()
            .list_federation_relationships(page)
            .await
            .map_err(|e| match e {
                DsError::InvalidArgument(message) => Status::invalid_argument(message),
                e => internal("failed to list federation relationships", &e),
            })?;
        let mask = request.output_mask.as_ref();
        Ok(Response::new(ListFederationRelationshipsResponse {
            federation_relationships: page
                .items
                .iter()
                .map(|f| relationship_to_proto(f, mask))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_federation_relationship(
        &self,
        request: Request<GetFederationRelationshipRequest>,
    ) -> Result<Response<types::FederationRelationship>, Status> {
        Audit::add(&request, |f| {
            f.string("trust_domain_id", &request.get_ref().trust_domain);
        });
        let request = request.into_inner();
        let td = parse_trust_domain(&request.trust_domain)?;
        match self.ds().fetch_federation_relationship(&td).await {
            Ok(Some(f)) => Ok(Response::new(relationship_to_proto(
                &f,
                request.output_mask.as_ref(),
            ))),
            Ok(None) => Err(make_err(
                Code::NotFound,
                "federation relationship does not exist",
                None,
            )),
            Err(e) => Err(internal("failed to fetch federation relationship", &e)),
        }
    }

    async fn batch_create_federation_relationship(
        &self,
        request: Request<BatchCreateFederationRelationshipRequest>,
    ) -> Result<Response<BatchCreateFederationRelationshipResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mask = request.output_mask.as_ref();
        let mut results = Vec::with_capacity(request.federation_relationships.len());
        for f in &request.federation_relationships {
            let result = self.create_one(f, mask).await;
            if let Some(audit) = &audit {
                audit.item(result.status.as_ref(), &relationship_fields(f, None));
            }
            results.push(result);
        }
        self.changed(results.iter().any(|r| is_ok(r.status.as_ref())));
        Ok(Response::new(BatchCreateFederationRelationshipResponse {
            results,
        }))
    }

    async fn batch_update_federation_relationship(
        &self,
        request: Request<BatchUpdateFederationRelationshipRequest>,
    ) -> Result<Response<BatchUpdateFederationRelationshipResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let input_mask = request.input_mask.unwrap_or(ALL_RELATIONSHIP_FIELDS);
        let output_mask = request.output_mask.as_ref();
        let mut results = Vec::with_capacity(request.federation_relationships.len());
        for f in &request.federation_relationships {
            let result = self.update_one(f, &input_mask, output_mask).await;
            if let Some(audit) = &audit {
                audit.item(
                    result.status.as_ref(),
                    &relationship_fields(f, Some(&input_mask)),
                );
            }
            results.push(result);
        }
        self.changed(results.iter().any(|r| is_ok(r.status.as_ref())));
        Ok(Response::new(BatchUpdateFederationRelationshipResponse {
            results,
        }))
    }

    async fn batch_delete_federation_relationship(
        &self,
        request: Request<BatchDeleteFederationRelationshipRequest>,
    ) -> Result<Response<BatchDeleteFederationRelationshipResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.trust_domains.len());
        for name in request.trust_domains {
            let mut fields = AuditFields::default();
            fields.string("trust_domain_id", &name);
            let result = self.delete_one(name).await;
            if let Some(audit) = &audit {
                audit.item(result.status.as_ref(), &fields);
            }
            results.push(result);
        }
        self.changed(results.iter().any(|r| is_ok(r.status.as_ref())));
        Ok(Response::new(BatchDeleteFederationRelationshipResponse {
            results,
        }))
    }

    async fn refresh_bundle(
        &self,
        request: Request<RefreshBundleRequest>,
    ) -> Result<Response<()>, Status> {
        let td = parse_trust_domain(&request.get_ref().trust_domain)?;
        // As SPIRE: a refresh records its trust domain once it parsed.
        Audit::add(&request, |f| {
            f.string("trust_domain_id", &request.get_ref().trust_domain);
        });
        let refreshed = match &self.config.refresher {
            Some(refresher) => refresher
                .refresh_bundle(&td)
                .await
                .map_err(|e| make_err(Code::Internal, "failed to refresh bundle", Some(&e)))?,
            None => false,
        };
        if !refreshed {
            return Err(make_err(
                Code::NotFound,
                &format!("no relationship with trust domain \"{td}\""),
                None,
            ));
        }
        tracing::debug!(trust_domain = %td, "Bundle refreshed");
        Ok(Response::new(()))
    }
}
