//! End to end: `federation create|update|list|show|delete|refresh` against a real server,
//! with SPIRE's exact pretty output, `-output json`, both endpoint profiles, bundles given as
//! PEM and SPIFFE files and inside `-data` (file and stdin), and the client-side errors.
//! Run with `cargo test -p spire-server --test cli_federation`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn web_block(td: &str, url: &str) -> String {
    format!(
        "Trust domain              : {td}\n\
         Bundle endpoint URL       : {url}\n\
         Bundle endpoint profile   : https_web\n"
    )
}

fn spiffe_block(td: &str, url: &str, id: &str) -> String {
    format!(
        "Trust domain              : {td}\n\
         Bundle endpoint URL       : {url}\n\
         Bundle endpoint profile   : https_spiffe\n\
         Endpoint SPIFFE ID        : {id}\n"
    )
}

#[track_caller]
fn fails(out: &Output) -> (String, String) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    (stdout(out), stderr(out))
}

/// Runs a client command with `input` on stdin.
fn cli_with_stdin(server: &Server, args: &[&str], input: &str) -> Output {
    let (verb, rest) = split_verb(args);
    let mut child = Command::new(BIN)
        .args(verb)
        .arg("-socketPath")
        .arg(&server.socket)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn create_list_show_update_delete_refresh() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    assert_eq!(
        ok(&server.cli(&["federation", "list"])),
        "Found 0 federation relationships\n"
    );

    // Another trust domain's bundle, bootstrapped from files in both formats (this server's
    // own roots stand in for the remote CA).
    let pem = ok(&server.cli(&["bundle", "show"]));
    let doc = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));
    let pem_path = write(tmp.path(), "remote.pem", &pem);
    let doc_path = write(tmp.path(), "remote.json", &doc);

    let web = ok(&server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "web.org",
        "-bundleEndpointURL",
        "https://web.org/bundle",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    assert_eq!(
        web,
        format!("\n{}", web_block("web.org", "https://web.org/bundle"))
    );

    let created = ok(&server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "pem.org",
        "-bundleEndpointURL",
        "https://127.0.0.1:8443",
        "-bundleEndpointProfile",
        "https_spiffe",
        "-endpointSpiffeID",
        "spiffe://pem.org/spire/server",
        "-trustDomainBundlePath",
        &pem_path,
    ]));
    assert_eq!(
        created,
        format!(
            "\n{}",
            spiffe_block(
                "pem.org",
                "https://127.0.0.1:8443",
                "spiffe://pem.org/spire/server"
            )
        )
    );
    assert_eq!(
        ok(&server.cli(&["bundle", "list", "-id", "pem.org"])),
        pem,
        "the PEM bundle was stored for pem.org"
    );

    ok(&server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "spiffe.org",
        "-bundleEndpointURL",
        "https://127.0.0.1:8444/",
        "-bundleEndpointProfile",
        "https_spiffe",
        "-endpointSpiffeID",
        "spiffe://spiffe.org/spire/server",
        "-trustDomainBundlePath",
        &doc_path,
        "-trustDomainBundleFormat",
        "spiffe",
    ]));
    assert_eq!(
        ok(&server.cli(&["bundle", "list", "-id", "spiffe.org", "-format", "spiffe"])),
        doc,
        "the SPIFFE bundle document was stored for spiffe.org"
    );

    // The server refuses a bundle parsed for another trust domain than the relationship's,
    // and our own trust domain; the request's relationship goes to stderr.
    let refused = server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "other.org",
        "-bundleEndpointURL",
        "https://other.org",
        "-bundleEndpointProfile",
        "https_spiffe",
        "-endpointSpiffeID",
        "spiffe://third.org/spire/server",
        "-trustDomainBundlePath",
        &pem_path,
    ]);
    let (out, err) = fails(&refused);
    assert_eq!(out, "\n");
    assert_eq!(
        err,
        format!(
            "Failed to create the following federation relationship (code: InvalidArgument, msg: \"failed to convert federation relationship: trust domain bundle (\\\"third.org\\\") must match the trust domain of the federation relationship (\\\"other.org\\\")\"):\n{}Error: failed to create one or more federation relationships\n",
            spiffe_block(
                "other.org",
                "https://other.org",
                "spiffe://third.org/spire/server"
            )
        )
    );
    let (_, err) = fails(&server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "example.org",
        "-bundleEndpointURL",
        "https://example.org",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    assert!(
        err.starts_with(
            "Failed to create the following federation relationship (code: InvalidArgument, msg: \"unable to create federation relationship for server trust domain\"):\n"
        ),
        "{err}"
    );

    let listed = ok(&server.cli(&["federation", "list"]));
    assert_eq!(
        listed,
        format!(
            "Found 3 federation relationships\n\n{}\n{}\n{}",
            spiffe_block(
                "pem.org",
                "https://127.0.0.1:8443",
                "spiffe://pem.org/spire/server"
            ),
            spiffe_block(
                "spiffe.org",
                "https://127.0.0.1:8444/",
                "spiffe://spiffe.org/spire/server"
            ),
            web_block("web.org", "https://web.org/bundle"),
        )
    );

    assert_eq!(
        ok(&server.cli(&["federation", "show", "-trustDomain", "web.org"])),
        format!(
            "Found a federation relationship with trust domain web.org:\n\n{}",
            web_block("web.org", "https://web.org/bundle")
        )
    );
    assert_eq!(
        ok(&server.cli(&[
            "federation",
            "show",
            "-trustDomain",
            "web.org",
            "-output",
            "json"
        ])),
        "{\"bundle_endpoint_url\":\"https://web.org/bundle\",\"https_web\":{},\"trust_domain\":\"web.org\"}\n"
    );
    let (_, err) = fails(&server.cli(&["federation", "show", "-trustDomain", "nope.org"]));
    assert_eq!(
        err,
        "Error: error showing federation relationship: rpc error: code = NotFound desc = federation relationship does not exist\n"
    );

    // Update: a new URL, then a relationship that does not exist (SPIRE's Internal).
    let updated = ok(&server.cli(&[
        "federation",
        "update",
        "-trustDomain",
        "web.org",
        "-bundleEndpointURL",
        "https://web.org/v2",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    assert_eq!(
        updated,
        format!("\n{}", web_block("web.org", "https://web.org/v2"))
    );
    let (out, err) = fails(&server.cli(&[
        "federation",
        "update",
        "-trustDomain",
        "ghost.org",
        "-bundleEndpointURL",
        "https://ghost.org",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    assert_eq!(out, "\n");
    assert_eq!(
        err,
        format!(
            "Failed to update the following federation relationship (code: Internal, msg: \"failed to update federation relationship: unable to fetch federation relationship: record not found\"):\n{}Error: failed to update one or more federation relationships\n",
            web_block("ghost.org", "https://ghost.org")
        )
    );

    // Delete keeps the bundle; deleting again reports SPIRE's message.
    assert_eq!(
        ok(&server.cli(&["federation", "delete", "-id", "pem.org"])),
        "federation relationship deleted.\n"
    );
    let (_, err) = fails(&server.cli(&["federation", "delete", "-id", "pem.org"]));
    assert_eq!(
        err,
        "Error: failed to delete federation relationship \"pem.org\": federation relationship not found\n"
    );
    assert_eq!(ok(&server.cli(&["bundle", "list", "-id", "pem.org"])), pem);
    assert_eq!(
        ok(&server.cli(&["federation", "delete", "-id", "web.org", "-output", "json"])),
        "{\"results\":[{\"status\":{\"code\":0,\"message\":\"OK\"},\"trust_domain\":\"web.org\"}]}\n"
    );

    // Refresh: no refresher answers for this trust domain.
    let (_, err) = fails(&server.cli(&["federation", "refresh", "-id", "unknown.org"]));
    assert_eq!(
        err,
        "Error: there is no federation relationship with trust domain \"unknown.org\"\n"
    );
    let (_, err) = fails(&server.cli(&["federation", "refresh", "-id", "bad td"]));
    assert_eq!(
        err,
        "Error: failed to refresh bundle: rpc error: code = InvalidArgument desc = failed to parse trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores\n"
    );
    drop(server);
}

#[test]
fn data_files_json_output_and_client_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let pem = ok(&server.cli(&["bundle", "show"]));
    let doc = ok(&server.cli(&["bundle", "show", "-format", "spiffe"]));

    let data = serde_json::json!({
        "federationRelationships": [
            {
                "trustDomain": "td-1.org",
                "bundleEndpointURL": "https://td-1.org/bundle",
                "bundleEndpointProfile": "https_web"
            },
            {
                "trustDomain": "td-2.org",
                "bundleEndpointURL": "https://td-2.org/bundle",
                "bundleEndpointProfile": "https_spiffe",
                "endpointSPIFFEID": "spiffe://td-2.org/bundle-endpoint",
                "trustDomainBundle": pem,
                "trustDomainBundleFormat": "pem"
            },
            {
                "trustDomain": "example.org",
                "bundleEndpointURL": "https://example.org",
                "bundleEndpointProfile": "https_web"
            }
        ]
    });
    let path = write(tmp.path(), "relationships.json", &data.to_string());
    let (out, err) = fails(&server.cli(&["federation", "create", "-data", &path]));
    assert_eq!(
        out,
        format!(
            "\n{}\n{}\n",
            web_block("td-1.org", "https://td-1.org/bundle"),
            spiffe_block(
                "td-2.org",
                "https://td-2.org/bundle",
                "spiffe://td-2.org/bundle-endpoint"
            )
        ),
        "the accepted items print; the refused one leaves a blank line"
    );
    assert_eq!(
        err,
        format!(
            "Failed to create the following federation relationship (code: InvalidArgument, msg: \"unable to create federation relationship for server trust domain\"):\n{}Error: failed to create one or more federation relationships\n",
            web_block("example.org", "https://example.org")
        )
    );
    assert_eq!(ok(&server.cli(&["bundle", "list", "-id", "td-2.org"])), pem);

    // Update from stdin, the bundle as a SPIFFE document, JSON output.
    let doc_value: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let update = serde_json::json!({
        "federationRelationships": [{
            "trustDomain": "td-2.org",
            "bundleEndpointURL": "https://td-2.org/v2",
            "bundleEndpointProfile": "https_spiffe",
            "endpointSPIFFEID": "spiffe://td-2.org/bundle-endpoint",
            "trustDomainBundle": doc_value,
            "trustDomainBundleFormat": "spiffe"
        }]
    });
    let out = ok(&cli_with_stdin(
        &server,
        &["federation", "update", "-data", "-", "-output", "json"],
        &update.to_string(),
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let result = &json["results"][0];
    assert_eq!(
        result["status"],
        serde_json::json!({"code": 0, "message": "OK"})
    );
    let relationship = &result["federation_relationship"];
    assert_eq!(relationship["trust_domain"], "td-2.org");
    assert_eq!(relationship["bundle_endpoint_url"], "https://td-2.org/v2");
    assert_eq!(
        relationship["https_spiffe"],
        serde_json::json!({"endpoint_spiffe_id": "spiffe://td-2.org/bundle-endpoint"})
    );
    assert_eq!(
        relationship["trust_domain_bundle"]["trust_domain"],
        "td-2.org"
    );

    let listed: serde_json::Value =
        serde_json::from_str(&ok(&server.cli(&["federation", "list", "-output", "json"]))).unwrap();
    let names: Vec<&str> = listed["federation_relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["trust_domain"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["td-1.org", "td-2.org"]);
    assert_eq!(listed["next_page_token"], "");

    // Client-side checks, before anything is sent.
    let error = |args: &[&str]| fails(&server.cli(args)).1;
    assert_eq!(
        error(&["federation", "create"]),
        "Error: trust domain is required\n"
    );
    assert_eq!(
        error(&[
            "federation",
            "create",
            "-data",
            &path,
            "-trustDomain",
            "a.org"
        ]),
        "Error: cannot use other flags to specify relationship fields when 'data' flag is set\n"
    );
    assert_eq!(
        error(&[
            "federation",
            "create",
            "-trustDomain",
            "a.org",
            "-bundleEndpointURL",
            "https://a.org",
            "-bundleEndpointProfile",
            "https",
        ]),
        "Error: unknown bundle endpoint profile type: \"https\"\n"
    );
    assert_eq!(
        error(&[
            "federation",
            "update",
            "-trustDomain",
            "a.org",
            "-bundleEndpointURL",
            "https://a.org",
            "-bundleEndpointProfile",
            "https_spiffe",
        ]),
        "Error: endpoint SPIFFE ID is required if 'https_spiffe' endpoint profile is set\n"
    );
    let missing = tmp.path().join("missing.json");
    assert_eq!(
        error(&["federation", "create", "-data", missing.to_str().unwrap()]),
        format!(
            "Error: open {}: no such file or directory\n",
            missing.display()
        )
    );
    assert_eq!(
        error(&["federation", "show"]),
        "Error: a trust domain name is required\n"
    );
    assert_eq!(error(&["federation", "delete"]), "Error: id is required\n");
    assert_eq!(error(&["federation", "refresh"]), "Error: id is required\n");

    // The server's URL checks come back per item.
    let (_, err) = fails(&server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "a.org",
        "-bundleEndpointURL",
        "http://a.org",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    assert!(
        err.starts_with(
            "Failed to create the following federation relationship (code: InvalidArgument, msg: \"failed to convert federation relationship: bundle endpoint URL must use the https scheme\"):\n"
        ),
        "{err}"
    );
    drop(server);
}
