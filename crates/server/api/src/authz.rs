//! Authorization: one tower service wrapped around every routed gRPC service.
//!
//! Each request's caller is classified (a [`Caller`] request extension if the transport or a
//! test put one there; otherwise `UdsConnectInfo` means local, a TLS peer certificate means an
//! X509-SVID to classify, and nothing means anonymous) and checked against the method table of
//! [`policy`]. Denials are `PermissionDenied "authorization denied for method <path>"`, SPIRE's
//! message; methods outside the table are `Unimplemented` and never reach a handler. Allowed
//! requests carry an [`AuthorizedCaller`] extension to the handler.

mod policy;
pub(crate) mod revoked;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use spire_id::SpiffeId;
use spire_proto::spire::api::types::PermissionDeniedDetails;
use spire_proto::spire::api::types::permission_denied_details::Reason;
use spire_server_datastore::{AttestedNode, DataStore, ListEntries};
use spire_time::SharedClock;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};
use tonic::{Code, Status};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

pub use policy::{Allowed, policy};

use crate::ApiContext;
use crate::audit::Audit;
use crate::convert::is_agent_path;
use crate::status::{make_err, permission_denied, permission_denied_details};

/// Who is calling, as far as the transport knows. Transports and tests may insert one as a
/// request extension; otherwise it is derived from tonic's connection info.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// A process on the admin Unix socket.
    Local,
    /// A TLS peer without a client certificate.
    Anonymous,
    /// A TLS peer with a (transport-verified) X509-SVID, classified per method.
    X509Svid(PeerSvid),
    /// Already known to be an admin workload.
    Admin(SpiffeId),
    /// Already known to be an attested agent with a current SVID.
    Agent(SpiffeId),
    /// Already known to be a downstream server.
    Downstream(SpiffeId),
}

/// The facts of a peer's leaf X509-SVID that authorization needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSvid {
    /// The URI SAN.
    pub id: SpiffeId,
    /// The serial number, in decimal (how nodes store it).
    pub serial_number: String,
    /// `notAfter`, unix seconds.
    pub expires_at: i64,
}

/// A caller class of compat §1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallerClass {
    /// Admin Unix socket.
    Local,
    /// Admin workload.
    Admin,
    /// Attested agent.
    Agent,
    /// Downstream server.
    Downstream,
    /// Anyone (the method allows unauthenticated callers).
    Any,
}

/// The caller as authorized, attached to every request that reaches a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedCaller {
    /// The class the request was allowed as.
    pub class: CallerClass,
    /// The caller's SPIFFE ID when it presented one.
    pub id: Option<SpiffeId>,
}

/// Wraps one routed gRPC service with the authorization check (keeps its service name).
#[derive(Clone, Debug)]
pub struct Authorized<S> {
    inner: S,
    authorizer: Authorizer,
}

/// The shared state of the check.
#[derive(Clone, Debug)]
pub(crate) struct Authorizer {
    datastore: Arc<dyn DataStore>,
    clock: SharedClock,
    trust_domain: spire_id::TrustDomain,
    admin_ids: Arc<[SpiffeId]>,
    audit_log: bool,
}

// === impl PeerSvid ===

impl PeerSvid {
    /// Reads the SPIFFE ID, serial and expiry of a DER leaf; `None` if it is not an X509-SVID
    /// (unparseable, or not exactly one `spiffe://` URI SAN).
    pub fn from_der(leaf: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(leaf).ok()?;
        let mut uris = cert
            .extensions()
            .iter()
            .filter_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.iter()),
                _ => None,
            });
        let mut ids = uris.by_ref().flatten().filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
        let id = ids.next()?;
        if ids.next().is_some() {
            return None;
        }
        Some(Self {
            id: SpiffeId::parse(id).ok()?,
            serial_number: cert.serial.to_str_radix(10),
            expires_at: cert.validity().not_after.timestamp(),
        })
    }
}

// === impl Caller ===

impl Caller {
    /// The caller of a request: its [`Caller`] extension, else what tonic's connection info
    /// says (Unix socket → local; TLS with a client certificate → its X509-SVID).
    pub fn of<B>(request: &http::Request<B>) -> Self {
        let extensions = request.extensions();
        if let Some(caller) = extensions.get::<Caller>() {
            return caller.clone();
        }
        if extensions.get::<UdsConnectInfo>().is_some() {
            return Self::Local;
        }
        let leaf = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| certs.first().map(|c| c.to_vec()));
        match leaf.as_deref().and_then(PeerSvid::from_der) {
            Some(svid) => Self::X509Svid(svid),
            None => Self::Anonymous,
        }
    }

    pub(crate) fn id(&self) -> Option<&SpiffeId> {
        match self {
            Self::Local | Self::Anonymous => None,
            Self::X509Svid(svid) => Some(&svid.id),
            Self::Admin(id) | Self::Agent(id) | Self::Downstream(id) => Some(id),
        }
    }
}

// === impl Authorizer ===

impl Authorizer {
    pub(crate) fn new(ctx: &ApiContext) -> Self {
        Self {
            datastore: ctx.datastore.clone(),
            clock: ctx.clock.clone(),
            trust_domain: ctx.trust_domain.clone(),
            admin_ids: ctx.admin_ids.clone().into(),
            audit_log: ctx.audit_log,
        }
    }

    /// Decides one call, checking the cheapest classes first (as SPIRE does).
    pub(crate) async fn authorize(
        &self,
        method: &str,
        caller: &Caller,
    ) -> Result<AuthorizedCaller, Status> {
        let Some(allowed) = policy::allowed(method) else {
            return Err(Status::unimplemented(format!("unknown method {method}")));
        };
        let id = caller.id().cloned();
        let class = match caller {
            _ if allowed.any => Some(CallerClass::Any),
            Caller::Local if allowed.local => Some(CallerClass::Local),
            Caller::Admin(_) if allowed.admin => Some(CallerClass::Admin),
            Caller::Agent(_) if allowed.agent => Some(CallerClass::Agent),
            Caller::Downstream(_) if allowed.downstream => Some(CallerClass::Downstream),
            Caller::X509Svid(svid) => self.classify(svid, allowed).await?,
            _ => None,
        };
        match class {
            Some(class) => Ok(AuthorizedCaller { class, id }),
            None => Err(make_err(
                Code::PermissionDenied,
                &format!("authorization denied for method {method}"),
                None,
            )),
        }
    }

    async fn classify(
        &self,
        svid: &PeerSvid,
        allowed: Allowed,
    ) -> Result<Option<CallerClass>, Status> {
        if allowed.admin && self.admin_ids.contains(&svid.id) {
            return Ok(Some(CallerClass::Admin));
        }
        if allowed.admin || allowed.downstream {
            let request = ListEntries {
                by_spiffe_id: Some(svid.id.clone()),
                ..ListEntries::default()
            };
            let entries = self
                .datastore
                .list_registration_entries(&request)
                .await
                .map_err(|e| make_err(Code::Internal, "failed to fetch caller entries", Some(&e)))?
                .items;
            if allowed.admin && entries.iter().any(|e| e.admin) {
                return Ok(Some(CallerClass::Admin));
            }
            if allowed.downstream && entries.iter().any(|e| e.downstream) {
                return Ok(Some(CallerClass::Downstream));
            }
        }
        // An agent ID on a method open to agents: a failed check is reported with the
        // details agents act on (re-attest, or shut down when banned).
        if allowed.agent
            && svid.id.is_member_of(&self.trust_domain)
            && is_agent_path(svid.id.path())
        {
            self.check_agent(svid).await?;
            return Ok(Some(CallerClass::Agent));
        }
        Ok(None)
    }

    /// SPIRE's agent check: an attested, unbanned node whose current SVID this is, not
    /// expired. Presenting the SVID of the last renewal makes it current.
    async fn check_agent(&self, svid: &PeerSvid) -> Result<(), Status> {
        if self.clock.unix_seconds() > svid.expires_at {
            return Err(permission_denied(
                Reason::AgentExpired,
                &format!("agent {:?} SVID is expired", svid.id.to_string()),
            ));
        }
        let node = self.attested_node(&svid.id).await?;
        if !judge(&node, svid)? {
            return Ok(());
        }
        // The SVID of the last renewal becomes the current one, in one conditional write: a
        // ban or an eviction that lands after the read above is never undone.
        let promoted = self
            .datastore
            .promote_node_serial(&svid.id, &node.cert_serial_number, &svid.serial_number)
            .await
            .map_err(|e| {
                make_err(
                    Code::Internal,
                    "failed to activate the new agent SVID",
                    Some(&e),
                )
            })?;
        if promoted {
            return Ok(());
        }
        // The node changed since it was read (banned, evicted, renewed, or promoted by a
        // concurrent call): judge it as it is now.
        let node = self.attested_node(&svid.id).await?;
        if judge(&node, svid)? {
            return Err(not_active(&node, svid));
        }
        Ok(())
    }

    /// The stored node of `id`; `AGENT_NOT_ATTESTED` when there is none.
    async fn attested_node(&self, id: &SpiffeId) -> Result<AttestedNode, Status> {
        self.datastore
            .fetch_attested_node(id)
            .await
            .map_err(|e| {
                make_err(
                    Code::Internal,
                    "unable to look up agent information",
                    Some(&e),
                )
            })?
            .ok_or_else(|| revoked::denied(id, Reason::AgentNotAttested))
    }
}

/// SPIRE's serial check of `svid` against its stored node: `Ok(false)` for the node's
/// current SVID, `Ok(true)` for the SVID of its last renewal (to be made current), a denial
/// otherwise (banned, or another serial).
fn judge(node: &AttestedNode, svid: &PeerSvid) -> Result<bool, Status> {
    if node.cert_serial_number.is_empty() {
        return Err(revoked::denied(&svid.id, Reason::AgentBanned));
    }
    if node.cert_serial_number == svid.serial_number {
        return Ok(false);
    }
    if !node.new_cert_serial_number.is_empty() && node.new_cert_serial_number == svid.serial_number
    {
        return Ok(true);
    }
    Err(not_active(node, svid))
}

fn not_active(node: &AttestedNode, svid: &PeerSvid) -> Status {
    permission_denied(
        Reason::AgentNotActive,
        &format!(
            "agent {:?} expected to have serial number {:?}; has {:?}",
            svid.id.to_string(),
            node.cert_serial_number,
            svid.serial_number
        ),
    )
}

/// The `PermissionDeniedDetails` carried by an agent-authorization denial (the
/// `grpc-status-details-bin` of SPIRE's statuses), if any.
pub fn denied_details(status: &Status) -> Option<PermissionDeniedDetails> {
    permission_denied_details(status)
}

/// The status a response head carries: a failure answered before any message puts
/// `grpc-status` in the headers; otherwise the call has succeeded so far.
fn response_status(headers: &http::HeaderMap) -> (Code, String) {
    let Some(code) = headers.get("grpc-status") else {
        return (Code::Ok, String::new());
    };
    let message = headers
        .get("grpc-message")
        // `grpc-message` is percent-encoded UTF-8.
        .map(|m| {
            percent_encoding::percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    (Code::from_bytes(code.as_bytes()), message)
}

/// tonic refuses a request over the receive limit with `OutOfRange "Error, decoded message
/// length too large: found N bytes, the limit is: M bytes"`; SPIRE (grpc-go) answers
/// `ResourceExhausted "grpc: received message larger than max (N vs. M)"`. Rewrites the
/// former into the latter; any other response is returned as is.
fn oversized_as_grpc_go(response: http::Response<Body>) -> http::Response<Body> {
    const TONIC: &str = "Error, decoded message length too large: found ";
    let (code, message) = response_status(response.headers());
    let sizes = message
        .strip_prefix(TONIC)
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .and_then(|rest| rest.split_once(" bytes, the limit is: "));
    match (code, sizes) {
        (Code::OutOfRange, Some((found, limit))) => {
            let status = Status::resource_exhausted(format!(
                "grpc: received message larger than max ({found} vs. {limit})"
            ));
            let (parts, ()) = status.into_http::<()>().into_parts();
            http::Response::from_parts(parts, Body::default())
        }
        _ => response,
    }
}

// === impl Authorized ===

impl<S> Authorized<S> {
    pub(crate) fn new(inner: S, authorizer: Authorizer) -> Self {
        Self { inner, authorizer }
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Authorized<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The ready clone stays here; the one that was polled ready serves this call.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let authorizer = self.authorizer.clone();
        Box::pin(async move {
            let method = request.uri().path().to_owned();
            let caller = Caller::of(&request);
            let audit = authorizer
                .audit_log
                .then(|| Audit::open(&request, &method, &caller));
            match authorizer.authorize(&method, &caller).await {
                Ok(authorized) => {
                    request.extensions_mut().insert(authorized);
                    let Some(audit) = audit else {
                        return inner.call(request).await.map(oversized_as_grpc_go);
                    };
                    request.extensions_mut().insert(audit.clone());
                    let response = oversized_as_grpc_go(inner.call(request).await?);
                    let (code, message) = response_status(response.headers());
                    audit.finish(code, &message);
                    Ok(response)
                }
                Err(status) => {
                    if let Some(audit) = audit {
                        audit.finish(status.code(), status.message());
                    }
                    let (parts, ()) = status.into_http::<()>().into_parts();
                    Ok(http::Response::from_parts(parts, Body::default()))
                }
            }
        })
    }
}
