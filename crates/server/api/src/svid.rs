//! `spire.api.server.svid.v1.SVID`: MintX509SVID and MintJWTSVID for admins,
//! BatchNewX509SVID and NewJWTSVID for agents (the JWT half in `svid/jwt.rs`);
//! NewDownstreamX509CA is `Unimplemented` here.

use std::sync::Arc;
use std::time::Duration;

use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::svid::v1::{
    BatchNewX509svidRequest, BatchNewX509svidResponse, MintJwtsvidRequest, MintJwtsvidResponse,
    MintX509svidRequest, MintX509svidResponse, NewDownstreamX509caRequest,
    NewDownstreamX509caResponse, NewJwtsvidRequest, NewJwtsvidResponse, NewX509svidParams,
    batch_new_x509svid_response, svid_server::Svid,
};
use spire_proto::spire::api::types;
use spire_server_ca::{Ca, X509SvidParams};
use spire_server_cache::ChangeFeed;
use spire_server_datastore::RegistrationEntry;
use tonic::{Code, Request, Response, Status};
use x509_parser::prelude::{
    FromDer, GeneralName, ParsedExtension, X509Certificate, X509CertificationRequest,
};

use crate::ApiContext;
use crate::audit::{Audit, Fields as AuditFields, hash_bytes};
use crate::convert::{id_from_proto, id_to_proto, verify_workload_id};
use crate::dns::{check_wildcard_overlap, validate_label};
use crate::entry::authorized::{authorized_entries, caller_id};
use crate::ratelimit::{Limited, RateLimits};
use crate::status::{make_err, ok};

mod jwt;

pub use jwt::JWT_DISABLED;

/// The status message for an entry ID the calling agent is not authorized for (or that does
/// not exist); the two are not told apart (security SPI-01-004).
pub const ENTRY_NOT_AUTHORIZED: &str = "entry not found or not authorized";

/// What the SVID service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain: minted IDs must be its workloads.
    pub trust_domain: TrustDomain,
    /// The minting handle.
    pub ca: Ca,
    /// The TTL of a mint request that gives none.
    pub default_x509_svid_ttl: Duration,
    /// The authorized entries of agents.
    pub feed: Arc<ChangeFeed>,
    /// SPIRE's per-IP rate limits (`ratelimit { }`).
    pub rate_limits: Arc<RateLimits>,
}

/// The SVID service.
#[derive(Clone, Debug)]
pub struct SvidService {
    config: Config,
}

/// What MintX509SVID reads from a CSR.
struct CsrRequest {
    public_key: Vec<u8>,
    uris: Vec<String>,
    dns_names: Vec<String>,
}

// === impl Config ===

impl From<&ApiContext> for Config {
    fn from(ctx: &ApiContext) -> Self {
        Self {
            trust_domain: ctx.trust_domain.clone(),
            ca: ctx.ca.clone(),
            default_x509_svid_ttl: ctx.default_x509_svid_ttl,
            feed: ctx.entries.clone(),
            rate_limits: ctx.rate_limits.clone(),
        }
    }
}

// === impl SvidService ===

impl SvidService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// One BatchNewX509SVID item: the entry must be among `entries` (the caller's authorized
    /// entries, sorted by ID); the CSR only proves possession of the key. Everything the
    /// certificate says comes from the entry, never from the CSR (CVE-2021-27098).
    fn new_x509_svid(
        &self,
        params: &NewX509svidParams,
        entries: &[Arc<RegistrationEntry>],
    ) -> Result<types::X509svid, Status> {
        if params.entry_id.is_empty() {
            return Err(invalid("missing entry ID", None));
        }
        if params.csr.is_empty() {
            return Err(invalid("missing CSR", None));
        }
        let entry = authorized_entry(entries, &params.entry_id)?;
        let csr = parse_csr(&params.csr)?;
        let ttl = Duration::from_secs(u64::try_from(entry.x509_svid_ttl).unwrap_or_default());
        let svid_params = X509SvidParams {
            spiffe_id: &entry.spiffe_id,
            dns_names: &entry.dns_names,
            ttl,
        };
        let chain = self
            .config
            .ca
            .sign_workload_x509_svid(&csr.public_key, svid_params)
            .map_err(|e| make_err(Code::Internal, "failed to sign X509-SVID", Some(&e)))?;
        let expires_at = leaf_expiry(&chain)?;
        tracing::debug!(spiffe_id = %entry.spiffe_id, entry_id = %entry.id, expires_at, "Signed X509 SVID");
        Ok(types::X509svid {
            cert_chain: chain,
            id: Some(id_to_proto(&entry.spiffe_id)),
            expires_at,
            hint: entry.hint.clone(),
        })
    }
}

/// The entry `entry_id` among `entries` (sorted by ID), or SPIRE's `NotFound` for an entry
/// that does not exist or that the caller may not obtain.
fn authorized_entry<'a>(
    entries: &'a [Arc<RegistrationEntry>],
    entry_id: &str,
) -> Result<&'a Arc<RegistrationEntry>, Status> {
    entries
        .binary_search_by(|e| e.id.as_str().cmp(entry_id))
        .map(|index| &entries[index])
        .map_err(|_| make_err(Code::NotFound, ENTRY_NOT_AUTHORIZED, None))
}

/// `notAfter` of the first certificate of a freshly signed chain.
fn leaf_expiry(chain: &[Vec<u8>]) -> Result<i64, Status> {
    chain
        .first()
        .and_then(|leaf| X509Certificate::from_der(leaf).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .ok_or_else(|| make_err(Code::Internal, "failed to sign X509-SVID", None))
}

fn invalid(msg: &str, cause: Option<&dyn std::fmt::Display>) -> Status {
    make_err(Code::InvalidArgument, msg, cause)
}

/// Parses a CSR and checks its proof of possession, keeping the public key and the SANs.
fn parse_csr(der: &[u8]) -> Result<CsrRequest, Status> {
    if der.is_empty() {
        return Err(invalid("missing CSR", None));
    }
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| invalid("malformed CSR", Some(&e)))?;
    if !rest.is_empty() {
        return Err(invalid("malformed CSR", Some(&"trailing data")));
    }
    csr.verify_signature()
        .map_err(|e| invalid("failed to verify CSR signature", Some(&e)))?;
    let mut request = CsrRequest {
        public_key: csr.certification_request_info.subject_pki.raw.to_vec(),
        uris: Vec::new(),
        dns_names: Vec::new(),
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::URI(uri) => request.uris.push((*uri).to_owned()),
                    GeneralName::DNSName(dns) => request.dns_names.push((*dns).to_owned()),
                    _ => {}
                }
            }
        }
    }
    Ok(request)
}

#[tonic::async_trait]
impl Svid for SvidService {
    async fn mint_x509svid(
        &self,
        request: Request<MintX509svidRequest>,
    ) -> Result<Response<MintX509svidResponse>, Status> {
        let request = request.into_inner();
        let csr = parse_csr(&request.csr)?;
        let uri = match csr.uris.as_slice() {
            [] => return Err(invalid("CSR URI SAN is required", None)),
            [uri] => uri,
            _ => return Err(invalid("only one URI SAN is expected", None)),
        };
        let id = SpiffeId::parse(uri).map_err(|e| invalid("CSR URI SAN is invalid", Some(&e)))?;
        verify_workload_id(&self.config.trust_domain, &id)
            .map_err(|e| invalid("CSR URI SAN is invalid", Some(&e)))?;
        for name in &csr.dns_names {
            validate_label(name).map_err(|e| invalid("CSR DNS name is invalid", Some(&e)))?;
        }
        check_wildcard_overlap(&csr.dns_names).map_err(|e| {
            invalid(
                "CSR DNS name contains a wildcard that covers another non-wildcard name",
                Some(&e),
            )
        })?;
        let ttl = match u64::try_from(request.ttl) {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => self.config.default_x509_svid_ttl,
        };
        let params = X509SvidParams {
            spiffe_id: &id,
            dns_names: &csr.dns_names,
            ttl,
        };
        let chain = self
            .config
            .ca
            .sign_workload_x509_svid(&csr.public_key, params)
            .map_err(|e| make_err(Code::Internal, "failed to sign X509-SVID", Some(&e)))?;
        let expires_at = leaf_expiry(&chain)?;
        tracing::debug!(spiffe_id = %id, expires_at, "Signed X509 SVID");
        Ok(Response::new(MintX509svidResponse {
            svid: Some(types::X509svid {
                cert_chain: chain,
                id: Some(id_to_proto(&id)),
                expires_at,
                hint: String::new(),
            }),
        }))
    }

    async fn mint_jwtsvid(
        &self,
        request: Request<MintJwtsvidRequest>,
    ) -> Result<Response<MintJwtsvidResponse>, Status> {
        self.check_jwt_enabled()?;
        let request = request.into_inner();
        let svid = self.mint_jwt_svid(request.id.as_ref(), &request.audience, request.ttl)?;
        Ok(Response::new(MintJwtsvidResponse { svid: Some(svid) }))
    }

    async fn batch_new_x509svid(
        &self,
        request: Request<BatchNewX509svidRequest>,
    ) -> Result<Response<BatchNewX509svidResponse>, Status> {
        let agent = caller_id(&request)?;
        self.config
            .rate_limits
            .admit(
                Limited::BatchNewX509Svid,
                &request,
                request.get_ref().params.len(),
            )
            .await?;
        let audit = Audit::batch(&request);
        let entries = authorized_entries(&self.config.feed, &agent).await?;
        let params = request.into_inner().params;
        let results: Vec<batch_new_x509svid_response::Result> = params
            .iter()
            .map(|params| match self.new_x509_svid(params, &entries) {
                Ok(svid) => batch_new_x509svid_response::Result {
                    status: Some(ok()),
                    svid: Some(svid),
                },
                // Already logged where it was made.
                Err(status) => batch_new_x509svid_response::Result {
                    status: Some(types::Status {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                    }),
                    svid: None,
                },
            })
            .collect();
        if let Some(audit) = audit {
            for (params, result) in params.iter().zip(&results) {
                let svid = result.svid.as_ref();
                let spiffe_id = svid
                    .and_then(|s| id_from_proto(s.id.as_ref()).ok())
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                let mut fields = AuditFields::default();
                fields
                    .string("csr", &hash_bytes(&params.csr))
                    .string("entry_id", &params.entry_id)
                    .string("spiffe_id", &spiffe_id);
                if let Some(svid) = svid {
                    fields.bare("expires_at", svid.expires_at);
                }
                audit.item(result.status.as_ref(), &fields);
            }
        }
        Ok(Response::new(BatchNewX509svidResponse { results }))
    }

    async fn new_jwtsvid(
        &self,
        request: Request<NewJwtsvidRequest>,
    ) -> Result<Response<NewJwtsvidResponse>, Status> {
        self.check_jwt_enabled()?;
        let agent = caller_id(&request)?;
        self.config
            .rate_limits
            .admit(Limited::NewJwtSvid, &request, 1)
            .await?;
        let entries = authorized_entries(&self.config.feed, &agent).await?;
        let request = request.into_inner();
        let entry = authorized_entry(&entries, &request.entry_id)?;
        let mut svid = self.mint_jwt_svid(
            Some(&id_to_proto(&entry.spiffe_id)),
            &request.audience,
            entry.jwt_svid_ttl,
        )?;
        svid.hint = entry.hint.clone();
        Ok(Response::new(NewJwtsvidResponse { svid: Some(svid) }))
    }

    async fn new_downstream_x509ca(
        &self,
        _request: Request<NewDownstreamX509caRequest>,
    ) -> Result<Response<NewDownstreamX509caResponse>, Status> {
        Err(Status::unimplemented(
            "method NewDownstreamX509CA not implemented",
        ))
    }
}
