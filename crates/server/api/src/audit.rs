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

use spire_cli::RuntimeFields;
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

/// The request fields of a record, named as SPIRE names them; they are named at run time
/// (`x509_authorities_asn1_sha256.<n>`, …), so they travel as [`RuntimeFields`].
pub type Fields = RuntimeFields;

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
    fn record(&self, code: Code, message: &str, request: &Fields) {
        let ok = code == Code::Ok;
        // SPIRE's `status_code` is a Go `codes.Code`: its name in text lines, its number in
        // JSON lines.
        let mut fields = Fields::default();
        if !ok {
            fields.dual("status_code", code as i32, code_name(code));
        }
        fields.append(request);
        let (caller_uid, caller_gid, caller_path, caller_addr, caller_id) = match &self.caller {
            Who::Unix { uid, gid, path } => (*uid, *gid, path.as_deref(), None, None),
            Who::Tcp { addr, id } => (None, None, None, addr.as_deref(), id.as_deref()),
        };
        tracing::info!(
            target: "spire_server_api::audit",
            r#type = "audit",
            status = if ok { "success" } else { "error" },
            status_message = (!ok).then_some(message),
            service = self.service.as_str(),
            method = self.method.as_str(),
            request_id = self.request_id.as_str(),
            caller_uid = caller_uid,
            caller_gid = caller_gid,
            caller_path = caller_path,
            caller_addr = caller_addr,
            caller_id = caller_id,
            runtime_fields = fields.as_str(),
            "API accessed"
        );
    }
}

// === request fields ===

/// The fields of an entry in a request, those of `mask` only when there is one (an update's
/// input mask), as SPIRE records them.
pub fn entry_fields(entry: &types::Entry, mask: Option<&types::EntryMask>) -> Fields {
    let on = |pick: fn(&types::EntryMask) -> bool| mask.is_none_or(pick);
    let mut fields = Fields::default();
    if !entry.id.is_empty() {
        fields.string("entry_id", &entry.id);
    }
    let id = |id: Option<&types::Spiffeid>| id_from_proto(id).ok().map(|id| id.to_string());
    if on(|m| m.spiffe_id)
        && let Some(id) = id(entry.spiffe_id.as_ref())
    {
        fields.string("spiffe_id", &id);
    }
    if on(|m| m.parent_id)
        && let Some(id) = id(entry.parent_id.as_ref())
    {
        fields.string("parent_id", &id);
    }
    if on(|m| m.selectors) && !entry.selectors.is_empty() {
        let selectors: Vec<String> = entry
            .selectors
            .iter()
            .map(|s| format!("{}:{}", s.r#type, s.value))
            .collect();
        fields.string("selectors", &selectors.join(","));
    }
    if on(|m| m.x509_svid_ttl) {
        fields.bare("x509_svid_ttl", entry.x509_svid_ttl);
    }
    if on(|m| m.jwt_svid_ttl) {
        fields.bare("jwt_svid_ttl", entry.jwt_svid_ttl);
    }
    if on(|m| m.federates_with) && !entry.federates_with.is_empty() {
        fields.string("federates_with", &entry.federates_with.join(","));
    }
    if on(|m| m.admin) {
        fields.bare("admin", entry.admin);
    }
    if on(|m| m.downstream) {
        fields.bare("downstream", entry.downstream);
    }
    if on(|m| m.expires_at) {
        fields.bare("expires_at", entry.expires_at);
    }
    if on(|m| m.dns_names) && !entry.dns_names.is_empty() {
        fields.string("dns_name", &entry.dns_names.join(","));
    }
    if on(|m| m.revision_number) {
        fields.bare("revision_number", entry.revision_number);
    }
    if on(|m| m.store_svid) {
        fields.bare("store_svid", entry.store_svid);
    }
    if on(|m| m.hint) {
        fields.string("hint", &entry.hint);
    }
    if on(|m| m.created_at) {
        fields.bare("created_at", entry.created_at);
    }
    fields
}

/// A bundle's fields (those of `mask` only, when there is one), each authority numbered:
/// `trust_domain_id`, `refresh_hint`, `sequence_number`, `jwt_authority_expires_at.<n>`,
/// `jwt_authority_key_id.<n>`, `jwt_authority_public_key_sha256.<n>`,
/// `x509_authorities_asn1_sha256.<n>`, each name after `prefix`.
pub fn bundle_fields(
    bundle: &types::Bundle,
    mask: Option<&types::BundleMask>,
    prefix: &str,
) -> Fields {
    let on = |pick: fn(&types::BundleMask) -> bool| mask.is_none_or(pick);
    let mut fields = Fields::default();
    fields.string(&format!("{prefix}trust_domain_id"), &bundle.trust_domain);
    if on(|m| m.refresh_hint) {
        fields.bare(&format!("{prefix}refresh_hint"), bundle.refresh_hint);
    }
    if on(|m| m.sequence_number) {
        fields.bare(&format!("{prefix}sequence_number"), bundle.sequence_number);
    }
    if on(|m| m.jwt_authorities) {
        fields.append(&jwt_authority_fields(&bundle.jwt_authorities, prefix));
    }
    if on(|m| m.x509_authorities) {
        fields.append(&x509_authority_fields(&bundle.x509_authorities, prefix));
    }
    fields
}

/// `jwt_authority_expires_at.<n>`, `jwt_authority_key_id.<n>` and
/// `jwt_authority_public_key_sha256.<n>` for each key, each name after `prefix`.
pub fn jwt_authority_fields(keys: &[types::JwtKey], prefix: &str) -> Fields {
    let mut fields = Fields::default();
    for (i, key) in keys.iter().enumerate() {
        fields
            .bare(
                &format!("{prefix}jwt_authority_expires_at.{i}"),
                key.expires_at,
            )
            .string(&format!("{prefix}jwt_authority_key_id.{i}"), &key.key_id)
            .string(
                &format!("{prefix}jwt_authority_public_key_sha256.{i}"),
                &hash_bytes(&key.public_key),
            );
    }
    fields
}

/// `x509_authorities_asn1_sha256.<n>` for each certificate, each name after `prefix`.
pub fn x509_authority_fields(certs: &[types::X509Certificate], prefix: &str) -> Fields {
    let mut fields = Fields::default();
    for (i, cert) in certs.iter().enumerate() {
        fields.string(
            &format!("{prefix}x509_authorities_asn1_sha256.{i}"),
            &hash_bytes(&cert.asn1),
        );
    }
    fields
}

/// A federation relationship's fields (those of `mask` only, when there is one):
/// `trust_domain_id`, `bundle_endpoint_url`, `bundle_endpoint_profile` (with
/// `endpoint_spiffe_id` for `https_spiffe`) and the trust domain bundle's fields, `bundle_`
/// before each name.
pub fn relationship_fields(
    relationship: &types::FederationRelationship,
    mask: Option<&types::FederationRelationshipMask>,
) -> Fields {
    use types::federation_relationship::BundleEndpointProfile;
    let on = |pick: fn(&types::FederationRelationshipMask) -> bool| mask.is_none_or(pick);
    let mut fields = Fields::default();
    if !relationship.trust_domain.is_empty() {
        fields.string("trust_domain_id", &relationship.trust_domain);
    }
    if on(|m| m.bundle_endpoint_url) {
        fields.string("bundle_endpoint_url", &relationship.bundle_endpoint_url);
    }
    if on(|m| m.bundle_endpoint_profile) {
        match &relationship.bundle_endpoint_profile {
            Some(BundleEndpointProfile::HttpsWeb(_)) => {
                fields.string("bundle_endpoint_profile", "https_web");
            }
            Some(BundleEndpointProfile::HttpsSpiffe(profile)) => {
                fields
                    .string("bundle_endpoint_profile", "https_spiffe")
                    .string("endpoint_spiffe_id", &profile.endpoint_spiffe_id);
            }
            None => {}
        }
    }
    if on(|m| m.trust_domain_bundle)
        && let Some(bundle) = &relationship.trust_domain_bundle
    {
        fields.append(&bundle_fields(bundle, None, "bundle_"));
    }
    fields
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
    spire_id::go_fmt::grpc_code_name(code as i32).unwrap_or("Unknown")
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
        let masked = entry_fields(&entry, Some(&mask));
        assert_eq!(masked.get("entry_id"), Some("e1"));
        assert_eq!(masked.get("hint"), Some("h"));
        assert_eq!(masked.get("admin"), None);
        assert_eq!(masked.get("dns_name"), None);
        let all = entry_fields(&entry, None);
        assert_eq!(all.get("admin"), Some("true"));
        assert_eq!(all.get("dns_name"), Some("a,b"));
    }

    #[test]
    fn bundle_authorities_are_numbered_and_a_relationship_prefixes_its_bundle() {
        let bundle = types::Bundle {
            trust_domain: "other.org".into(),
            refresh_hint: 300,
            x509_authorities: vec![
                types::X509Certificate {
                    asn1: b"one".to_vec(),
                    ..Default::default()
                },
                types::X509Certificate {
                    asn1: b"two".to_vec(),
                    ..Default::default()
                },
            ],
            jwt_authorities: vec![types::JwtKey {
                key_id: "kid-1".into(),
                public_key: b"key".to_vec(),
                expires_at: 1_700_000_000,
                ..Default::default()
            }],
            ..Default::default()
        };
        let fields = bundle_fields(&bundle, None, "");
        assert_eq!(fields.get("trust_domain_id"), Some("other.org"));
        assert_eq!(fields.get("refresh_hint"), Some("300"));
        assert_eq!(
            fields.get("x509_authorities_asn1_sha256.1"),
            Some(hash_bytes(b"two").as_str())
        );
        assert_eq!(fields.get("jwt_authority_key_id.0"), Some("kid-1"));
        assert_eq!(fields.get("jwt_authority_expires_at.0"), Some("1700000000"));
        let only_hint = types::BundleMask {
            refresh_hint: true,
            ..Default::default()
        };
        let masked = bundle_fields(&bundle, Some(&only_hint), "");
        assert_eq!(masked.get("x509_authorities_asn1_sha256.0"), None);

        let relationship = types::FederationRelationship {
            trust_domain: "other.org".into(),
            bundle_endpoint_url: "https://other.org:8443".into(),
            bundle_endpoint_profile: Some(
                types::federation_relationship::BundleEndpointProfile::HttpsSpiffe(
                    types::HttpsspiffeProfile {
                        endpoint_spiffe_id: "spiffe://other.org/spire/server".into(),
                    },
                ),
            ),
            trust_domain_bundle: Some(bundle),
        };
        let fields = relationship_fields(&relationship, None);
        assert_eq!(fields.get("bundle_endpoint_profile"), Some("https_spiffe"));
        assert_eq!(
            fields.get("endpoint_spiffe_id"),
            Some("spiffe://other.org/spire/server")
        );
        assert_eq!(fields.get("bundle_trust_domain_id"), Some("other.org"));
        assert_eq!(fields.get("bundle_jwt_authority_key_id.0"), Some("kid-1"));
    }
}
