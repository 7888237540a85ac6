//! Shared by the app's end-to-end tests: a server configuration in a temp dir and a TLS client
//! that records (rather than judges) the server's certificate.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // test-only helpers

use std::path::Path;
use std::sync::Arc;

/// A server config on 127.0.0.1:`port` with its socket, SQLite file and keys under `dir`;
/// `server_extra` is added inside `server {}`.
pub fn config_text(dir: &Path, port: u16, server_extra: &str) -> String {
    format!(
        r#"
server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{dir}/private/api.sock"
    trust_domain = "example.org"
    data_dir = "{dir}"
    {server_extra}
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{dir}/datastore.sqlite3"
        }}
    }}
    KeyManager "disk" {{
        plugin_data = {{ keys_path = "{dir}/keys.json" }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#,
        dir = dir.display()
    )
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub use spire_test::tls::CaptureServerCert;

/// A rustls client config (h2) that trusts any server via `verifier`.
pub fn client_builder(
    verifier: Arc<CaptureServerCert>,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(verifier)
}
