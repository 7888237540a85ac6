//! SVID.NewJWTSVID (agents, authorized entries) and SVID.MintJWTSVID (admins): SPIRE's codes
//! and messages, TTLs, and tokens checked with `validate_jwt_svid` against the stored bundle.
#![allow(clippy::unwrap_used)]

mod support;

use spire_proto::spire::api::server::svid::v1::{
    MintJwtsvidRequest, NewJwtsvidRequest, svid_client::SvidClient,
};
use spire_proto::spire::api::types;
use spire_server_api::svid::{ENTRY_NOT_AUTHORIZED, JWT_DISABLED};
use spire_server_datastore::AttestedNode;
use spire_svid::jwt::validate_jwt_svid;
use support::*;
use tonic::{Code, Status};

const AGENT: &str = "/spire/agent/x509pop/node-1";
const OTHER_AGENT: &str = "/spire/agent/x509pop/node-2";
const SERIAL: &str = "77";

async fn with_agents(h: Harness) -> Harness {
    for (path, serial) in [(AGENT, SERIAL), (OTHER_AGENT, "78")] {
        let node = AttestedNode {
            spiffe_id: id(path),
            attestation_type: "x509pop".into(),
            cert_serial_number: serial.into(),
            cert_not_after: h.now() + 3600,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            can_reattest: false,
            selectors: spire_id::SelectorSet::new(),
        };
        h.ds.create_attested_node(node).await.unwrap();
    }
    h
}

fn audience(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// NewJWTSVID as the agent [`AGENT`] over the TCP routes.
async fn new_jwt(h: &Harness, entry_id: &str, aud: &[&str]) -> Result<types::Jwtsvid, Status> {
    let request = as_peer(
        &id(AGENT).to_string(),
        SERIAL,
        NewJwtsvidRequest {
            entry_id: entry_id.to_owned(),
            audience: audience(aud),
        },
    );
    SvidClient::new(h.tcp_channel.clone())
        .new_jwtsvid(request)
        .await
        .map(|r| r.into_inner().svid.unwrap())
}

/// MintJWTSVID as a local caller on the admin socket.
async fn mint_jwt(
    h: &Harness,
    spiffe_id: Option<types::Spiffeid>,
    aud: &[&str],
    ttl: i32,
) -> Result<types::Jwtsvid, Status> {
    SvidClient::new(h.channel.clone())
        .mint_jwtsvid(MintJwtsvidRequest {
            id: spiffe_id,
            audience: audience(aud),
            ttl,
        })
        .await
        .map(|r| r.into_inner().svid.unwrap())
}

/// Validates `token` for `aud` now against the trust domain's stored bundle; returns `sub`
/// and the claims.
async fn validate(
    h: &Harness,
    token: &str,
    aud: &str,
) -> Result<(String, serde_json::Map<String, serde_json::Value>), String> {
    let bundle = h.ds.fetch_bundle(&h.td()).await.unwrap().unwrap();
    validate_jwt_svid(token, &audience(&[aud]), h.now(), |_| Some(&bundle))
        .map(|v| (v.spiffe_id.to_string(), v.claims))
        .map_err(|e| e.to_string())
}

#[track_caller]
fn assert_status(result: Result<types::Jwtsvid, Status>, code: Code, message: &str) {
    let status = result.unwrap_err();
    assert_eq!((status.code(), status.message()), (code, message));
}

#[tokio::test]
async fn new_jwt_svid_for_an_authorized_entry() {
    let h = with_agents(Harness::start().await).await;
    let mut entry = domain_entry("/web", AGENT, "unix:uid:1000");
    entry.jwt_svid_ttl = 120;
    entry.hint = "web".into();
    let entry = h.add_entry(entry).await;
    let defaulted = h
        .add_entry(domain_entry("/batch", AGENT, "unix:uid:1001"))
        .await;
    h.refresh_entries().await;

    let svid = new_jwt(&h, &entry.id, &["a", "b"]).await.unwrap();
    assert_eq!(svid.id, Some(pid(TD, "/web")));
    assert_eq!(svid.hint, "web");
    assert_eq!(svid.issued_at, h.now());
    assert_eq!(svid.expires_at - svid.issued_at, 120, "TTL from the entry");
    let (sub, claims) = validate(&h, &svid.token, "b").await.unwrap();
    assert_eq!(sub, "spiffe://example.org/web");
    assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
    assert_eq!(claims["exp"], svid.expires_at);
    assert_eq!(claims["iat"], svid.issued_at);
    assert_eq!(claims.get("iss"), None);

    let svid = new_jwt(&h, &defaulted.id, &["a"]).await.unwrap();
    assert_eq!(
        svid.expires_at - svid.issued_at,
        300,
        "default_jwt_svid_ttl when the entry has none"
    );
    assert!(validate(&h, &svid.token, "a").await.is_ok());
}

#[tokio::test]
async fn new_jwt_svid_needs_an_audience() {
    let h = with_agents(Harness::start().await).await;
    let entry = h.add_entry(domain_entry("/web", AGENT, "unix:uid:1")).await;
    h.refresh_entries().await;
    assert_status(
        new_jwt(&h, &entry.id, &[]).await,
        Code::InvalidArgument,
        "at least one audience is required",
    );
}

#[tokio::test]
async fn new_jwt_svid_for_an_entry_the_agent_may_not_obtain_is_not_found() {
    let h = with_agents(Harness::start().await).await;
    let theirs = h
        .add_entry(domain_entry("/theirs", OTHER_AGENT, "unix:uid:1"))
        .await;
    h.refresh_entries().await;
    for entry_id in [theirs.id.as_str(), "no-such-entry", ""] {
        assert_status(
            new_jwt(&h, entry_id, &["a"]).await,
            Code::NotFound,
            ENTRY_NOT_AUTHORIZED,
        );
    }
}

#[tokio::test]
async fn new_jwt_svid_is_for_agents_only() {
    let h = with_agents(Harness::start().await).await;
    let status = SvidClient::new(h.channel.clone())
        .new_jwtsvid(NewJwtsvidRequest {
            entry_id: "x".into(),
            audience: audience(&["a"]),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn mint_jwt_svid_for_a_workload_id() {
    let h =
        Harness::start_with_ca(|ca| ca.jwt_issuer = Some("https://oidc.example.org".into())).await;
    let svid = mint_jwt(&h, Some(pid(TD, "/ns/default/sa/web")), &["x", "y"], 600)
        .await
        .unwrap();
    assert_eq!(svid.id, Some(pid(TD, "/ns/default/sa/web")));
    assert_eq!(
        svid.expires_at - svid.issued_at,
        600,
        "TTL from the request"
    );
    assert_eq!(svid.hint, "");
    let (sub, claims) = validate(&h, &svid.token, "x").await.unwrap();
    assert_eq!(sub, "spiffe://example.org/ns/default/sa/web");
    assert_eq!(claims["iss"], "https://oidc.example.org");

    for ttl in [0, -5] {
        let svid = mint_jwt(&h, Some(pid(TD, "/w")), &["x"], ttl)
            .await
            .unwrap();
        assert_eq!(
            svid.expires_at - svid.issued_at,
            300,
            "default for ttl {ttl}"
        );
    }
    // A TTL beyond the JWT key's life is capped at its expiry.
    let key = h.ca.current_jwt_key().await.unwrap().1;
    let svid = mint_jwt(&h, Some(pid(TD, "/w")), &["x"], i32::MAX)
        .await
        .unwrap();
    assert_eq!(
        svid.expires_at,
        spire_time::to_unix_seconds(key.not_after())
    );
}

#[tokio::test]
async fn mint_jwt_svid_refuses_ids_outside_our_workloads() {
    let h = Harness::start().await;
    let cases = [
        (None, "invalid SPIFFE ID: request must specify SPIFFE ID"),
        (
            Some(pid("other.org", "/w")),
            "invalid SPIFFE ID: \"spiffe://other.org/w\" is not a member of trust domain \"example.org\"",
        ),
        (
            Some(pid(TD, "/spire/agent/x")),
            "invalid SPIFFE ID: \"spiffe://example.org/spire/agent/x\" is not a workload in trust domain \"example.org\"; path is in the reserved namespace",
        ),
    ];
    for (spiffe_id, message) in cases {
        assert_status(
            mint_jwt(&h, spiffe_id, &["a"], 0).await,
            Code::InvalidArgument,
            message,
        );
    }
    // Malformed IDs: the message names the ID rule that failed.
    for spiffe_id in [pid(TD, ""), pid(TD, "w"), pid("Example.org", "/w")] {
        let status = mint_jwt(&h, Some(spiffe_id.clone()), &["a"], 0)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{spiffe_id:?}");
        assert!(
            status.message().starts_with("invalid SPIFFE ID: "),
            "{spiffe_id:?}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn mint_jwt_svid_needs_an_audience() {
    let h = Harness::start().await;
    assert_status(
        mint_jwt(&h, Some(pid(TD, "/w")), &[], 0).await,
        Code::InvalidArgument,
        "at least one audience is required",
    );
}

#[tokio::test]
async fn mint_jwt_svid_is_for_admins() {
    let h = Harness::start().await;
    let status = SvidClient::new(h.tcp_channel.clone())
        .mint_jwtsvid(as_caller(
            "agent",
            MintJwtsvidRequest {
                id: Some(pid(TD, "/w")),
                audience: audience(&["a"]),
                ttl: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn both_methods_answer_unimplemented_when_jwt_svids_are_disabled() {
    let h = with_agents(Harness::start_with_ca(|ca| ca.disable_jwt_svids = true).await).await;
    let entry = h.add_entry(domain_entry("/web", AGENT, "unix:uid:1")).await;
    h.refresh_entries().await;
    assert_status(
        new_jwt(&h, &entry.id, &["a"]).await,
        Code::Unimplemented,
        JWT_DISABLED,
    );
    assert_status(
        mint_jwt(&h, Some(pid(TD, "/w")), &["a"], 0).await,
        Code::Unimplemented,
        JWT_DISABLED,
    );
    let bundle = h.ds.fetch_bundle(&h.td()).await.unwrap().unwrap();
    assert!(bundle.jwt_authorities.is_empty(), "no JWT key was made");
}
