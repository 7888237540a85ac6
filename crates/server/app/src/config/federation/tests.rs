use std::path::PathBuf;
use std::time::Duration;

use spire_id::{SpiffeId, TrustDomain};
use spire_server_datastore::BundleEndpointProfile;

use super::*;
use crate::{Overrides, ServerConfig};

/// A minimal server configuration with `federation` inside `server { }`.
fn load(federation: &str) -> Result<ServerConfig, Error> {
    let text = format!(
        r#"server {{
    trust_domain = "example.org"
    {federation}
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "/tmp/none.sqlite3"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#
    );
    ServerConfig::from_text(&text, &Overrides::default())
}

fn error(federation: &str) -> String {
    load(federation).unwrap_err().to_string()
}

#[test]
fn absent_section_serves_and_federates_nothing() {
    let config = load("").unwrap();
    assert_eq!(config.federation, FederationConfig::default());
}

#[test]
fn spire_full_example_resolves() {
    // The shape of SPIRE's server_full.conf federation block.
    let config = load(
        r#"federation {
        bundle_endpoint {
            address = "127.0.0.1"
            port = 8443
            refresh_hint = "10m"
            profile "https_web" {
                serving_cert_file {
                    cert_file_path = "/etc/spire/bundle.crt"
                    key_file_path = "/etc/spire/bundle.key"
                    file_sync_interval = "30s"
                }
            }
        }
        federates_with "domain1.test" {
            bundle_endpoint_url = "https://1.2.3.4:8443"
            bundle_endpoint_profile "https_web" {}
        }
        federates_with "domain2.test" {
            bundle_endpoint_url = "https://5.6.7.8:8443"
            bundle_endpoint_profile "https_spiffe" {
                endpoint_spiffe_id = "spiffe://domain3.test/spire/server"
            }
        }
    }"#,
    )
    .unwrap();
    let endpoint = config.federation.bundle_endpoint.unwrap();
    assert_eq!(endpoint.address, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(endpoint.refresh_hint, Duration::from_secs(600));
    assert!(!endpoint.profile_defaulted);
    assert_eq!(
        endpoint.profile,
        EndpointProfile::ServingCertFile {
            cert_file_path: PathBuf::from("/etc/spire/bundle.crt"),
            key_file_path: PathBuf::from("/etc/spire/bundle.key"),
            file_sync_interval: Duration::from_secs(30),
        }
    );
    let relationships = config.federation.federates_with;
    assert_eq!(relationships.len(), 2);
    assert_eq!(
        relationships[0].trust_domain,
        TrustDomain::new("domain1.test").unwrap()
    );
    assert_eq!(relationships[0].bundle_endpoint_url, "https://1.2.3.4:8443");
    assert_eq!(relationships[0].profile, BundleEndpointProfile::HttpsWeb);
    assert_eq!(
        relationships[1].profile,
        BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: SpiffeId::parse("spiffe://domain3.test/spire/server").unwrap()
        }
    );
    assert!(
        relationships
            .iter()
            .all(|r| r.trust_domain_bundle.is_none())
    );
}

#[test]
fn bundle_endpoint_without_profile_is_https_spiffe_with_spire_defaults() {
    let config = load("federation {\n bundle_endpoint {}\n }").unwrap();
    let endpoint = config.federation.bundle_endpoint.unwrap();
    assert_eq!(endpoint.address, "0.0.0.0:443".parse().unwrap());
    assert_eq!(endpoint.refresh_hint, Duration::from_secs(300));
    assert_eq!(endpoint.profile, EndpointProfile::HttpsSpiffe);
    assert!(endpoint.profile_defaulted);

    let config = load(
        "federation {\n bundle_endpoint {\n port = \"8443\"\n profile \"https_spiffe\" {}\n }\n }",
    )
    .unwrap();
    let endpoint = config.federation.bundle_endpoint.unwrap();
    assert_eq!(endpoint.address.port(), 8443);
    assert_eq!(endpoint.profile, EndpointProfile::HttpsSpiffe);
    assert!(!endpoint.profile_defaulted);
}

#[test]
fn json_form_resolves() {
    let text = r#"{
        "server": [{
            "trust_domain": "example.org",
            "federation": [{
                "bundle_endpoint": [{"address": "::1", "port": 8443, "profile": [{"https_spiffe": [{}]}]}],
                "federates_with": [{"other.test": [{
                    "bundle_endpoint_url": "https://other.test:8443",
                    "bundle_endpoint_profile": [{"https_spiffe": [{"endpoint_spiffe_id": "spiffe://other.test/spire/server"}]}]
                }]}]
            }]
        }],
        "plugins": [{
            "DataStore": [{"sql": [{"plugin_data": [{"database_type": "sqlite3", "connection_string": "/tmp/x"}]}]}],
            "KeyManager": [{"memory": [{"plugin_data": [{}]}]}],
            "NodeAttestor": [{"join_token": [{"plugin_data": [{}]}]}]
        }]
    }"#;
    let config = ServerConfig::from_text(text, &Overrides::default()).unwrap();
    let endpoint = config.federation.bundle_endpoint.unwrap();
    assert_eq!(endpoint.address, "[::1]:8443".parse().unwrap());
    assert_eq!(endpoint.profile, EndpointProfile::HttpsSpiffe);
    assert_eq!(config.federation.federates_with.len(), 1);
}

#[test]
fn acme_is_refused_with_a_clear_message() {
    let message = error(
        r#"federation {
        bundle_endpoint {
            profile "https_web" {
                acme {
                    domain_name = "example.org"
                    email = "admin@example.org"
                    tos_accepted = true
                }
            }
        }
    }"#,
    );
    assert!(
        message.contains("\"acme\" is not supported by spire-rs"),
        "{message}"
    );
    assert!(message.contains("serving_cert_file"), "{message}");
    // The deprecated top-level form too.
    let message = error("federation {\n bundle_endpoint {\n acme { domain_name = \"x\" }\n }\n }");
    assert!(
        message.contains("\"acme\" is not supported by spire-rs"),
        "{message}"
    );
}

#[test]
fn invalid_settings_name_the_key() {
    for (federation, expected) in [
        (
            "federation {\n bundle_endpoint {\n address = \"localhost\"\n }\n }",
            "federation.bundle_endpoint.address \"localhost\" is not an IP address",
        ),
        (
            "federation {\n bundle_endpoint {\n profile \"https_web\" {}\n }\n }",
            "one of \"acme\" or \"serving_cert_file\" must be configured",
        ),
        (
            "federation {\n bundle_endpoint {\n profile \"https_web\" {\n serving_cert_file {\n cert_file_path = \"/a\"\n }\n }\n }\n }",
            "serving_cert_file.key_file_path must be set",
        ),
        (
            "federation {\n bundle_endpoint {\n profile \"https_spiffe\" {\n endpoint_spiffe_id = \"x\"\n }\n }\n }",
            "federation.bundle_endpoint.profile.https_spiffe.endpoint_spiffe_id",
        ),
        (
            "federation {\n bundle_endpoint {\n profile \"mtls\" {}\n }\n }",
            "unknown bundle endpoint profile \"mtls\"",
        ),
        (
            "federation {\n federates_with \"other.test\" {\n bundle_endpoint_profile \"https_web\" {}\n }\n }",
            "federation.federates_with[\"other.test\"].bundle_endpoint_url must be set",
        ),
        (
            "federation {\n federates_with \"other.test\" {\n bundle_endpoint_url = \"http://other.test\"\n bundle_endpoint_profile \"https_web\" {}\n }\n }",
            "must use the https scheme",
        ),
        (
            "federation {\n federates_with \"other.test\" {\n bundle_endpoint_url = \"https://other.test\"\n }\n }",
            "federation.federates_with[\"other.test\"].bundle_endpoint_profile must be configured",
        ),
        (
            "federation {\n federates_with \"other.test\" {\n bundle_endpoint_url = \"https://other.test\"\n bundle_endpoint_profile \"https_spiffe\" {}\n }\n }",
            "endpoint_spiffe_id \"\" is not a valid SPIFFE ID",
        ),
        (
            "federation {\n federates_with \"Not A TD\" {\n bundle_endpoint_url = \"https://other.test\"\n bundle_endpoint_profile \"https_web\" {}\n }\n }",
            "is not a valid trust domain name",
        ),
    ] {
        let message = error(federation);
        assert!(message.contains(expected), "{federation}\n=> {message}");
    }
}
