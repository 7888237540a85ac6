//! `spire.api.server.bundle.v1.Bundle`: our trust bundle and federated bundles.

use std::sync::Arc;

use spire_id::TrustDomain;
use spire_proto::spire::api::server::bundle::v1::{
    AppendBundleRequest, BatchCreateFederatedBundleRequest, BatchCreateFederatedBundleResponse,
    BatchDeleteFederatedBundleRequest, BatchDeleteFederatedBundleResponse,
    BatchSetFederatedBundleRequest, BatchSetFederatedBundleResponse,
    BatchUpdateFederatedBundleRequest, BatchUpdateFederatedBundleResponse, CountBundlesRequest,
    CountBundlesResponse, GetBundleRequest, GetFederatedBundleRequest, ListFederatedBundlesRequest,
    ListFederatedBundlesResponse, PublishJwtAuthorityRequest, PublishJwtAuthorityResponse,
    batch_create_federated_bundle_response as create, batch_delete_federated_bundle_request::Mode,
    batch_delete_federated_bundle_response as delete, batch_set_federated_bundle_response as set,
    batch_update_federated_bundle_response as update, bundle_server::Bundle as BundleApi,
};
use spire_proto::spire::api::types;
use spire_server_cache::ChangeFeed;
use spire_server_datastore::{BundleDeleteMode, DataStore, Error as DsError, Pagination};
use spire_svid::Bundle;
use tonic::{Code, Request, Response, Status};

use crate::ApiContext;
use crate::audit::{
    Audit, Fields as AuditFields, bundle_fields, jwt_authority_fields, x509_authority_fields,
};
use crate::convert::{
    Error as ConvertError, apply_bundle_mask, bundle_from_proto, bundle_to_proto,
    jwt_authorities_from_proto, x509_authorities_from_proto,
};
use crate::status::{ds_code, internal, make_err, make_status, ok};

/// What the Bundle service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain (its bundle is "the" bundle; every other is federated).
    pub trust_domain: TrustDomain,
    /// Where bundles live.
    pub datastore: Arc<dyn DataStore>,
    /// Told after every write.
    pub feed: Arc<ChangeFeed>,
}

/// The Bundle service.
#[derive(Clone, Debug)]
pub struct BundleService {
    config: Config,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            datastore: ctx.datastore.clone(),
            feed: ctx.entries.clone(),
        }
    }
}

// === impl BundleService ===

impl BundleService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    fn ds(&self) -> &dyn DataStore {
        self.config.datastore.as_ref()
    }

    /// Parses a federated trust domain; refuses ours with `own_message`.
    fn federated_td(&self, name: &str, own_message: &str) -> Result<TrustDomain, types::Status> {
        let td = TrustDomain::parse(name).map_err(|e| {
            make_status(
                Code::InvalidArgument,
                "trust domain argument is not valid",
                Some(&e),
            )
        })?;
        if td == self.config.trust_domain {
            return Err(make_status(Code::InvalidArgument, own_message, None));
        }
        Ok(td)
    }

    fn convert(b: &types::Bundle) -> Result<Bundle, types::Status> {
        bundle_from_proto(b)
            .map_err(|e| make_status(Code::InvalidArgument, "failed to convert bundle", Some(&e)))
    }

    async fn create_one(
        &self,
        b: &types::Bundle,
        mask: Option<&types::BundleMask>,
    ) -> create::Result {
        let outcome = async {
            self.federated_td(
                &b.trust_domain,
                "creating a federated bundle for the server's own trust domain is not allowed",
            )?;
            let bundle = Self::convert(b)?;
            match self.ds().create_bundle(bundle).await {
                Ok(created) => Ok(created),
                Err(DsError::AlreadyExists { .. }) => Err(make_status(
                    Code::AlreadyExists,
                    "bundle already exists",
                    None,
                )),
                Err(e) => Err(make_status(
                    Code::Internal,
                    "unable to create bundle",
                    Some(&e),
                )),
            }
        }
        .await;
        let (status, bundle) = split(outcome, mask);
        create::Result { status, bundle }
    }

    async fn update_one(
        &self,
        b: &types::Bundle,
        input_mask: Option<&types::BundleMask>,
        output_mask: Option<&types::BundleMask>,
    ) -> update::Result {
        let outcome = async {
            let td = self.federated_td(
                &b.trust_domain,
                "updating a federated bundle for the server's own trust domain is not allowed",
            )?;
            let new = Self::convert(b)?;
            let not_found = || make_status(Code::NotFound, "bundle not found", None);
            let merged = match input_mask {
                None => new,
                Some(m) => {
                    let mut current = match self.ds().fetch_bundle(&td).await {
                        Ok(Some(current)) => current,
                        Ok(None) => return Err(not_found()),
                        Err(e) => {
                            return Err(make_status(
                                Code::Internal,
                                "failed to update bundle",
                                Some(&e),
                            ));
                        }
                    };
                    if m.x509_authorities {
                        current.x509_authorities = new.x509_authorities;
                    }
                    if m.jwt_authorities {
                        current.jwt_authorities = new.jwt_authorities;
                    }
                    if m.refresh_hint {
                        current.refresh_hint = new.refresh_hint;
                    }
                    if m.sequence_number {
                        current.sequence_number = new.sequence_number;
                    }
                    current
                }
            };
            match self.ds().update_bundle(merged).await {
                Ok(updated) => Ok(updated),
                Err(DsError::NotFound(_)) => Err(not_found()),
                Err(e) => Err(make_status(
                    Code::Internal,
                    "failed to update bundle",
                    Some(&e),
                )),
            }
        }
        .await;
        let (status, bundle) = split(outcome, output_mask);
        update::Result { status, bundle }
    }

    async fn set_one(&self, b: &types::Bundle, mask: Option<&types::BundleMask>) -> set::Result {
        let outcome = async {
            self.federated_td(
                &b.trust_domain,
                "setting a federated bundle for the server's own trust domain is not allowed",
            )?;
            let bundle = Self::convert(b)?;
            self.ds()
                .set_bundle(bundle)
                .await
                .map_err(|e| make_status(Code::Internal, "failed to set bundle", Some(&e)))
        }
        .await;
        let (status, bundle) = split(outcome, mask);
        set::Result { status, bundle }
    }

    async fn delete_one(&self, name: String, mode: BundleDeleteMode) -> delete::Result {
        let outcome = async {
            let td = self.federated_td(
                &name,
                "removing the bundle for the server trust domain is not allowed",
            )?;
            match self.ds().delete_bundle(&td, mode).await {
                Ok(()) => Ok(()),
                Err(DsError::NotFound(_)) => {
                    Err(make_status(Code::NotFound, "bundle not found", None))
                }
                Err(e) => Err(make_status(
                    ds_code(&e),
                    "failed to delete federated bundle",
                    Some(&e),
                )),
            }
        }
        .await;
        delete::Result {
            status: Some(outcome.err().unwrap_or_else(ok)),
            trust_domain: name,
        }
    }
}

/// A per-item outcome → `(status, masked bundle)`.
fn split(
    outcome: Result<Bundle, types::Status>,
    mask: Option<&types::BundleMask>,
) -> (Option<types::Status>, Option<types::Bundle>) {
    match outcome {
        Ok(bundle) => (Some(ok()), Some(masked(&bundle, mask))),
        Err(status) => (Some(status), None),
    }
}

fn masked(bundle: &Bundle, mask: Option<&types::BundleMask>) -> types::Bundle {
    let mut proto = bundle_to_proto(bundle);
    apply_bundle_mask(&mut proto, mask);
    proto
}

/// The reason inside an authority conversion error (SPIRE reports it under its own prefix).
fn reason(e: &ConvertError) -> String {
    match e {
        ConvertError::X509Authority(r) | ConvertError::JwtAuthority(r) => r.clone(),
        other => other.to_string(),
    }
}

#[tonic::async_trait]
impl BundleApi for BundleService {
    async fn count_bundles(
        &self,
        _request: Request<CountBundlesRequest>,
    ) -> Result<Response<CountBundlesResponse>, Status> {
        let count = self
            .ds()
            .count_bundles()
            .await
            .map_err(|e| internal("failed to count bundles", &e))?;
        Ok(Response::new(CountBundlesResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn get_bundle(
        &self,
        request: Request<GetBundleRequest>,
    ) -> Result<Response<types::Bundle>, Status> {
        let mask = request.into_inner().output_mask;
        match self.ds().fetch_bundle(&self.config.trust_domain).await {
            Ok(Some(bundle)) => Ok(Response::new(masked(&bundle, mask.as_ref()))),
            Ok(None) => Err(make_err(Code::NotFound, "bundle not found", None)),
            Err(e) => Err(internal("failed to fetch bundle", &e)),
        }
    }

    async fn append_bundle(
        &self,
        request: Request<AppendBundleRequest>,
    ) -> Result<Response<types::Bundle>, Status> {
        Audit::add(&request, |f| {
            let request = request.get_ref();
            f.append(&jwt_authority_fields(&request.jwt_authorities, ""))
                .append(&x509_authority_fields(&request.x509_authorities, ""));
        });
        let request = request.into_inner();
        if request.jwt_authorities.is_empty() && request.x509_authorities.is_empty() {
            return Err(make_err(
                Code::InvalidArgument,
                "no authorities to append",
                None,
            ));
        }
        let jwt = jwt_authorities_from_proto(&request.jwt_authorities).map_err(|e| {
            make_err(
                Code::InvalidArgument,
                "failed to convert JWT authority",
                Some(&reason(&e)),
            )
        })?;
        let x509 = x509_authorities_from_proto(&request.x509_authorities).map_err(|e| {
            make_err(
                Code::InvalidArgument,
                "failed to convert X.509 authority",
                Some(&reason(&e)),
            )
        })?;
        let mut addition = Bundle::new(self.config.trust_domain.clone());
        addition.x509_authorities = x509;
        addition.jwt_authorities = jwt;
        let bundle = self
            .ds()
            .append_bundle(addition)
            .await
            .map_err(|e| internal("failed to append bundle", &e))?;
        self.config.feed.notify();
        Ok(Response::new(masked(&bundle, request.output_mask.as_ref())))
    }

    async fn publish_jwt_authority(
        &self,
        _request: Request<PublishJwtAuthorityRequest>,
    ) -> Result<Response<PublishJwtAuthorityResponse>, Status> {
        Err(Status::unimplemented(
            "method PublishJWTAuthority not implemented",
        ))
    }

    async fn list_federated_bundles(
        &self,
        request: Request<ListFederatedBundlesRequest>,
    ) -> Result<Response<ListFederatedBundlesResponse>, Status> {
        let request = request.into_inner();
        let page = (request.page_size > 0).then(|| Pagination {
            token: request.page_token.clone(),
            page_size: request.page_size.unsigned_abs(),
        });
        let page = self.ds().list_bundles(page).await.map_err(|e| match e {
            DsError::InvalidArgument(message) => Status::invalid_argument(message),
            e => internal("failed to list bundles", &e),
        })?;
        let mask = request.output_mask.as_ref();
        Ok(Response::new(ListFederatedBundlesResponse {
            bundles: page
                .items
                .iter()
                .filter(|b| b.trust_domain != self.config.trust_domain)
                .map(|b| masked(b, mask))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_federated_bundle(
        &self,
        request: Request<GetFederatedBundleRequest>,
    ) -> Result<Response<types::Bundle>, Status> {
        Audit::add(&request, |f| {
            f.string("trust_domain_id", &request.get_ref().trust_domain);
        });
        let request = request.into_inner();
        let td = TrustDomain::parse(&request.trust_domain).map_err(|e| {
            make_err(
                Code::InvalidArgument,
                "trust domain argument is not valid",
                Some(&e),
            )
        })?;
        if td == self.config.trust_domain {
            return Err(make_err(
                Code::InvalidArgument,
                "getting a federated bundle for the server's own trust domain is not allowed",
                None,
            ));
        }
        match self.ds().fetch_bundle(&td).await {
            Ok(Some(bundle)) => Ok(Response::new(masked(&bundle, request.output_mask.as_ref()))),
            Ok(None) => Err(make_err(Code::NotFound, "bundle not found", None)),
            Err(e) => Err(internal("failed to fetch bundle", &e)),
        }
    }

    async fn batch_create_federated_bundle(
        &self,
        request: Request<BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<BatchCreateFederatedBundleResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.bundle.len());
        for b in &request.bundle {
            let result = self.create_one(b, request.output_mask.as_ref()).await;
            if let Some(audit) = &audit {
                audit.item(result.status.as_ref(), &bundle_fields(b, None, ""));
            }
            results.push(result);
        }
        self.config.feed.notify();
        Ok(Response::new(BatchCreateFederatedBundleResponse {
            results,
        }))
    }

    async fn batch_update_federated_bundle(
        &self,
        request: Request<BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<BatchUpdateFederatedBundleResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.bundle.len());
        for b in &request.bundle {
            let (input, output) = (request.input_mask.as_ref(), request.output_mask.as_ref());
            let result = self.update_one(b, input, output).await;
            if let Some(audit) = &audit {
                audit.item(result.status.as_ref(), &bundle_fields(b, input, ""));
            }
            results.push(result);
        }
        self.config.feed.notify();
        Ok(Response::new(BatchUpdateFederatedBundleResponse {
            results,
        }))
    }

    async fn batch_set_federated_bundle(
        &self,
        request: Request<BatchSetFederatedBundleRequest>,
    ) -> Result<Response<BatchSetFederatedBundleResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.bundle.len());
        for b in &request.bundle {
            let result = self.set_one(b, request.output_mask.as_ref()).await;
            if let Some(audit) = &audit {
                audit.item(result.status.as_ref(), &bundle_fields(b, None, ""));
            }
            results.push(result);
        }
        self.config.feed.notify();
        Ok(Response::new(BatchSetFederatedBundleResponse { results }))
    }

    async fn batch_delete_federated_bundle(
        &self,
        request: Request<BatchDeleteFederatedBundleRequest>,
    ) -> Result<Response<BatchDeleteFederatedBundleResponse>, Status> {
        let audit = Audit::batch(&request);
        let request = request.into_inner();
        let mode = match Mode::try_from(request.mode) {
            Ok(Mode::Restrict) => BundleDeleteMode::Restrict,
            Ok(Mode::Delete) => BundleDeleteMode::Delete,
            Ok(Mode::Dissociate) => BundleDeleteMode::Dissociate,
            Err(_) => {
                return Err(make_err(
                    Code::InvalidArgument,
                    "failed to parse deletion mode",
                    Some(&format!("unhandled delete mode \"{}\"", request.mode)),
                ));
            }
        };
        let mut results = Vec::with_capacity(request.trust_domains.len());
        for name in request.trust_domains {
            let mut fields = AuditFields::default();
            fields.string("trust_domain_id", &name);
            let result = self.delete_one(name, mode).await;
            if let Some(audit) = &audit {
                audit.item(result.status.as_ref(), &fields);
            }
            results.push(result);
        }
        self.config.feed.notify();
        Ok(Response::new(BatchDeleteFederatedBundleResponse {
            results,
        }))
    }
}
