//! Binding a Unix listener: parent directory, stale socket, permissions.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::Path;

use tokio::net::UnixListener;

use crate::Error;

/// Binds a Unix listener at `path` (inside a tokio runtime).
///
/// A missing parent directory is created (recursively) with `dir_mode`; an existing directory
/// keeps its mode. A stale socket file at `path` is removed; any other kind of file there is
/// an error ([`Error::NotASocket`]) and is left alone. The socket gets `socket_mode` (SPIRE:
/// agent public socket 0777, server admin socket 0770).
pub fn bind(path: &Path, dir_mode: u32, socket_mode: u32) -> Result<UnixListener, Error> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path)
            .map_err(|e| Error::io(format!("removing stale {}", path.display()), e))?,
        Ok(_) => return Err(Error::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("inspecting {}", path.display()), e)),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("binding {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(socket_mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn creates_directory_and_sets_modes_and_replaces_stale_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("public/api.sock");
        drop(bind(&path, 0o755, 0o777).unwrap()); // leaves the socket file behind
        let _again = bind(&path, 0o755, 0o777).unwrap();
        assert_eq!(mode(&path), 0o777);
        assert_eq!(mode(path.parent().unwrap()), 0o755);
    }

    #[tokio::test]
    async fn refuses_to_remove_a_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("api.sock");
        fs::write(&path, b"precious").unwrap();
        let err = bind(&path, 0o750, 0o770).unwrap_err();
        assert!(matches!(err, Error::NotASocket(_)), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    }
}
