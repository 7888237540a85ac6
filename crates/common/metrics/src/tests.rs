use std::time::Duration;

use super::*;
use crate::rpc::{method_key, metric_key};

#[test]
fn method_names_follow_spire() {
    let cases: &[(&str, &str)] = &[
        (
            "/spire.api.server.agent.v1.Agent/AttestAgent",
            "agent_v1_agent_attest_agent",
        ),
        (
            "/spire.api.server.svid.v1.SVID/BatchNewX509SVID",
            "svid_v1_svid_batch_new_x509svid",
        ),
        (
            "/spire.api.server.svid.v1.SVID/NewJWTSVID",
            "svid_v1_svid_new_jwtsvid",
        ),
        (
            "/spire.api.server.svid.v1.SVID/NewDownstreamX509CA",
            "svid_v1_svid_new_downstream_x509ca",
        ),
        (
            "/spire.api.server.bundle.v1.Bundle/PublishJWTAuthority",
            "bundle_v1_bundle_publish_jwt_authority",
        ),
        (
            "/spire.api.server.entry.v1.Entry/SyncAuthorizedEntries",
            "entry_v1_entry_sync_authorized_entries",
        ),
        (
            "/spire.api.server.localauthority.v1.LocalAuthority/GetX509AuthorityState",
            "localauthority_v1_local_authority_get_x509_authority_state",
        ),
        (
            "/spire.api.server.trustdomain.v1.TrustDomain/RefreshBundle",
            "trustdomain_v1_trust_domain_refresh_bundle",
        ),
        (
            "/spire.api.server.logger.v1.Logger/SetLogLevel",
            "logger_set_log_level",
        ),
        (
            "/spire.api.server.debug.v1.Debug/GetInfo",
            "debug_v1_debug_get_info",
        ),
        (
            "/spire.api.agent.logger.v1.Logger/GetLogger",
            "logger_get_logger",
        ),
        ("/spire.agent.debug.v1.Debug/GetInfo", "debug_get_info"),
        (
            "/SpiffeWorkloadAPI/FetchX509SVID",
            "workload_api_fetch_x509svid",
        ),
        (
            "/SpiffeWorkloadAPI/FetchX509Bundles",
            "workload_api_fetch_x509_bundles",
        ),
        (
            "/SpiffeWorkloadAPI/FetchJWTBundles",
            "workload_api_fetch_jwt_bundles",
        ),
        (
            "/SpiffeWorkloadAPI/ValidateJWTSVID",
            "workload_api_validate_jwtsvid",
        ),
        (
            "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets",
            "sds_v3_stream_secrets",
        ),
        ("/grpc.health.v1.Health/Check", "health_check"),
        ("/spirers.server.push.v1.Push/Watch", "push_v1_push_watch"),
    ];
    for (method, want) in cases {
        assert_eq!(method_key(method).join("_"), *want, "{method}");
    }
    assert_eq!(metric_key("ABCDef"), "abc_def");
    assert_eq!(metric_key("AbcDEF"), "abc_def");
    assert_eq!(metric_key("OneTWOThree"), "one_two_three");
    assert_eq!(metric_key("ONETwoTHREE"), "one_two_three");
    assert_eq!(metric_key("FetchJWTSVIDs"), "fetch_jwtsvi_ds");
    assert_eq!(metric_key("v1"), "v1");
}

#[test]
fn exposition_uses_spire_names_and_labels() {
    let registry = Registry::new("spire_server", &[("host", "node-1")]);
    let call = registry.call(&["ca", "manager", "x509_ca", "prepare"], &[]);
    call.record(Code::Ok, Duration::from_micros(1500));
    call.record(Code::Ok, Duration::from_micros(500));
    call.record(Code::PermissionDenied, Duration::from_millis(1));
    registry
        .counter(&["server_ca", "sign", "x509_svid"], &[])
        .add(3);
    registry
        .gauge(
            &["manager", "x509_ca", "rotate", "ttl"],
            &[("trust_domain_id", "a\"b")],
        )
        .set(-5);
    // The same name and labels give the same handle.
    registry
        .counter(&["server_ca", "sign", "x509_svid"], &[])
        .inc();
    let text = registry.render();
    let want = "\
# HELP spire_server_ca_manager_x509_ca_prepare spire_server_ca_manager_x509_ca_prepare
# TYPE spire_server_ca_manager_x509_ca_prepare counter
spire_server_ca_manager_x509_ca_prepare{status=\"OK\",host=\"node-1\"} 2
spire_server_ca_manager_x509_ca_prepare{status=\"PermissionDenied\",host=\"node-1\"} 1
# HELP spire_server_ca_manager_x509_ca_prepare_elapsed_time spire_server_ca_manager_x509_ca_prepare_elapsed_time
# TYPE spire_server_ca_manager_x509_ca_prepare_elapsed_time summary
spire_server_ca_manager_x509_ca_prepare_elapsed_time_sum{status=\"OK\",host=\"node-1\"} 2
spire_server_ca_manager_x509_ca_prepare_elapsed_time_count{status=\"OK\",host=\"node-1\"} 2
spire_server_ca_manager_x509_ca_prepare_elapsed_time_sum{status=\"PermissionDenied\",host=\"node-1\"} 1
spire_server_ca_manager_x509_ca_prepare_elapsed_time_count{status=\"PermissionDenied\",host=\"node-1\"} 1
# HELP spire_server_manager_x509_ca_rotate_ttl spire_server_manager_x509_ca_rotate_ttl
# TYPE spire_server_manager_x509_ca_rotate_ttl gauge
spire_server_manager_x509_ca_rotate_ttl{trust_domain_id=\"a\\\"b\",host=\"node-1\"} -5
# HELP spire_server_server_ca_sign_x509_svid spire_server_server_ca_sign_x509_svid
# TYPE spire_server_server_ca_sign_x509_svid counter
spire_server_server_ca_sign_x509_svid{host=\"node-1\"} 4
";
    assert_eq!(text, want);
}

#[test]
fn gauge_guards_release_their_unit() {
    let registry = Registry::new("spire_agent", &[]);
    let gauge = registry.gauge(&["workload_api", "connections"], &[]);
    let a = gauge.track();
    let b = gauge.track();
    assert_eq!(gauge.get(), 2);
    drop(a);
    drop(b);
    assert_eq!(gauge.get(), 0);
    assert_eq!(
        registry.render(),
        "# HELP spire_agent_workload_api_connections spire_agent_workload_api_connections\n\
         # TYPE spire_agent_workload_api_connections gauge\n\
         spire_agent_workload_api_connections 0\n"
    );
}

#[test]
fn code_names_are_go_s() {
    assert_eq!(code_name(Code::Ok), "OK");
    assert_eq!(code_name(Code::Cancelled), "Canceled");
    assert_eq!(code_name(Code::Unauthenticated), "Unauthenticated");
}
