//! Files the CLIs write: PEM bundles and keys, with explicit modes.

use std::io::Write as _;
use std::path::Path;

/// DER blobs as concatenated PEM blocks of `tag` (LF line endings, as Go's `pem.Encode`).
pub fn pem_blocks<'a>(tag: &str, ders: impl IntoIterator<Item = &'a [u8]>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    ders.into_iter()
        .map(|der| pem::encode_config(&pem::Pem::new(tag, der), config))
        .collect()
}

/// Writes `data` to `path` with `mode` (also tightening an existing file's mode).
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(data)?;
    file.sync_all()
}
