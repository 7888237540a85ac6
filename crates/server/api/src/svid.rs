//! `spire.api.server.svid.v1.SVID`: MintX509SVID for admins; the agent and downstream methods
//! are `Unimplemented` here.

use std::time::Duration;

use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::server::svid::v1::{
    BatchNewX509svidRequest, BatchNewX509svidResponse, MintJwtsvidRequest, MintJwtsvidResponse,
    MintX509svidRequest, MintX509svidResponse, NewDownstreamX509caRequest,
    NewDownstreamX509caResponse, NewJwtsvidRequest, NewJwtsvidResponse, svid_server::Svid,
};
use spire_proto::spire::api::types;
use spire_server_ca::{Ca, X509SvidParams};
use tonic::{Code, Request, Response, Status};
use x509_parser::prelude::{
    FromDer, GeneralName, ParsedExtension, X509Certificate, X509CertificationRequest,
};

use crate::ApiContext;
use crate::convert::{id_to_proto, verify_workload_id};
use crate::dns::{check_wildcard_overlap, validate_label};
use crate::status::make_err;

/// What the SVID service needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server's trust domain: minted IDs must be its workloads.
    pub trust_domain: TrustDomain,
    /// The minting handle.
    pub ca: Ca,
    /// The TTL of a mint request that gives none.
    pub default_x509_svid_ttl: Duration,
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
        }
    }
}

// === impl SvidService ===

impl SvidService {
    /// A service over `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }
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
        let expires_at = chain
            .first()
            .and_then(|leaf| X509Certificate::from_der(leaf).ok())
            .map(|(_, cert)| cert.validity().not_after.timestamp())
            .ok_or_else(|| make_err(Code::Internal, "failed to sign X509-SVID", None))?;
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
        _request: Request<MintJwtsvidRequest>,
    ) -> Result<Response<MintJwtsvidResponse>, Status> {
        Err(Status::unimplemented("method MintJWTSVID not implemented"))
    }

    async fn batch_new_x509svid(
        &self,
        _request: Request<BatchNewX509svidRequest>,
    ) -> Result<Response<BatchNewX509svidResponse>, Status> {
        Err(Status::unimplemented(
            "method BatchNewX509SVID not implemented",
        ))
    }

    async fn new_jwtsvid(
        &self,
        _request: Request<NewJwtsvidRequest>,
    ) -> Result<Response<NewJwtsvidResponse>, Status> {
        Err(Status::unimplemented("method NewJWTSVID not implemented"))
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
