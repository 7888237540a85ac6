//! Which caller classes may call which method: SPIRE's default policy
//! (`pkg/server/authpolicy/policy_data.json`, compat §1.1), for every method our protos define.

/// The caller classes a method admits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Anyone, authenticated or not.
    pub any: bool,
    /// Callers on the admin Unix socket.
    pub local: bool,
    /// Admin workloads (`admin_ids` or an entry with `admin = true`).
    pub admin: bool,
    /// Attested agents presenting their current SVID.
    pub agent: bool,
    /// Downstream servers (an entry with `downstream = true`).
    pub downstream: bool,
}

const ANY: Allowed = Allowed {
    any: true,
    local: false,
    admin: false,
    agent: false,
    downstream: false,
};
const ADMIN_LOCAL: Allowed = Allowed {
    any: false,
    local: true,
    admin: true,
    agent: false,
    downstream: false,
};
const ADMIN_LOCAL_AGENT: Allowed = Allowed {
    agent: true,
    ..ADMIN_LOCAL
};
const LOCAL: Allowed = Allowed {
    any: false,
    local: true,
    admin: false,
    agent: false,
    downstream: false,
};
const AGENT: Allowed = Allowed {
    any: false,
    local: false,
    admin: false,
    agent: true,
    downstream: false,
};
const DOWNSTREAM: Allowed = Allowed {
    any: false,
    local: false,
    admin: false,
    agent: false,
    downstream: true,
};

const AGENT_SVC: &str = "/spire.api.server.agent.v1.Agent/";
const BUNDLE_SVC: &str = "/spire.api.server.bundle.v1.Bundle/";
const DEBUG_SVC: &str = "/spire.api.server.debug.v1.Debug/";
const ENTRY_SVC: &str = "/spire.api.server.entry.v1.Entry/";
const HEALTH_SVC: &str = "/grpc.health.v1.Health/";
const LOCALAUTHORITY_SVC: &str = "/spire.api.server.localauthority.v1.LocalAuthority/";
const LOGGER_SVC: &str = "/spire.api.server.logger.v1.Logger/";
const PUSH_SVC: &str = "/spirers.server.push.v1.Push/";
const SVID_SVC: &str = "/spire.api.server.svid.v1.SVID/";
const TRUSTDOMAIN_SVC: &str = "/spire.api.server.trustdomain.v1.TrustDomain/";

/// `(service prefix, method, allowed)` for every method served; anything else is
/// `Unimplemented` before it reaches a handler.
pub(crate) const POLICY: &[(&str, &str, Allowed)] = &[
    (AGENT_SVC, "CountAgents", ADMIN_LOCAL),
    (AGENT_SVC, "ListAgents", ADMIN_LOCAL),
    (AGENT_SVC, "GetAgent", ADMIN_LOCAL),
    (AGENT_SVC, "DeleteAgent", ADMIN_LOCAL),
    (AGENT_SVC, "BanAgent", ADMIN_LOCAL),
    (AGENT_SVC, "AttestAgent", ANY),
    (AGENT_SVC, "RenewAgent", AGENT),
    (AGENT_SVC, "CreateJoinToken", ADMIN_LOCAL),
    (AGENT_SVC, "PostStatus", AGENT),
    (BUNDLE_SVC, "GetBundle", ANY),
    (BUNDLE_SVC, "AppendBundle", ADMIN_LOCAL),
    (BUNDLE_SVC, "PublishJWTAuthority", DOWNSTREAM),
    (BUNDLE_SVC, "CountBundles", ADMIN_LOCAL),
    (BUNDLE_SVC, "ListFederatedBundles", ADMIN_LOCAL),
    (BUNDLE_SVC, "GetFederatedBundle", ADMIN_LOCAL_AGENT),
    (BUNDLE_SVC, "BatchCreateFederatedBundle", ADMIN_LOCAL),
    (BUNDLE_SVC, "BatchUpdateFederatedBundle", ADMIN_LOCAL),
    (BUNDLE_SVC, "BatchSetFederatedBundle", ADMIN_LOCAL),
    (BUNDLE_SVC, "BatchDeleteFederatedBundle", ADMIN_LOCAL),
    (DEBUG_SVC, "GetInfo", LOCAL),
    (ENTRY_SVC, "CountEntries", ADMIN_LOCAL),
    (ENTRY_SVC, "ListEntries", ADMIN_LOCAL),
    (ENTRY_SVC, "GetEntry", ADMIN_LOCAL),
    (ENTRY_SVC, "BatchCreateEntry", ADMIN_LOCAL),
    (ENTRY_SVC, "BatchUpdateEntry", ADMIN_LOCAL),
    (ENTRY_SVC, "BatchDeleteEntry", ADMIN_LOCAL),
    (ENTRY_SVC, "GetAuthorizedEntries", AGENT),
    (ENTRY_SVC, "SyncAuthorizedEntries", AGENT),
    (HEALTH_SVC, "Check", LOCAL),
    (HEALTH_SVC, "List", LOCAL),
    (HEALTH_SVC, "Watch", LOCAL),
    (LOCALAUTHORITY_SVC, "GetJWTAuthorityState", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "PrepareJWTAuthority", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "ActivateJWTAuthority", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "TaintJWTAuthority", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "RevokeJWTAuthority", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "GetX509AuthorityState", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "PrepareX509Authority", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "ActivateX509Authority", ADMIN_LOCAL),
    (LOCALAUTHORITY_SVC, "TaintX509Authority", ADMIN_LOCAL),
    (
        LOCALAUTHORITY_SVC,
        "TaintX509UpstreamAuthority",
        ADMIN_LOCAL,
    ),
    (LOCALAUTHORITY_SVC, "RevokeX509Authority", ADMIN_LOCAL),
    (
        LOCALAUTHORITY_SVC,
        "RevokeX509UpstreamAuthority",
        ADMIN_LOCAL,
    ),
    (LOGGER_SVC, "GetLogger", LOCAL),
    (LOGGER_SVC, "SetLogLevel", LOCAL),
    (LOGGER_SVC, "ResetLogLevel", LOCAL),
    // spire-rs's own push stream (not in SPIRE's table): agents only.
    (PUSH_SVC, "Watch", AGENT),
    (SVID_SVC, "MintX509SVID", ADMIN_LOCAL),
    (SVID_SVC, "MintJWTSVID", ADMIN_LOCAL),
    (SVID_SVC, "BatchNewX509SVID", AGENT),
    (SVID_SVC, "NewJWTSVID", AGENT),
    (SVID_SVC, "NewDownstreamX509CA", DOWNSTREAM),
    (TRUSTDOMAIN_SVC, "ListFederationRelationships", ADMIN_LOCAL),
    (TRUSTDOMAIN_SVC, "GetFederationRelationship", ADMIN_LOCAL),
    (
        TRUSTDOMAIN_SVC,
        "BatchCreateFederationRelationship",
        ADMIN_LOCAL,
    ),
    (
        TRUSTDOMAIN_SVC,
        "BatchUpdateFederationRelationship",
        ADMIN_LOCAL,
    ),
    (
        TRUSTDOMAIN_SVC,
        "BatchDeleteFederationRelationship",
        ADMIN_LOCAL,
    ),
    (TRUSTDOMAIN_SVC, "RefreshBundle", ADMIN_LOCAL),
];

/// Looks up the full method path (`/pkg.Service/Method`).
pub(crate) fn allowed(full_method: &str) -> Option<Allowed> {
    POLICY
        .iter()
        .find(|(svc, method, _)| {
            full_method
                .strip_prefix(svc)
                .is_some_and(|rest| rest == *method)
        })
        .map(|&(_, _, allowed)| allowed)
}

/// The whole table as `(full method path, allowed)`, for documentation and tests.
pub fn policy() -> impl Iterator<Item = (String, Allowed)> {
    POLICY
        .iter()
        .map(|(svc, method, allowed)| (format!("{svc}{method}"), *allowed))
}
