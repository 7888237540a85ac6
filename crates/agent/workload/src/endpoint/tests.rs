use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

use super::*;

fn config(path: PathBuf) -> EndpointConfig {
    EndpointConfig {
        socket_path: path,
        ..EndpointConfig::default()
    }
}

#[test]
fn defaults_are_spire_s() {
    let config = EndpointConfig::default();
    assert_eq!(
        config.socket_path,
        Path::new("/tmp/spire-agent/public/api.sock")
    );
    assert!(!config.allow_unauthenticated_verifiers);
}

#[tokio::test]
async fn bind_creates_the_directory_and_a_world_writable_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spire-agent/public/api.sock");
    let endpoint = Endpoint::bind(config(path.clone())).unwrap();
    assert_eq!(endpoint.socket_path(), path);

    let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert!(parent.is_dir());
    assert_eq!(
        parent.permissions().mode() & 0o7022,
        0,
        "no more than 0755 (umask may remove more)"
    );
    let socket = std::fs::symlink_metadata(&path).unwrap();
    assert!(socket.file_type().is_socket());
    assert_eq!(socket.permissions().mode() & 0o7777, 0o777);
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    drop(Endpoint::bind(config(path.clone())).unwrap());
    assert!(path.exists(), "the stale socket file stays behind");
    let again = Endpoint::bind(config(path.clone())).unwrap();
    drop(again);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"data").unwrap();
    let error = Endpoint::bind(config(file.clone())).unwrap_err();
    assert!(matches!(error, Error::Socket { .. }), "{error}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
}
