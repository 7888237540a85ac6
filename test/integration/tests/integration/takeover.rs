//! Swapping SPIRE's binaries for ours on an installed pair. The starting state is written
//! without spire-rs, by `spire_install.py`: SPIRE's SQLite schema dumps (versions 24 and 23,
//! `../shared/testdata/spire-sqlite-dumps`) with a bundle, a CA journal, an attested join-token
//! agent and a workload entry in SPIRE's rows; the server's `keys.json`
//! (`x509-CA-A`, `JWT-Signer-A`); the agent's `keys.json` (`agent-svid-A`) and its
//! `agent-data.json` holding the SVID SPIRE issued it, past half-life. Our server takes the
//! database over; our agent resumes with SPIRE's SVID and renews it without attesting again
//! (it has no join token, and the token it attested with is gone).

use std::ffi::OsStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use spire_integration_tests::{
    Dir, ServerBuilder, chain_verifies, eventually, init_logging, leaf_spiffe_id,
};

use crate::common::{chain, fetch_context_eventually};

const SCRIPT: &str = include_str!("spire_install.py");

/// The decimal serial number of a DER certificate (SPIRE's and the Agent API's form).
fn decimal_serial(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.tbs_certificate.serial.to_str_radix(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_attested_to_spire_v24_keeps_its_identity_after_the_swap() {
    swap("v24.sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_attested_to_spire_v23_keeps_its_identity_after_the_swap() {
    swap("v23.sql").await;
}

/// Installs SPIRE on the schema dump `dump`, swaps in our server and agent, and checks that
/// the agent, its entry's workload and the CA carry on.
async fn swap(dump: &str) {
    init_logging();
    let Some(dumps) = spire_test::shared_testdata("spire-sqlite-dumps") else {
        return;
    };
    let server_dir = Dir::new().unwrap();
    let agent_dir = Dir::new().unwrap();
    let agent_data = agent_dir.path().join("data");
    std::fs::create_dir_all(&agent_data).unwrap();
    let uid = rustix::process::getuid().as_raw().to_string();
    let Some(out) = spire_test::python(
        SCRIPT,
        &[
            dumps.join(dump).as_os_str(),
            server_dir.path().as_os_str(),
            agent_data.as_os_str(),
            OsStr::new(&uid),
        ],
    ) else {
        return;
    };
    let spire: Value = serde_json::from_slice(&out).unwrap();
    let text = |key: &str| spire[key].as_str().unwrap().to_owned();
    let (agent_id, spire_serial) = (text("agent_id"), text("agent_serial"));
    let spire_root = STANDARD.decode(text("root")).unwrap();

    // Our server on SPIRE's database and keys: it keeps SPIRE's CA (same authority ID) and
    // the agent's node record.
    let server = ServerBuilder::new().dir(server_dir).start().await.unwrap();
    assert_eq!(
        server.bundle_roots().await.unwrap(),
        std::slice::from_ref(&spire_root),
        "SPIRE's root is the bundle"
    );
    let node = server
        .find_agent(&agent_id)
        .await
        .unwrap()
        .expect("SPIRE's agent");
    assert_eq!(node.attestation_type, "join_token");
    assert_eq!(node.x509svid_serial_number, spire_serial);
    assert_eq!(
        server.list_agents().await.unwrap().len(),
        1,
        "no other agent"
    );
    let entry = server.get_entry(&text("entry_id")).await.unwrap();
    assert_eq!(
        entry
            .spiffe_id
            .map(|id| format!("spiffe://{}{}", id.trust_domain, id.path)),
        Some(text("workload_id"))
    );

    // Our agent on SPIRE's agent files, with no way to attest: it resumes with the stored SVID.
    let agent = server
        .agent()
        .await
        .unwrap()
        .no_join_token()
        .dir(agent_dir)
        .start()
        .await
        .unwrap();
    let renewed = eventually("the agent SVID renewed by our server", || async {
        let stored = agent.stored_svid().ok()?;
        let leaf = stored.first()?;
        (decimal_serial(leaf) != spire_serial).then(|| stored.clone())
    })
    .await
    .unwrap();
    assert_eq!(
        leaf_spiffe_id(&renewed[0]).unwrap(),
        agent_id,
        "same identity"
    );
    assert!(chain_verifies(&renewed, std::slice::from_ref(&spire_root)));
    let new_serial = decimal_serial(&renewed[0]);
    // The server renewed the same node record: same ID and attestation type, new serial.
    let node = eventually("the node record with the renewed serial", || async {
        let node = server.find_agent(&agent_id).await.ok()??;
        (node.x509svid_serial_number == new_serial).then_some(node)
    })
    .await
    .unwrap();
    assert_eq!(node.attestation_type, "join_token");
    assert_eq!(server.list_agents().await.unwrap().len(), 1, "no new agent");

    // The workload of SPIRE's entry gets an SVID from SPIRE's CA, through our pair.
    let client = agent.workload().await.unwrap();
    let context = fetch_context_eventually(&client).await;
    let svid = context.default_svid().expect("an SVID");
    assert_eq!(svid.spiffe_id().to_string(), text("workload_id"));
    assert!(chain_verifies(
        &chain(svid),
        std::slice::from_ref(&spire_root)
    ));

    agent.stop().await.unwrap();
    server.stop().await.unwrap();
}
