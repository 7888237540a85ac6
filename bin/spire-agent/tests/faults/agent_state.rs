//! `kill -9` of the agent while it writes `agent-data.json`.
//!
//! The agent stores its state (SVID chain, bundle) by writing a temporary file, syncing it
//! and renaming it over the old one. The failpoint `before_rename:agent-data.json` parks
//! the agent between the two, once the new bundle (a prepared CA on the server) is written
//! to the temporary file; the kill lands there. The file the restarted agent finds is the old
//! one, whole; it resumes with it (no attestation: the join token is spent) and stores the
//! new bundle.
// Wall-clock Instant::now: these cases time real processes and print the figures.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use super::support::{
    agent_conf, free_port, join_token, ok, server_cli, server_conf, sqlite, start_agent,
    start_server,
};

fn roots(state: &[u8]) -> usize {
    let value: serde_json::Value = serde_json::from_slice(state).unwrap();
    value["bundle"].as_array().unwrap().len()
}

#[test]
fn kill_9_while_the_agent_writes_its_state_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let (server_dir, agent_dir) = (dir.path().join("server"), dir.path().join("agent"));
    let port = free_port();
    server_conf(&server_dir, port, &sqlite(&server_dir));
    let _server = start_server(&server_dir, &[]);
    let socket = server_dir.join("api.sock");
    agent_conf(&agent_dir, port, &join_token(&socket));
    let state_path = agent_dir.join("data/agent-data.json");

    let agent = start_agent(&agent_dir, &[]);
    agent.kill9();
    let old = std::fs::read(&state_path).unwrap();
    assert_eq!(roots(&old), 1);

    let failpoint = "before_rename:agent-data.json";
    let mut agent = start_agent(&agent_dir, &[("SPIRE_RS_FAILPOINT", failpoint)]);
    ok(&server_cli(&socket, &["localauthority", "x509", "prepare"]));
    agent.wait_failpoint(failpoint);
    agent.kill9();

    let found = std::fs::read(&state_path).unwrap();
    assert_eq!(
        found, old,
        "the state file changed under a write killed before its rename"
    );
    let pending = std::fs::read(agent_dir.join("data/agent-data.json.tmp")).unwrap();
    assert_eq!(
        roots(&pending),
        2,
        "the kill landed after the new state was written"
    );

    let started = Instant::now();
    let mut agent = start_agent(&agent_dir, &[]);
    let resumed = started.elapsed();
    agent.wait_for("the new bundle stored", || {
        let state = std::fs::read(&state_path).ok()?;
        (serde_json::from_slice::<serde_json::Value>(&state).is_ok() && roots(&state) == 2)
            .then_some(())
    });
    // Resumed, not attested again (the join token is spent): the SVID is the stored one.
    let now: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let before: serde_json::Value = serde_json::from_slice(&old).unwrap();
    assert_eq!(now["svid"], before["svid"]);
    println!(
        "kill -9 of the agent between writing agent-data.json.tmp and renaming it: the file \
         found after the kill was the old one, byte for byte ({} bytes, 1 root; the \
         unrenamed new state had 2); the agent resumed from it in {:.1} s without attesting \
         and stored the new bundle",
        old.len(),
        resumed.as_secs_f64()
    );
}
