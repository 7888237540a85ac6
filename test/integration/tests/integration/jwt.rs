//! JWT-SVIDs from a real agent, checked by code we did not write: the rust-spiffe client
//! fetches them and verifies them offline against the JWT bundles it fetched, and the agent's
//! own ValidateJWTSVID agrees.

use spire_integration_tests::spiffe::{JwtSvid, SpiffeId};
use spire_integration_tests::{TestServer, entry, eventually, init_logging, uid_selector};

const WORKLOAD: &str = "spiffe://example.org/jwt-workload";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_jwt_svids_verify_offline_with_rust_spiffe() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();

    let client = agent.workload().await.unwrap();
    let svid = eventually("a JWT-SVID for this process", || async {
        client.fetch_jwt_svid(["svc-a", "svc-b"], None).await.ok()
    })
    .await
    .unwrap();
    assert_eq!(svid.spiffe_id().to_string(), WORKLOAD);

    // Offline: the unmodified rust-spiffe verifier, with the bundles the agent serves.
    let bundles = client.fetch_jwt_bundles().await.unwrap();
    let verified = JwtSvid::parse_and_validate(svid.token(), &bundles, &["svc-b"]).unwrap();
    assert_eq!(verified.spiffe_id().to_string(), WORKLOAD);
    let mut audience: Vec<&str> = verified.audience().iter().map(String::as_str).collect();
    audience.sort_unstable();
    assert_eq!(audience, ["svc-a", "svc-b"]);
    assert!(JwtSvid::parse_and_validate(svid.token(), &bundles, &["svc-c"]).is_err());

    // Through the agent.
    let validated = client
        .validate_jwt_token("svc-a", svid.token())
        .await
        .unwrap();
    assert_eq!(validated.spiffe_id().to_string(), WORKLOAD);
    assert!(
        client
            .validate_jwt_token("svc-c", svid.token())
            .await
            .is_err()
    );

    // A second fetch for the same audiences (in any order) is served from the agent's cache.
    let again = client
        .fetch_jwt_svid(["svc-b", "svc-a", "svc-a"], None)
        .await
        .unwrap();
    assert_eq!(again.token(), svid.token());

    // Asking for an identity the caller does not have is refused.
    let other = SpiffeId::new("spiffe://example.org/someone-else").unwrap();
    assert!(
        client
            .fetch_jwt_svid(["svc-a"], Some(&other))
            .await
            .is_err()
    );

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}
