use super::*;
use crate::Overrides;

/// A server on an ephemeral port with everything under `dir`.
fn config(dir: &std::path::Path) -> ServerConfig {
    let text = format!(
        r#"
server {{
    bind_address = "127.0.0.1"
    bind_port = "0"
    socket_path = "{dir}/private/api.sock"
    trust_domain = "example.org"
    data_dir = "{dir}"
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
    );
    ServerConfig::from_text(&text, &Overrides::default()).unwrap()
}

#[tokio::test]
async fn a_task_that_panics_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let socket = config.socket_path.clone();
    let stop = Shutdown::new();
    let clock: SharedClock = Arc::new(spire_time::SystemClock);

    // Once the whole server is started, one more supervised task hits a bug.
    let error = run_with(config, clock, stop.clone(), |tasks| {
        tasks.spawn("injected-fault", async {
            let chain: Vec<Vec<u8>> = Vec::new();
            let _leaf = chain.first().expect("no server SVID in the chain");
        });
    })
    .await
    .unwrap_err();

    match &error {
        Error::Task(spire_task::Error::Panicked { task, message }) => {
            assert_eq!(*task, "injected-fault");
            assert_eq!(message, "no server SVID in the chain");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "task \"injected-fault\" panicked: no server SVID in the chain"
    );
    assert!(stop.is_stopped(), "the failure stops everything else");
    assert!(!socket.exists(), "the admin socket is removed as on a stop");
}
