//! The authorization table: every method × every caller class, on both route sets, plus the
//! classification of X509-SVID peers (admin_ids, admin and downstream entries, agents).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use prost_reflect::DescriptorPool;
use spire_server_datastore::NodeMask;
use support::{Harness, domain_entry};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const CLASSES: [&str; 5] = ["local", "admin", "agent", "downstream", "any"];

/// compat §1.1, written out independently of the implementation's table.
const EXPECTED: &[(&str, &str)] = &[
    (
        "/spire.api.server.agent.v1.Agent/CountAgents",
        "admin local",
    ),
    ("/spire.api.server.agent.v1.Agent/ListAgents", "admin local"),
    ("/spire.api.server.agent.v1.Agent/GetAgent", "admin local"),
    (
        "/spire.api.server.agent.v1.Agent/DeleteAgent",
        "admin local",
    ),
    ("/spire.api.server.agent.v1.Agent/BanAgent", "admin local"),
    ("/spire.api.server.agent.v1.Agent/AttestAgent", "any"),
    ("/spire.api.server.agent.v1.Agent/RenewAgent", "agent"),
    (
        "/spire.api.server.agent.v1.Agent/CreateJoinToken",
        "admin local",
    ),
    ("/spire.api.server.agent.v1.Agent/PostStatus", "agent"),
    (
        "/spire.api.server.bundle.v1.Bundle/CountBundles",
        "admin local",
    ),
    ("/spire.api.server.bundle.v1.Bundle/GetBundle", "any"),
    (
        "/spire.api.server.bundle.v1.Bundle/AppendBundle",
        "admin local",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/PublishJWTAuthority",
        "downstream",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/ListFederatedBundles",
        "admin local",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/GetFederatedBundle",
        "admin local agent",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/BatchCreateFederatedBundle",
        "admin local",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/BatchUpdateFederatedBundle",
        "admin local",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/BatchSetFederatedBundle",
        "admin local",
    ),
    (
        "/spire.api.server.bundle.v1.Bundle/BatchDeleteFederatedBundle",
        "admin local",
    ),
    ("/spire.api.server.debug.v1.Debug/GetInfo", "local"),
    (
        "/spire.api.server.entry.v1.Entry/CountEntries",
        "admin local",
    ),
    (
        "/spire.api.server.entry.v1.Entry/ListEntries",
        "admin local",
    ),
    ("/spire.api.server.entry.v1.Entry/GetEntry", "admin local"),
    (
        "/spire.api.server.entry.v1.Entry/BatchCreateEntry",
        "admin local",
    ),
    (
        "/spire.api.server.entry.v1.Entry/BatchUpdateEntry",
        "admin local",
    ),
    (
        "/spire.api.server.entry.v1.Entry/BatchDeleteEntry",
        "admin local",
    ),
    (
        "/spire.api.server.entry.v1.Entry/GetAuthorizedEntries",
        "agent",
    ),
    (
        "/spire.api.server.entry.v1.Entry/SyncAuthorizedEntries",
        "agent",
    ),
    ("/spire.api.server.logger.v1.Logger/GetLogger", "local"),
    ("/spire.api.server.logger.v1.Logger/SetLogLevel", "local"),
    ("/spire.api.server.logger.v1.Logger/ResetLogLevel", "local"),
    ("/spire.api.server.svid.v1.SVID/MintX509SVID", "admin local"),
    ("/spire.api.server.svid.v1.SVID/MintJWTSVID", "admin local"),
    ("/spire.api.server.svid.v1.SVID/BatchNewX509SVID", "agent"),
    ("/spire.api.server.svid.v1.SVID/NewJWTSVID", "agent"),
    (
        "/spire.api.server.svid.v1.SVID/NewDownstreamX509CA",
        "downstream",
    ),
    ("/grpc.health.v1.Health/Check", "local"),
    ("/grpc.health.v1.Health/Watch", "local"),
];

const UDS_ONLY: [&str; 3] = [
    "/spire.api.server.debug.v1.Debug/",
    "/spire.api.server.logger.v1.Logger/",
    "/grpc.health.v1.Health/",
];

fn is_admin_local(path: &str) -> bool {
    path.starts_with("/spire.api.server.trustdomain.v1.")
        || path.starts_with("/spire.api.server.localauthority.v1.")
}

/// Every method of every service we serve: our protos' services plus grpc.health.v1.
fn all_methods() -> BTreeSet<String> {
    let pool = DescriptorPool::decode(spire_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods: BTreeSet<String> = pool
        .services()
        .filter(|s| s.full_name().starts_with("spire.api.server."))
        .flat_map(|s| {
            s.methods()
                .map(|m| format!("/{}/{}", s.full_name(), m.name()))
                .collect::<Vec<_>>()
        })
        .collect();
    methods.insert("/grpc.health.v1.Health/Check".into());
    methods.insert("/grpc.health.v1.Health/Watch".into());
    methods
}

fn expected_classes(path: &str) -> String {
    if is_admin_local(path) {
        return "admin local".into();
    }
    EXPECTED
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, c)| (*c).to_owned())
        .unwrap_or_else(|| panic!("{path} is missing from the expected table"))
}

/// Calls `path` with one empty message (as a stream, which works for every method kind) and
/// returns the first error code, or OK.
async fn call(
    channel: &Channel,
    path: &str,
    metadata: Option<(&'static str, String)>,
) -> (Code, String) {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(tokio_stream::once(()));
    if let Some((key, value)) = metadata {
        request.metadata_mut().insert(key, value.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::try_from(path.to_owned()).unwrap();
    match grpc.streaming(request, path, codec).await {
        Err(status) => (status.code(), status.message().to_owned()),
        Ok(response) => match response.into_inner().message().await {
            Err(status) => (status.code(), status.message().to_owned()),
            Ok(_) => (Code::Ok, String::new()),
        },
    }
}

async fn check_matrix(channel: &Channel, methods: &BTreeSet<String>) {
    for path in methods {
        let allowed = expected_classes(path);
        for class in CLASSES {
            let (code, message) = call(channel, path, Some(("x-test-caller", class.into()))).await;
            let should_pass = allowed.split(' ').any(|c| c == class || c == "any");
            if should_pass {
                assert_ne!(code, Code::PermissionDenied, "{path} as {class}: {message}");
            } else {
                assert_eq!(
                    (code, message.as_str()),
                    (
                        Code::PermissionDenied,
                        format!("authorization denied for method {path}").as_str()
                    ),
                    "{path} as {class}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_method_times_every_caller_class() {
    let h = Harness::start().await;
    let methods = all_methods();
    for (path, _) in EXPECTED {
        assert!(methods.contains(*path), "{path} is not a served method");
    }
    assert_eq!(
        methods.len(),
        EXPECTED.len() + 18,
        "EXPECTED + 6 TrustDomain + 12 LocalAuthority methods"
    );
    check_matrix(&h.channel, &methods).await;

    // TCP: the same answers, except that Debug, Health and Logger are not there at all.
    let (tcp, uds_only): (BTreeSet<String>, BTreeSet<String>) = methods
        .into_iter()
        .partition(|p| !UDS_ONLY.iter().any(|svc| p.starts_with(svc)));
    check_matrix(&h.tcp_channel, &tcp).await;
    for path in &uds_only {
        for class in CLASSES {
            let (code, _) = call(&h.tcp_channel, path, Some(("x-test-caller", class.into()))).await;
            assert_eq!(code, Code::Unimplemented, "{path} as {class} over TCP");
        }
    }

    // Unknown methods of served services never reach a handler.
    let (code, _) = call(&h.channel, "/spire.api.server.entry.v1.Entry/Bogus", None).await;
    assert_eq!(code, Code::Unimplemented);
}

#[tokio::test]
async fn the_unix_socket_alone_makes_a_caller_local() {
    let h = Harness::start().await;
    let (code, message) = call(&h.channel, "/spire.api.server.debug.v1.Debug/GetInfo", None).await;
    assert_eq!(code, Code::Ok, "{message}");
    let (code, _) = call(
        &h.channel,
        "/spire.api.server.svid.v1.SVID/NewJWTSVID",
        None,
    )
    .await;
    assert_eq!(code, Code::PermissionDenied);
}

#[tokio::test]
async fn x509_svid_peers_are_classified_from_config_entries_and_nodes() {
    let h = Harness::start_with(|ctx| {
        ctx.admin_ids = vec![spire_id::SpiffeId::parse("spiffe://other.org/ops").unwrap()];
    })
    .await;
    let mut admin = domain_entry("/admin-tool", "/spire/agent/x", "unix:uid:1");
    admin.admin = true;
    h.add_entry(admin).await;
    let mut downstream = domain_entry("/nested", "/spire/agent/x", "unix:uid:2");
    downstream.downstream = true;
    h.add_entry(downstream).await;
    h.add_node("/spire/agent/n1", "7", "join_token").await;
    h.add_node("/spire/agent/banned", "8", "join_token").await;
    let mut banned =
        h.ds.fetch_attested_node(&support::id("/spire/agent/banned"))
            .await
            .unwrap()
            .unwrap();
    banned.cert_serial_number.clear();
    h.ds.update_attested_node(banned, Some(NodeMask::ALL))
        .await
        .unwrap();

    let list_entries = "/spire.api.server.entry.v1.Entry/ListEntries";
    let publish = "/spire.api.server.bundle.v1.Bundle/PublishJWTAuthority";
    let renew = "/spire.api.server.agent.v1.Agent/RenewAgent";
    let get_bundle = "/spire.api.server.bundle.v1.Bundle/GetBundle";
    let cases: &[(&str, &str, &str, bool)] = &[
        ("spiffe://other.org/ops", "1", list_entries, true),
        ("spiffe://example.org/admin-tool", "1", list_entries, true),
        ("spiffe://example.org/admin-tool", "1", publish, false),
        ("spiffe://example.org/nested", "1", list_entries, false),
        ("spiffe://example.org/nested", "1", publish, true),
        ("spiffe://example.org/spire/agent/n1", "7", renew, true),
        ("spiffe://example.org/spire/agent/n1", "9", renew, false),
        (
            "spiffe://example.org/spire/agent/n1",
            "7",
            list_entries,
            false,
        ),
        ("spiffe://example.org/spire/agent/banned", "8", renew, false),
        (
            "spiffe://example.org/spire/agent/unknown",
            "1",
            renew,
            false,
        ),
        ("spiffe://example.org/stranger", "1", get_bundle, true),
        ("spiffe://example.org/stranger", "1", list_entries, false),
    ];
    for (id, serial, path, allowed) in cases {
        let (code, message) = call(
            &h.tcp_channel,
            path,
            Some(("x-test-peer", format!("{id};{serial}"))),
        )
        .await;
        assert_eq!(
            code != Code::PermissionDenied,
            *allowed,
            "{id} (serial {serial}) on {path}: {code:?} {message}"
        );
    }
}
