//! Manual control of the authorities (the LocalAuthority API): show the active, prepared and
//! old X.509 CA and JWT key, prepare and activate ahead of the schedule, taint the old one
//! (agents re-mint what it signed) and revoke it (removed from the bundle).
//!
//! The rules and their messages are SPIRE's: only the authority in the second slot can be
//! activated (when prepared) or tainted and revoked (when old); the bundle edits run in one
//! datastore transaction so that servers sharing the database agree.

use std::fmt;

use spire_server_datastore::{BundleEdit, Error as DsError};
use spire_server_plugin::x509 as x509util;
use spire_svid::Bundle;
use spire_time::to_unix_seconds;

use super::{CaManager, JwtSlot, Slot, State};

/// One authority as the API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorityState {
    /// The subject key ID (X.509, lowercase hex) or the key ID (JWT).
    pub authority_id: String,
    /// Unix seconds; 0 where SPIRE leaves it out (taint/revoke of a JWT key, revoke).
    pub expires_at: i64,
    /// The subject key ID of the upstream authority that signed the CA (X.509 only; empty
    /// without an UpstreamAuthority).
    pub upstream_authority_subject_key_id: String,
}

/// The active authority and the one in the other slot, prepared or old.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorityStates {
    /// Signing now.
    pub active: Option<AuthorityState>,
    /// Published, not yet signing.
    pub prepared: Option<AuthorityState>,
    /// Replaced by the last activation; still in the bundle unless revoked.
    pub old: Option<AuthorityState>,
}

/// The gRPC code of a [`Refusal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalCode {
    /// `InvalidArgument`.
    InvalidArgument,
    /// `FailedPrecondition`.
    FailedPrecondition,
    /// `Internal`.
    Internal,
    /// `Unavailable`.
    Unavailable,
    /// `Unimplemented`.
    Unimplemented,
}

/// A LocalAuthority call refused or failed, with SPIRE's code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub code: RefusalCode,
    /// SPIRE's message.
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

fn refuse(code: RefusalCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    refuse(RefusalCode::InvalidArgument, message)
}

fn internal(context: &str, error: impl fmt::Display) -> Refusal {
    refuse(RefusalCode::Internal, format!("{context}: {error}"))
}

/// SPIRE's journal status names, as its messages print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecondSlot {
    Empty,
    Prepared,
    Old,
}

impl SecondSlot {
    fn name(self) -> &'static str {
        match self {
            Self::Empty => "UNKNOWN",
            Self::Prepared => "PREPARED",
            Self::Old => "OLD",
        }
    }
}

const NO_AUTHORITY_ID: &str = "no authority ID provided";
const JWT_DISABLED: &str = "JWT functionality is disabled";
const INITIALIZING: &str = "server is initializing";

fn x509_state(slot: &Slot) -> AuthorityState {
    AuthorityState {
        authority_id: slot.ca.authority_id().to_owned(),
        expires_at: to_unix_seconds(slot.ca.not_after()),
        upstream_authority_subject_key_id: slot.ca.upstream_authority_id().to_owned(),
    }
}

fn jwt_state(slot: &JwtSlot) -> AuthorityState {
    AuthorityState {
        authority_id: slot.key.kid().to_owned(),
        expires_at: to_unix_seconds(slot.key.not_after()),
        upstream_authority_subject_key_id: String::new(),
    }
}

/// The X.509 authority in the second slot and its status.
fn x509_second(state: &State) -> (Option<&Slot>, SecondSlot) {
    match (&state.next, &state.old) {
        (Some(next), _) => (Some(next), SecondSlot::Prepared),
        (None, Some(old)) => (Some(old), SecondSlot::Old),
        (None, None) => (None, SecondSlot::Empty),
    }
}

fn jwt_second(state: &State) -> (Option<&JwtSlot>, SecondSlot) {
    match (&state.jwt_next, &state.jwt_old) {
        (Some(next), _) => (Some(next), SecondSlot::Prepared),
        (None, Some(old)) => (Some(old), SecondSlot::Old),
        (None, None) => (None, SecondSlot::Empty),
    }
}

/// The authority ID of every X.509 authority of the bundle (`None` when it does not parse).
fn x509_authority_id(asn1: &[u8]) -> Result<String, String> {
    let cert = x509util::parse_certificate(asn1).map_err(|e| e.to_string())?;
    x509util::authority_id(&cert).map_err(|e| e.to_string())
}

/// Marks the root whose subject key ID is `id` tainted (SPIRE's datastore rules).
fn taint_x509(id: String) -> BundleEdit {
    Box::new(move |bundle: &mut Bundle| {
        let mut found = false;
        for authority in &mut bundle.x509_authorities {
            let ski = x509_authority_id(&authority.asn1)
                .map_err(|e| DsError::Backend(format!("failed to parse rootCA: {e}").into()))?;
            if ski != id {
                continue;
            }
            if authority.tainted {
                return Err(DsError::InvalidArgument(
                    "root CA is already tainted".into(),
                ));
            }
            authority.tainted = true;
            found = true;
        }
        if !found {
            return Err(DsError::NotFound(
                "no ca found with provided subject key ID".into(),
            ));
        }
        Ok(())
    })
}

/// Removes the tainted root whose subject key ID is `id`.
fn revoke_x509(id: String) -> BundleEdit {
    Box::new(move |bundle: &mut Bundle| {
        let mut found = false;
        let mut kept = Vec::with_capacity(bundle.x509_authorities.len());
        for authority in std::mem::take(&mut bundle.x509_authorities) {
            let ski = x509_authority_id(&authority.asn1)
                .map_err(|e| DsError::Backend(format!("failed to parse root CA: {e}").into()))?;
            if ski == id {
                if !authority.tainted {
                    return Err(DsError::InvalidArgument(
                        "it is not possible to revoke an untainted root CA".into(),
                    ));
                }
                found = true;
                continue;
            }
            kept.push(authority);
        }
        if !found {
            return Err(DsError::NotFound(
                "no root CA found with provided subject key ID".into(),
            ));
        }
        bundle.x509_authorities = kept;
        Ok(())
    })
}

fn taint_jwt(kid: String) -> BundleEdit {
    Box::new(move |bundle: &mut Bundle| {
        let mut found = false;
        for key in bundle
            .jwt_authorities
            .iter_mut()
            .filter(|k| k.key_id == kid)
        {
            if key.tainted {
                return Err(DsError::InvalidArgument("key is already tainted".into()));
            }
            key.tainted = true;
            found = true;
        }
        if !found {
            return Err(DsError::NotFound(
                "no JWT Key found with provided key ID".into(),
            ));
        }
        Ok(())
    })
}

fn revoke_jwt(kid: String) -> BundleEdit {
    Box::new(move |bundle: &mut Bundle| {
        let mut found = false;
        for key in bundle.jwt_authorities.iter().filter(|k| k.key_id == kid) {
            if !key.tainted {
                return Err(DsError::InvalidArgument(
                    "it is not possible to revoke an untainted key".into(),
                ));
            }
            found = true;
        }
        if !found {
            return Err(DsError::NotFound(
                "no JWT Key found with provided key ID".into(),
            ));
        }
        bundle.jwt_authorities.retain(|k| k.key_id != kid);
        Ok(())
    })
}

// === impl CaManager ===

impl CaManager {
    /// Whether an UpstreamAuthority signs the CA.
    pub fn has_upstream_authority(&self) -> bool {
        self.plugins.upstream_authority.is_some()
    }

    async fn edit_own_bundle(&self, edit: BundleEdit) -> Result<(), DsError> {
        self.datastore
            .edit_bundle(&self.config.trust_domain, edit)
            .await?;
        self.bundle_changed();
        Ok(())
    }

    // --- X.509 ---

    /// `GetX509AuthorityState`.
    pub async fn x509_authority_states(&self) -> Result<AuthorityStates, Refusal> {
        let state = self.state.lock().await;
        let Some(current) = &state.current else {
            return Err(refuse(RefusalCode::Unavailable, INITIALIZING));
        };
        let (second, status) = x509_second(&state);
        let second = second.map(x509_state);
        Ok(AuthorityStates {
            active: Some(x509_state(current)),
            prepared: second.clone().filter(|_| status == SecondSlot::Prepared),
            old: second.filter(|_| status == SecondSlot::Old),
        })
    }

    /// `PrepareX509Authority`: a new CA in the other slot, published in the bundle (replacing
    /// an old or prepared one there).
    pub async fn prepare_x509_authority(&self) -> Result<AuthorityState, Refusal> {
        let mut state = self.state.lock().await;
        let Some(slot) = state.current.as_ref().map(|c| c.id.other()) else {
            return Err(refuse(RefusalCode::Unavailable, INITIALIZING));
        };
        self.prepare(&mut state, slot)
            .await
            .map_err(|e| internal("failed to prepare X.509 authority", e))?;
        let next = state.next.as_ref().map(x509_state).unwrap_or_default();
        Ok(next)
    }

    /// `ActivateX509Authority`: the prepared CA named `authority_id` starts signing.
    pub async fn activate_x509_authority(
        &self,
        authority_id: &str,
    ) -> Result<AuthorityState, Refusal> {
        let mut state = self.state.lock().await;
        let (second, status) = x509_second(&state);
        if authority_id.is_empty() {
            return Err(invalid(NO_AUTHORITY_ID));
        }
        if second.is_none_or(|s| s.ca.authority_id() != authority_id) {
            return Err(invalid("unexpected authority ID"));
        }
        if status != SecondSlot::Prepared {
            return Err(refuse(
                RefusalCode::Internal,
                format!(
                    "only Prepared authorities can be activated: unsupported local authority status: {}",
                    status.name()
                ),
            ));
        }
        self.activate(&mut state)
            .await
            .map_err(|e| internal("failed to activate X.509 authority", e))?;
        Ok(state.current.as_ref().map(x509_state).unwrap_or_default())
    }

    /// `TaintX509Authority`: marks the old CA tainted in the bundle, so agents re-mint every
    /// SVID it signed.
    pub async fn taint_x509_authority(
        &self,
        authority_id: &str,
    ) -> Result<AuthorityState, Refusal> {
        if self.has_upstream_authority() {
            return Err(refuse(
                RefusalCode::FailedPrecondition,
                "local authority can't be tainted if there is an upstream authority",
            ));
        }
        let state = self.state.lock().await;
        let second = self.check_old_x509(
            &state,
            authority_id,
            "unable to taint current local authority",
        )?;
        let tainted = x509_state(second);
        self.edit_own_bundle(taint_x509(tainted.authority_id.clone()))
            .await
            .map_err(|e| internal("failed to taint X.509 authority", e))?;
        tracing::info!(local_authority_id = %tainted.authority_id, "X.509 authority tainted successfully");
        Ok(tainted)
    }

    /// The old X.509 authority named `authority_id`, or SPIRE's refusal for tainting.
    fn check_old_x509<'s>(
        &self,
        state: &'s State,
        authority_id: &str,
        current_message: &str,
    ) -> Result<&'s Slot, Refusal> {
        let (second, status) = x509_second(state);
        if authority_id.is_empty() {
            return Err(invalid(NO_AUTHORITY_ID));
        }
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.ca.authority_id() == authority_id)
        {
            return Err(invalid(current_message));
        }
        let Some(second) = second.filter(|s| s.ca.authority_id() == authority_id) else {
            return Err(invalid("unexpected authority ID"));
        };
        if status != SecondSlot::Old {
            return Err(invalid(format!(
                "only Old local authorities can be tainted: unsupported local authority status: {}",
                status.name()
            )));
        }
        Ok(second)
    }

    /// `RevokeX509Authority`: removes the tainted old CA from the bundle.
    pub async fn revoke_x509_authority(
        &self,
        authority_id: &str,
    ) -> Result<AuthorityState, Refusal> {
        if self.has_upstream_authority() {
            return Err(refuse(
                RefusalCode::FailedPrecondition,
                "local authority can't be revoked if there is an upstream authority",
            ));
        }
        let state = self.state.lock().await;
        let (second, status) = x509_second(&state);
        let reason = if authority_id.is_empty() {
            Some(NO_AUTHORITY_ID)
        } else if state
            .current
            .as_ref()
            .is_some_and(|c| c.ca.authority_id() == authority_id)
        {
            Some("unable to use current authority")
        } else if second.is_none_or(|s| s.ca.authority_id() != authority_id)
            || status != SecondSlot::Old
        {
            Some("only Old local authority can be revoked")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(invalid(format!("invalid authority ID: {reason}")));
        }
        self.edit_own_bundle(revoke_x509(authority_id.to_owned()))
            .await
            .map_err(|e| internal("failed to revoke X.509 authority", e))?;
        tracing::info!(local_authority_id = %authority_id, "X.509 authority revoked successfully");
        Ok(AuthorityState {
            authority_id: authority_id.to_owned(),
            ..AuthorityState::default()
        })
    }

    /// Why `subject_key_id` (lowercase) cannot name the upstream authority of the old CA.
    fn check_upstream(&self, state: &State, subject_key_id: &str) -> Option<&'static str> {
        if subject_key_id.is_empty() {
            return Some("no subject key ID provided");
        }
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.ca.upstream_authority_id() == subject_key_id)
        {
            return Some("unable to use upstream authority singing current authority");
        }
        let (second, status) = x509_second(state);
        if second.is_none_or(|s| s.ca.upstream_authority_id() != subject_key_id) {
            return Some("upstream authority didn't sign the old local authority");
        }
        if status == SecondSlot::Prepared {
            return Some("only upstream authorities signing an old authority can be used");
        }
        None
    }

    /// `TaintX509UpstreamAuthority`: marks the upstream root that signed the old CA tainted.
    /// Returns the (lowercased) subject key ID.
    pub async fn taint_x509_upstream_authority(
        &self,
        subject_key_id: &str,
    ) -> Result<String, Refusal> {
        if !self.has_upstream_authority() {
            return Err(refuse(
                RefusalCode::FailedPrecondition,
                "upstream authority is not configured",
            ));
        }
        let skid = subject_key_id.to_lowercase();
        let state = self.state.lock().await;
        if let Some(reason) = self.check_upstream(&state, &skid) {
            return Err(invalid(format!(
                "provided subject key id is not valid: {reason}"
            )));
        }
        self.edit_own_bundle(taint_x509(skid.clone()))
            .await
            .map_err(|e| internal("failed to taint upstream authority", e))?;
        tracing::info!(subject_key_id = %skid, "X.509 upstream authority tainted successfully");
        Ok(skid)
    }

    /// `RevokeX509UpstreamAuthority`: removes the tainted upstream root from the bundle.
    pub async fn revoke_x509_upstream_authority(
        &self,
        subject_key_id: &str,
    ) -> Result<String, Refusal> {
        if !self.has_upstream_authority() {
            return Err(refuse(
                RefusalCode::FailedPrecondition,
                "upstream authority is not configured",
            ));
        }
        let skid = subject_key_id.to_lowercase();
        let state = self.state.lock().await;
        if let Some(reason) = self.check_upstream(&state, &skid) {
            return Err(invalid(format!("invalid subject key ID: {reason}")));
        }
        self.edit_own_bundle(revoke_x509(skid.clone()))
            .await
            .map_err(|e| internal("failed to revoke X.509 upstream authority", e))?;
        tracing::info!(subject_key_id = %skid, "X.509 upstream authority successfully revoked");
        Ok(skid)
    }

    // --- JWT ---

    fn jwt_enabled(&self) -> Result<(), Refusal> {
        if self.config.disable_jwt_svids {
            return Err(refuse(RefusalCode::Unimplemented, JWT_DISABLED));
        }
        Ok(())
    }

    /// `GetJWTAuthorityState`.
    pub async fn jwt_authority_states(&self) -> Result<AuthorityStates, Refusal> {
        self.jwt_enabled()?;
        let state = self.state.lock().await;
        let Some(current) = &state.jwt_current else {
            return Err(refuse(RefusalCode::Unavailable, INITIALIZING));
        };
        let (second, status) = jwt_second(&state);
        let second = second.map(jwt_state);
        Ok(AuthorityStates {
            active: Some(jwt_state(current)),
            prepared: second.clone().filter(|_| status == SecondSlot::Prepared),
            old: second.filter(|_| status == SecondSlot::Old),
        })
    }

    /// `PrepareJWTAuthority`.
    pub async fn prepare_jwt_authority(&self) -> Result<AuthorityState, Refusal> {
        self.jwt_enabled()?;
        let mut state = self.state.lock().await;
        let Some(slot) = state.jwt_current.as_ref().map(|c| c.id.other()) else {
            return Err(refuse(RefusalCode::Unavailable, INITIALIZING));
        };
        self.prepare_jwt(&mut state, slot)
            .await
            .map_err(|e| internal("failed to prepare JWT authority", e))?;
        Ok(state.jwt_next.as_ref().map(jwt_state).unwrap_or_default())
    }

    /// `ActivateJWTAuthority`.
    pub async fn activate_jwt_authority(
        &self,
        authority_id: &str,
    ) -> Result<AuthorityState, Refusal> {
        self.jwt_enabled()?;
        let mut state = self.state.lock().await;
        let (second, status) = jwt_second(&state);
        if authority_id.is_empty() {
            return Err(invalid(NO_AUTHORITY_ID));
        }
        if second.is_none_or(|s| s.key.kid() != authority_id) {
            return Err(invalid("unexpected authority ID"));
        }
        if status != SecondSlot::Prepared {
            return Err(refuse(
                RefusalCode::Internal,
                format!(
                    "only Prepared authorities can be activated: unsupported local authority status: {}",
                    status.name()
                ),
            ));
        }
        self.activate_jwt(&mut state)
            .await
            .map_err(|e| internal("failed to activate JWT authority", e))?;
        Ok(state
            .jwt_current
            .as_ref()
            .map(jwt_state)
            .unwrap_or_default())
    }

    /// `TaintJWTAuthority`: marks the old JWT key tainted; agents drop the tokens it signed.
    pub async fn taint_jwt_authority(&self, authority_id: &str) -> Result<AuthorityState, Refusal> {
        self.jwt_enabled()?;
        let state = self.state.lock().await;
        let (second, status) = jwt_second(&state);
        if authority_id.is_empty() {
            return Err(invalid(NO_AUTHORITY_ID));
        }
        if state
            .jwt_current
            .as_ref()
            .is_some_and(|c| c.key.kid() == authority_id)
        {
            return Err(invalid("unable to taint current local authority"));
        }
        if second.is_none_or(|s| s.key.kid() != authority_id) {
            return Err(invalid("unexpected authority ID"));
        }
        if status != SecondSlot::Old {
            return Err(invalid(format!(
                "only Old local authorities can be tainted: unsupported local authority status: {}",
                status.name()
            )));
        }
        self.edit_own_bundle(taint_jwt(authority_id.to_owned()))
            .await
            .map_err(|e| internal("failed to taint JWT authority", e))?;
        tracing::info!(local_authority_id = %authority_id, "JWT authority tainted successfully");
        Ok(AuthorityState {
            authority_id: authority_id.to_owned(),
            ..AuthorityState::default()
        })
    }

    /// `RevokeJWTAuthority`: removes a tainted JWT key (the old one, or any other the bundle
    /// still holds) from the bundle.
    pub async fn revoke_jwt_authority(
        &self,
        authority_id: &str,
    ) -> Result<AuthorityState, Refusal> {
        self.jwt_enabled()?;
        let state = self.state.lock().await;
        let (second, status) = jwt_second(&state);
        let reason = if authority_id.is_empty() {
            Some(NO_AUTHORITY_ID.to_owned())
        } else if second.is_some_and(|s| s.key.kid() == authority_id) {
            (status == SecondSlot::Prepared).then(|| "unable to use a prepared key".to_owned())
        } else if state
            .jwt_current
            .as_ref()
            .is_some_and(|c| c.key.kid() == authority_id)
        {
            Some("unable to use current authority".to_owned())
        } else {
            match self.datastore.fetch_bundle(&self.config.trust_domain).await {
                Ok(Some(bundle))
                    if bundle
                        .jwt_authorities
                        .iter()
                        .any(|k| k.key_id == authority_id) =>
                {
                    None
                }
                Ok(_) => Some("no JWT authority found with provided authority ID".to_owned()),
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(reason) = reason {
            return Err(invalid(format!("invalid authority ID: {reason}")));
        }
        self.edit_own_bundle(revoke_jwt(authority_id.to_owned()))
            .await
            .map_err(|e| internal("failed to revoke JWT authority", e))?;
        tracing::info!(local_authority_id = %authority_id, "JWT authority revoked successfully");
        Ok(AuthorityState {
            authority_id: authority_id.to_owned(),
            ..AuthorityState::default()
        })
    }
}
