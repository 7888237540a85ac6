//! The admin Unix socket: directory 0750, socket 0770 (SPIRE's modes), stale socket replaced,
//! served through `spire-uds`'s `:authority` adapter like every Unix socket we own, so gRPC
//! C-core clients (grpcio, grpc-java) that send the socket path as `:authority` are answered.

use std::path::Path;

use tokio::net::UnixListener;

use crate::Error;

/// Binds the admin socket at `path`, creating its directory (0750) if needed.
pub(crate) fn bind_admin_socket(path: &Path) -> Result<UnixListener, Error> {
    spire_uds::bind(path, 0o750, 0o770).map_err(|source| Error::AdminSocket { source })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn socket_and_directory_get_spire_modes_and_stale_sockets_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private/api.sock");
        let first = bind_admin_socket(&path).unwrap();
        drop(first); // leaves the socket file behind, as a crash would
        let _second = bind_admin_socket(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o770);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
    }
}
