//! End to end: the seed's manual registrations with their exact ≥ 1.15 output, `entry show`
//! filters, `-output json`, update/delete, restart persistence and the socket environment.
//! Run with `cargo test -p spire-server --test cli_entry`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn seed_registration_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());

    let [node, ingress, sleep] = register_seed_entries(&server);
    assert_eq!(mask_ids(&node), NODE_ALIAS);
    assert_eq!(mask_ids(&ingress), ingress_block());
    assert_eq!(mask_ids(&sleep), sleep_block());

    // `entry show` as in the seed's verification step: sorted by SPIFFE ID.
    let shown = ok(&server.cli(&["entry", "show"]));
    assert_eq!(
        mask_ids(&shown),
        format!(
            "Found 3 entries\n{}{}{NODE_ALIAS}",
            sleep_block(),
            ingress_block()
        )
    );
    assert_eq!(
        ok(&server.cli(&["entry", "count"])),
        "3 registration entries\n"
    );

    // A similar entry fails on stderr with the requested block, exit 1.
    let dup = server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/ns/default/sa/sleep",
        "-parentID",
        "spiffe://example.org/ns/spire/sa/spire-agent",
        "-selector",
        "k8s:ns:default",
        "-selector",
        &format!("k8s:pod-uid:{SLEEP_POD_UID}"),
    ]);
    assert_eq!(dup.status.code(), Some(1));
    assert_eq!(stdout(&dup), "");
    assert_eq!(
        stderr(&dup),
        format!(
            "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry already exists\"):\n\
             Entry ID                : (none)\n\
             SPIFFE ID               : spiffe://example.org/ns/default/sa/sleep\n\
             Parent ID               : spiffe://example.org/ns/spire/sa/spire-agent\n\
             Revision                : 0\n\
             X509-SVID TTL           : default\n\
             JWT-SVID TTL            : default\n\
             Selector                : k8s:ns:default\n\
             Selector                : k8s:pod-uid:{SLEEP_POD_UID}\n\
             \n\
             Error: failed to create one or more entries\n"
        )
    );
    drop(server);
}

#[test]
fn show_filters_json_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let [_, ingress, sleep] = register_seed_entries(&server);

    let by_spiffe = ok(&server.cli(&[
        "entry",
        "show",
        "-spiffeID",
        "spiffe://example.org/ns/default/sa/sleep",
    ]));
    assert_eq!(
        mask_ids(&by_spiffe),
        format!("Found 1 entry\n{}", sleep_block())
    );

    let by_parent = ok(&server.cli(&[
        "entry",
        "show",
        "-parentID",
        "spiffe://example.org/ns/spire/sa/spire-agent",
    ]));
    assert_eq!(
        mask_ids(&by_parent),
        format!("Found 2 entries\n{}{}", sleep_block(), ingress_block())
    );

    let by_selector = ok(&server.cli(&["entry", "show", "-selector", "k8s:ns:default"]));
    assert_eq!(
        mask_ids(&by_selector),
        format!("Found 1 entry\n{}", sleep_block())
    );

    let exact_miss = ok(&server.cli(&[
        "entry",
        "show",
        "-selector",
        "k8s:ns:default",
        "-matchSelectorsOn",
        "exact",
    ]));
    assert_eq!(exact_miss, "Found 0 entries\n");

    let any = ok(&server.cli(&[
        "entry",
        "show",
        "-selector",
        "k8s:ns:default",
        "-selector",
        "k8s_psat:agent_ns:spire",
        "-matchSelectorsOn",
        "any",
    ]));
    assert!(any.starts_with("Found 2 entries\n"), "{any}");

    let id = entry_id_of(&ingress);
    let by_id = ok(&server.cli(&["entry", "show", "-entryID", &id]));
    assert_eq!(
        by_id,
        format!("Found 1 entry\n{}", ingress_block().replace("<ID>", &id))
    );

    let missing = server.cli(&["entry", "show", "-entryID", "no-such-entry"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with(
            "Error: error fetching entry ID no-such-entry: rpc error: code = NotFound desc = "
        ),
        "{}",
        stderr(&missing)
    );

    assert_eq!(
        ok(&server.cli(&["entry", "count", "-selector", "k8s:ns:default"])),
        "1 registration entry\n"
    );

    // -output json: one line of protojson with proto names, int64 as strings.
    let json = ok(&server.cli(&[
        "entry",
        "show",
        "-spiffeID",
        "spiffe://example.org/ns/default/sa/sleep",
        "-output",
        "json",
    ]));
    assert_eq!(json.lines().count(), 1);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["next_page_token"], "");
    let entry = &value["entries"][0];
    assert_eq!(entry["id"], entry_id_of(&sleep).as_str());
    assert_eq!(entry["spiffe_id"]["trust_domain"], "example.org");
    assert_eq!(entry["spiffe_id"]["path"], "/ns/default/sa/sleep");
    assert_eq!(entry["revision_number"], "0");
    assert!(entry["created_at"].is_string());
    assert_eq!(entry["x509_svid_ttl"], 0);
    assert_eq!(entry["admin"], false);
    assert_eq!(entry["dns_names"], serde_json::json!([SLEEP_POD]));
    assert_eq!(entry["federates_with"], serde_json::json!([]));

    let created = ok(&server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/json",
        "-parentID",
        "spiffe://example.org/spire/server",
        "-selector",
        "unix:uid:1000",
        "-x509SVIDTTL",
        "120",
        "-admin=true",
        "-output",
        "json",
    ]));
    let value: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(value["results"][0]["status"]["code"], 0);
    assert_eq!(value["results"][0]["status"]["message"], "OK");
    assert_eq!(value["results"][0]["entry"]["x509_svid_ttl"], 120);
    assert_eq!(value["results"][0]["entry"]["admin"], true);
    let json_id = value["results"][0]["entry"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let count = ok(&server.cli(&["entry", "count", "-output", "json"]));
    assert_eq!(count, "{\"count\":4}\n");

    // Update, then delete.
    let updated = ok(&server.cli(&[
        "entry",
        "update",
        "-entryID",
        &json_id,
        "-spiffeID",
        "spiffe://example.org/json",
        "-parentID",
        "spiffe://example.org/spire/server",
        "-selector",
        "unix:uid:1001",
        "-hint",
        "h1",
    ]));
    assert!(
        updated.contains("Selector                : unix:uid:1001\n"),
        "{updated}"
    );
    assert!(
        updated.contains("Hint                    : h1\n"),
        "{updated}"
    );
    assert!(
        updated.contains("Revision                : 1\n"),
        "{updated}"
    );

    let deleted = ok(&server.cli(&["entry", "delete", "-entryID", &json_id]));
    assert_eq!(
        deleted,
        format!("Deleted entry with ID: {json_id}\n\n\nDeleted 1 entries successfully")
    );
    assert_eq!(
        ok(&server.cli(&["entry", "count"])),
        "3 registration entries\n"
    );
}

#[test]
fn entries_survive_restart_and_env_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let [node, _, _] = register_seed_entries(&server);
    let id = entry_id_of(&node);
    let socket = server.socket.clone();
    server.stop();

    let down = Command::new(BIN)
        .args(["entry", "show", "-socketPath"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down)
            .starts_with("Error: error fetching entries: rpc error: code = Unavailable desc = "),
        "{}",
        stderr(&down)
    );

    let server = Server::start(tmp.path());
    let shown = ok(&server.cli(&["entry", "show", "-entryID", &id]));
    assert_eq!(
        shown,
        format!("Found 1 entry\n{}", NODE_ALIAS.replace("<ID>", &id))
    );

    // SPIRE_SERVER_PRIVATE_SOCKET replaces the default socket path.
    let via_env = Command::new(BIN)
        .args(["entry", "count"])
        .env("SPIRE_SERVER_PRIVATE_SOCKET", &server.socket)
        .env_remove("SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE")
        .output()
        .unwrap();
    assert_eq!(ok(&via_env), "3 registration entries\n");

    // -instance fills SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE.
    let template = server.socket.to_str().unwrap().replace("/sock/", "/%i/");
    let via_instance = Command::new(BIN)
        .args(["entry", "count", "-instance", "sock"])
        .env("SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE", template)
        .env_remove("SPIRE_SERVER_PRIVATE_SOCKET")
        .output()
        .unwrap();
    assert_eq!(ok(&via_instance), "3 registration entries\n");
}
