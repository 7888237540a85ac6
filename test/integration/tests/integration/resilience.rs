//! The agent without its server, across its own restart, and when the server bans or
//! evicts it.

use spire_integration_tests::{
    Dir, ServerBuilder, TestServer, WAIT, entry, eventually, init_logging, uid_selector,
};

use crate::common::{NodePki, fetch_context_eventually, ids, serial};

const WORKLOAD: &str = "spiffe://example.org/workload";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_svids_are_served_while_the_server_is_down() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    let before = fetch_context_eventually(&agent.workload().await.unwrap()).await;

    server.stop().await.unwrap();

    // A new client and a new stream, with the server gone: the cached SVID.
    let client = agent.workload().await.unwrap();
    let during = client.fetch_x509_context().await.unwrap();
    assert_eq!(ids(&during), [WORKLOAD]);
    assert_eq!(serial(&during.svids()[0]), serial(&before.svids()[0]));
    assert!(
        !agent.is_finished(),
        "the agent keeps running without its server"
    );

    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_resumes_without_attesting_again() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    fetch_context_eventually(&agent.workload().await.unwrap()).await;
    let attested = server.list_agents().await.unwrap();
    assert_eq!(attested.len(), 1);
    let svid_before = agent.stored_svid().unwrap();

    let dir = agent.stop().await.unwrap();
    let agent = resume_without_token(&server, dir, &agent_id, &svid_before, &attested).await;

    let context = fetch_context_eventually(&agent.workload().await.unwrap()).await;
    assert_eq!(ids(&context), [WORKLOAD]);

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}

/// Starts an agent on `dir` with no join token at all, so only the stored SVID and the disk
/// key can work, and checks it resumed: the same agent ID and stored SVID, and no new
/// attestation (the node record unchanged).
async fn resume_without_token(
    server: &TestServer,
    dir: Dir,
    agent_id: &str,
    svid_before: &[Vec<u8>],
    attested: &[spire_integration_tests::types::Agent],
) -> spire_integration_tests::TestAgent {
    let agent = server
        .agent()
        .await
        .unwrap()
        .no_join_token()
        .dir(dir)
        .start()
        .await
        .unwrap();
    assert_eq!(agent.agent_id().unwrap(), agent_id);
    assert_eq!(agent.stored_svid().unwrap(), svid_before);
    assert_eq!(
        server.list_agents().await.unwrap(),
        attested,
        "no new attestation"
    );
    agent
}

/// Rewrites the agent's key file as SPIRE's agent would hold it after a rotation: the key
/// moved to `agent-svid-B`, re-encoded by Python's `cryptography`, tab-indented. `false`
/// (with the reason printed) where Python or the package is missing, unless CI is set.
fn rewrite_as_spire_agent_keys(keys: &std::path::Path) -> bool {
    const SCRIPT: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import serialization as s
path = sys.argv[1]
(encoded,) = json.load(open(path))["keys"].values()
key = s.load_der_private_key(base64.b64decode(encoded), None)
der = key.private_bytes(s.Encoding.DER, s.PrivateFormat.PKCS8, s.NoEncryption())
out = {"keys": {"agent-svid-B": base64.b64encode(der).decode()}}
open(path, "w").write(json.dumps(out, indent="\t"))
"#;
    spire_test::python(SCRIPT, &[keys.as_os_str()]).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_resumes_with_its_key_from_a_spire_key_file() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    let keys = agent.data_dir().join("keys.json");
    let svid_before = agent.stored_svid().unwrap();
    let attested = server.list_agents().await.unwrap();

    let dir = agent.stop().await.unwrap();
    if !rewrite_as_spire_agent_keys(&keys) {
        server.stop().await.unwrap();
        return;
    }
    let agent = resume_without_token(&server, dir, &agent_id, &svid_before, &attested).await;

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_agent_removes_its_svid_and_stops() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let mut agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();
    assert!(!agent.stored_svid().unwrap().is_empty());

    server.ban_agent(&agent_id).await.unwrap();
    let ended = agent.wait(WAIT).await.unwrap();
    let error = ended.unwrap_err();
    assert!(
        matches!(
            error,
            spire_agent_app::Error::Manager(spire_agent_manager::Error::Banned)
        ),
        "{error:?}"
    );
    assert!(agent.stored_svid().unwrap().is_empty());
    let listed = server.find_agent(&agent_id).await.unwrap().unwrap();
    assert!(listed.banned);

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_join_token_agent_cannot_attest_again_and_stops() {
    init_logging();
    let server = TestServer::start().await.unwrap();
    let mut agent = server.join_token_agent().await.unwrap();
    let agent_id = agent.agent_id().unwrap();

    server.evict_agent(&agent_id).await.unwrap();
    let ended = agent.wait(WAIT).await.unwrap();
    let error = ended.unwrap_err();
    assert!(
        matches!(
            error,
            spire_agent_app::Error::Manager(spire_agent_manager::Error::CannotReattest(_))
        ),
        "{error:?}"
    );
    assert!(agent.stored_svid().unwrap().is_empty());
    assert!(server.find_agent(&agent_id).await.unwrap().is_none());

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_x509pop_agent_attests_again_and_keeps_serving() {
    init_logging();
    let pki_dir = Dir::new().unwrap();
    let pki = NodePki::new(pki_dir.path(), "node-9");
    let server = ServerBuilder::new()
        .plugins_extra(&pki.server_plugin())
        .start()
        .await
        .unwrap();
    let agent = server
        .agent()
        .await
        .unwrap()
        .x509pop(&pki.key_path, &pki.cert_path)
        .start()
        .await
        .unwrap();
    let agent_id = agent.agent_id().unwrap();
    server
        .create_entry(entry(WORKLOAD, &agent_id, &[&uid_selector()]))
        .await
        .unwrap();
    fetch_context_eventually(&agent.workload().await.unwrap()).await;
    let before = server.find_agent(&agent_id).await.unwrap().unwrap();
    let stored_before = agent.stored_svid().unwrap();

    server.evict_agent(&agent_id).await.unwrap();
    // The agent notices at its next sync and attests again: a new node record, new serial.
    let after = eventually("the re-attested node", || async {
        server.find_agent(&agent_id).await.unwrap()
    })
    .await
    .unwrap();
    assert_ne!(after.x509svid_serial_number, before.x509svid_serial_number);
    eventually("the new agent SVID on disk", || async {
        let stored = agent.stored_svid().unwrap();
        (!stored.is_empty() && stored != stored_before).then_some(())
    })
    .await
    .unwrap();

    // Still serving (a new stream gets the identity), and still running.
    let context = fetch_context_eventually(&agent.workload().await.unwrap()).await;
    assert_eq!(ids(&context), [WORKLOAD]);
    assert!(!agent.is_finished());

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}
