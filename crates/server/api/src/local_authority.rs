//! `spire.api.server.localauthority.v1.LocalAuthority`: manual control of the X.509 CA and
//! JWT key slots over the [`CaManager`] (which holds SPIRE's rules and messages).

use std::sync::Arc;

use spire_proto::spire::api::server::localauthority::v1::{
    self as pb, local_authority_server::LocalAuthority,
};
use spire_server_ca::{AuthorityState, AuthorityStates, CaManager, Refusal, RefusalCode};
use tonic::{Code, Request, Response, Status};

use crate::status::make_err;

/// The LocalAuthority service.
#[derive(Clone, Debug)]
pub struct LocalAuthorityService {
    ca: Arc<CaManager>,
}

// === impl LocalAuthorityService ===

impl LocalAuthorityService {
    /// A service over the server's CA manager.
    pub fn new(ca: Arc<CaManager>) -> Self {
        Self { ca }
    }
}

fn status(refusal: &Refusal) -> Status {
    let code = match refusal.code {
        RefusalCode::InvalidArgument => Code::InvalidArgument,
        RefusalCode::FailedPrecondition => Code::FailedPrecondition,
        RefusalCode::Unavailable => Code::Unavailable,
        RefusalCode::Unimplemented => Code::Unimplemented,
        _ => Code::Internal,
    };
    make_err(code, &refusal.message, None)
}

fn state(s: AuthorityState) -> pb::AuthorityState {
    pb::AuthorityState {
        authority_id: s.authority_id,
        expires_at: s.expires_at,
        upstream_authority_subject_key_id: s.upstream_authority_subject_key_id,
    }
}

fn states(
    s: AuthorityStates,
) -> (
    Option<pb::AuthorityState>,
    Option<pb::AuthorityState>,
    Option<pb::AuthorityState>,
) {
    (s.active.map(state), s.prepared.map(state), s.old.map(state))
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl LocalAuthority for LocalAuthorityService {
    async fn get_jwt_authority_state(
        &self,
        _: Request<pb::GetJwtAuthorityStateRequest>,
    ) -> Answer<pb::GetJwtAuthorityStateResponse> {
        let (active, prepared, old) = states(
            self.ca
                .jwt_authority_states()
                .await
                .map_err(|r| status(&r))?,
        );
        Ok(Response::new(pb::GetJwtAuthorityStateResponse {
            active,
            prepared,
            old,
        }))
    }

    async fn prepare_jwt_authority(
        &self,
        _: Request<pb::PrepareJwtAuthorityRequest>,
    ) -> Answer<pb::PrepareJwtAuthorityResponse> {
        let prepared = self
            .ca
            .prepare_jwt_authority()
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::PrepareJwtAuthorityResponse {
            prepared_authority: Some(state(prepared)),
        }))
    }

    async fn activate_jwt_authority(
        &self,
        request: Request<pb::ActivateJwtAuthorityRequest>,
    ) -> Answer<pb::ActivateJwtAuthorityResponse> {
        let id = request.into_inner().authority_id;
        let activated = self
            .ca
            .activate_jwt_authority(&id)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::ActivateJwtAuthorityResponse {
            activated_authority: Some(state(activated)),
        }))
    }

    async fn taint_jwt_authority(
        &self,
        request: Request<pb::TaintJwtAuthorityRequest>,
    ) -> Answer<pb::TaintJwtAuthorityResponse> {
        let id = request.into_inner().authority_id;
        let tainted = self
            .ca
            .taint_jwt_authority(&id)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::TaintJwtAuthorityResponse {
            tainted_authority: Some(state(tainted)),
        }))
    }

    async fn revoke_jwt_authority(
        &self,
        request: Request<pb::RevokeJwtAuthorityRequest>,
    ) -> Answer<pb::RevokeJwtAuthorityResponse> {
        let id = request.into_inner().authority_id;
        let revoked = self
            .ca
            .revoke_jwt_authority(&id)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::RevokeJwtAuthorityResponse {
            revoked_authority: Some(state(revoked)),
        }))
    }

    async fn get_x509_authority_state(
        &self,
        _: Request<pb::GetX509AuthorityStateRequest>,
    ) -> Answer<pb::GetX509AuthorityStateResponse> {
        let (active, prepared, old) = states(
            self.ca
                .x509_authority_states()
                .await
                .map_err(|r| status(&r))?,
        );
        Ok(Response::new(pb::GetX509AuthorityStateResponse {
            active,
            prepared,
            old,
        }))
    }

    async fn prepare_x509_authority(
        &self,
        _: Request<pb::PrepareX509AuthorityRequest>,
    ) -> Answer<pb::PrepareX509AuthorityResponse> {
        let prepared = self
            .ca
            .prepare_x509_authority()
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::PrepareX509AuthorityResponse {
            prepared_authority: Some(state(prepared)),
        }))
    }

    async fn activate_x509_authority(
        &self,
        request: Request<pb::ActivateX509AuthorityRequest>,
    ) -> Answer<pb::ActivateX509AuthorityResponse> {
        let id = request.into_inner().authority_id;
        let activated = self
            .ca
            .activate_x509_authority(&id)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::ActivateX509AuthorityResponse {
            activated_authority: Some(state(activated)),
        }))
    }

    async fn taint_x509_authority(
        &self,
        request: Request<pb::TaintX509AuthorityRequest>,
    ) -> Answer<pb::TaintX509AuthorityResponse> {
        let id = request.into_inner().authority_id;
        let tainted = self
            .ca
            .taint_x509_authority(&id)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::TaintX509AuthorityResponse {
            tainted_authority: Some(state(tainted)),
        }))
    }

    async fn taint_x509_upstream_authority(
        &self,
        request: Request<pb::TaintX509UpstreamAuthorityRequest>,
    ) -> Answer<pb::TaintX509UpstreamAuthorityResponse> {
        let skid = request.into_inner().subject_key_id;
        let skid = self
            .ca
            .taint_x509_upstream_authority(&skid)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::TaintX509UpstreamAuthorityResponse {
            upstream_authority_subject_key_id: skid,
        }))
    }

    async fn revoke_x509_authority(
        &self,
        request: Request<pb::RevokeX509AuthorityRequest>,
    ) -> Answer<pb::RevokeX509AuthorityResponse> {
        let id = request.into_inner().authority_id;
        let revoked = self
            .ca
            .revoke_x509_authority(&id)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::RevokeX509AuthorityResponse {
            revoked_authority: Some(state(revoked)),
        }))
    }

    async fn revoke_x509_upstream_authority(
        &self,
        request: Request<pb::RevokeX509UpstreamAuthorityRequest>,
    ) -> Answer<pb::RevokeX509UpstreamAuthorityResponse> {
        let skid = request.into_inner().subject_key_id;
        let skid = self
            .ca
            .revoke_x509_upstream_authority(&skid)
            .await
            .map_err(|r| status(&r))?;
        Ok(Response::new(pb::RevokeX509UpstreamAuthorityResponse {
            upstream_authority_subject_key_id: skid,
        }))
    }
}
