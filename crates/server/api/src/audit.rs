//! The audit log (`audit_log_enabled`): one Info record `API accessed` with `type=audit` per
//! API call, or one per item of a batch call.
//!
//! The authorization layer ([`crate::authz::Authorized`]) opens an [`Audit`] for each call
//! when the log is on and attaches it to the request. A call is recorded when its response
//! head is known: `status=success`, or `status=error` with `status_code` (the gRPC code's
//! name) and `status_message` (denials by the authorization check included). Batch handlers
//! take the call over with [`Audit::batch`] and record each item with [`Audit::item`]
//! instead; the layer then records the call only when it fails as a whole. Handlers add the
//! request's fields to a plain call's record with [`Audit::add`].
//!
//! The caller: `caller_uid`, `caller_gid` and `caller_path` (the peer's executable) on the
//! admin Unix socket; `caller_addr` and, when the peer presented an X509-SVID, `caller_id` on
//! the TCP listener.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use spire_proto::spire::api::types;
use tonic::Code;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};

use crate::authz::Caller;
use crate::convert::id_from_proto;

/// One call's audit context, a request extension while the audit log is on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Audit(Arc<Call>);

#[derive(Debug)]
struct Call {
    service: String,
    method: String,
    request_id: String,
    caller: Who,
    /// Set by a batch handler: its items are recorded, not the call.
    batch: AtomicBool,
    /// Request fields of a plain call, added by its handler.
    fields: Mutex<Fields>,
}

#[derive(Debug)]
enum Who {
    Unix {
        uid: Option<u32>,
        gid: Option<u32>,
        path: Option<String>,
    },
    Tcp {
        addr: Option<String>,
        id: Option<String>,
    },
}

/// The request fields a record can carry, named as SPIRE names them. Unset fields are left
/// out of the record.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    /// `entry_id`.
    pub entry_id: Option<String>,
    /// `spiffe_id`.
    pub spiffe_id: Option<String>,
    /// `parent_id`.
    pub parent_id: Option<String>,
    /// `selectors` (`type:value`, comma-separated).
    pub selectors: Option<String>,
    /// `x509_svid_ttl`.
    pub x509_svid_ttl: Option<i64>,
    /// `jwt_svid_ttl`.
    pub jwt_svid_ttl: Option<i64>,
    /// `federates_with` (comma-separated).
    pub federates_with: Option<String>,
    /// `admin`.
    pub admin: Option<bool>,
    /// `downstream`.
    pub downstream: Option<bool>,
    /// `expires_at`.
    pub expires_at: Option<i64>,
    /// `dns_name` (comma-separated).
    pub dns_name: Option<String>,
    /// `revision_number`.
    pub revision_number: Option<i64>,
    /// `store_svid`.
    pub store_svid: Option<bool>,
    /// `hint`.
    pub hint: Option<String>,
    /// `created_at`.
    pub created_at: Option<i64>,
    /// `csr`: the SHA-256 of a CSR, in hex.
    pub csr: Option<String>,
}

// === impl Audit ===

impl Audit {
    /// Opens the audit context of a call to `path` (`/<service>/<method>`) by `caller`.
    pub(crate) fn open<B>(request: &http::Request<B>, path: &str, caller: &Caller) -> Self {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        let extensions = request.extensions();
        let caller = if let Some(uds) = extensions.get::<UdsConnectInfo>() {
            let cred = uds.peer_cred;
            Who::Unix {
                uid: cred.map(|c| c.uid()),
                gid: cred.map(|c| c.gid()),
                path: cred
                    .and_then(|c| c.pid())
                    .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
                    .map(|p| p.display().to_string()),
            }
        } else {
            let addr = extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
                .or_else(|| {
                    extensions
                        .get::<TcpConnectInfo>()
                        .and_then(TcpConnectInfo::remote_addr)
                })
                .map(|a| a.to_string());
            Who::Tcp {
                addr,
                id: caller.id().map(ToString::to_string),
            }
        };
        Self(Arc::new(Call {
            service: service.to_owned(),
            method: method.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            caller,
            batch: AtomicBool::new(false),
            fields: Mutex::new(Fields::default()),
        }))
    }

    /// The audit context of a request, when the audit log is on.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Self> {
        request.extensions().get::<Self>().cloned()
    }

    /// Takes over a batch call: the handler records each item, the layer only a failure of
    /// the whole call.
    pub fn batch<T>(request: &tonic::Request<T>) -> Option<Self> {
        let audit = Self::of(request)?;
        audit.0.batch.store(true, Ordering::Relaxed);
        Some(audit)
    }

    /// Adds request fields to a plain call's record.
    pub fn add<T>(request: &tonic::Request<T>, add: impl FnOnce(&mut Fields)) {
        if let Some(audit) = request.extensions().get::<Self>() {
            let mut fields = audit
                .0
                .fields
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            add(&mut fields);
        }
    }

    /// Records one batch item with its status (a missing status counts as success).
    pub fn item(&self, status: Option<&types::Status>, fields: &Fields) {
        let (code, message) = match status {
            Some(s) => (Code::from_i32(s.code), s.message.as_str()),
            None => (Code::Ok, ""),
        };
        self.0.record(code, message, fields);
    }

    /// Records the call itself (by the layer), unless a batch handler took it over and it
    /// succeeded.
    pub(crate) fn finish(&self, code: Code, message: &str) {
        if code == Code::Ok && self.0.batch.load(Ordering::Relaxed) {
            return;
        }
        let fields = self
            .0
            .fields
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        self.0.record(code, message, &fields);
    }
}

impl Call {
    fn record(&self, code: Code, message: &str, f: &Fields) {
        let ok = code == Code::Ok;
        let (status_code, status_message) = if ok {
            (None, None)
        } else {
            (Some(code_name(code)), Some(message))
        };
        let (caller_uid, caller_gid, caller_path, caller_addr, caller_id) = match &self.caller {
            Who::Unix { uid, gid, path } => (*uid, *gid, path.as_deref(), None, None),
            Who::Tcp { addr, id } => (None, None, None, addr.as_deref(), id.as_deref()),
        };
        tracing::info!(
            target: "spire_server_api::audit",
            r#type = "audit",
            status = if ok { "success" } else { "error" },
            status_code = status_code,
            status_message = status_message,
            service = self.service.as_str(),
            method = self.method.as_str(),
            request_id = self.request_id.as_str(),
            caller_uid = caller_uid,
            caller_gid = caller_gid,
            caller_path = caller_path,
            caller_addr = caller_addr,
            caller_id = caller_id,
            entry_id = f.entry_id.as_deref(),
            spiffe_id = f.spiffe_id.as_deref(),
            parent_id = f.parent_id.as_deref(),
            selectors = f.selectors.as_deref(),
            x509_svid_ttl = f.x509_svid_ttl,
            jwt_svid_ttl = f.jwt_svid_ttl,
            federates_with = f.federates_with.as_deref(),
            admin = f.admin,
            downstream = f.downstream,
            expires_at = f.expires_at,
            dns_name = f.dns_name.as_deref(),
            revision_number = f.revision_number,
            store_svid = f.store_svid,
            hint = f.hint.as_deref(),
            created_at = f.created_at,
            csr = f.csr.as_deref(),
            "API accessed"
        );
    }
}

// === impl Fields ===

impl Fields {
    /// The fields of an entry in a request, those of `mask` only when there is one (an
    /// update's input mask), as SPIRE records them.
    pub fn of_entry(entry: &types::Entry, mask: Option<&types::EntryMask>) -> Self {
        let on = |pick: fn(&types::EntryMask) -> bool| mask.is_none_or(pick);
        let joined = |items: &[String]| Some(items.join(",")).filter(|s| !s.is_empty());
        let selectors: Vec<String> = entry
            .selectors
            .iter()
            .map(|s| format!("{}:{}", s.r#type, s.value))
            .collect();
        Self {
            entry_id: Some(entry.id.clone()).filter(|id| !id.is_empty()),
            spiffe_id: entry
                .spiffe_id
                .as_ref()
                .filter(|_| on(|m| m.spiffe_id))
                .and_then(|id| id_from_proto(Some(id)).ok())
                .map(|id| id.to_string()),
            parent_id: entry
                .parent_id
                .as_ref()
                .filter(|_| on(|m| m.parent_id))
                .and_then(|id| id_from_proto(Some(id)).ok())
                .map(|id| id.to_string()),
            selectors: joined(&selectors).filter(|_| on(|m| m.selectors)),
            x509_svid_ttl: on(|m| m.x509_svid_ttl).then_some(entry.x509_svid_ttl.into()),
            jwt_svid_ttl: on(|m| m.jwt_svid_ttl).then_some(entry.jwt_svid_ttl.into()),
            federates_with: joined(&entry.federates_with).filter(|_| on(|m| m.federates_with)),
            admin: on(|m| m.admin).then_some(entry.admin),
            downstream: on(|m| m.downstream).then_some(entry.downstream),
            expires_at: on(|m| m.expires_at).then_some(entry.expires_at),
            dns_name: joined(&entry.dns_names).filter(|_| on(|m| m.dns_names)),
            revision_number: on(|m| m.revision_number).then_some(entry.revision_number),
            store_svid: on(|m| m.store_svid).then_some(entry.store_svid),
            hint: on(|m| m.hint).then(|| entry.hint.clone()),
            created_at: on(|m| m.created_at).then_some(entry.created_at),
            csr: None,
        }
    }
}

/// SPIRE's `csr` field: the hex SHA-256 of the bytes, empty for none.
pub fn hash_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A gRPC code as grpc-go's `codes.Code` prints it in a text log line.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_caller_is_its_address_and_spiffe_id() {
        let mut request = http::Request::new(());
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(([10, 0, 0, 7], 51234).into()),
        });
        let id =
            spire_id::SpiffeId::parse("spiffe://example.org/spire/agent/x").expect("an agent ID");
        let audit = Audit::open(
            &request,
            "/spire.api.server.svid.v1.SVID/BatchNewX509SVID",
            &Caller::Agent(id),
        );
        assert_eq!(audit.0.service, "spire.api.server.svid.v1.SVID");
        assert_eq!(audit.0.method, "BatchNewX509SVID");
        match &audit.0.caller {
            Who::Tcp { addr, id } => {
                assert_eq!(addr.as_deref(), Some("10.0.0.7:51234"));
                assert_eq!(id.as_deref(), Some("spiffe://example.org/spire/agent/x"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn code_names_are_grpc_go_names() {
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
    }

    #[test]
    fn an_update_records_only_its_masked_fields() {
        let entry = types::Entry {
            id: "e1".into(),
            hint: "h".into(),
            admin: true,
            dns_names: vec!["a".into(), "b".into()],
            ..types::Entry::default()
        };
        let mask = types::EntryMask {
            hint: true,
            ..types::EntryMask::default()
        };
        let masked = Fields::of_entry(&entry, Some(&mask));
        assert_eq!(masked.entry_id.as_deref(), Some("e1"));
        assert_eq!(masked.hint.as_deref(), Some("h"));
        assert_eq!(masked.admin, None);
        assert_eq!(masked.dns_name, None);
        let all = Fields::of_entry(&entry, None);
        assert_eq!(all.admin, Some(true));
        assert_eq!(all.dns_name.as_deref(), Some("a,b"));
    }
}
