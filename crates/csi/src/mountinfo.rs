//! Reading `/proc/self/mountinfo`: is a path a mount point?
//!
//! Each line describes one mount (proc(5)); field 5 is the mount point relative to the
//! process's root, with space, tab, newline and backslash written as `\ooo` octal escapes.
//! Lines with fewer than five fields are skipped, as spiffe-csi does.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// The mount table of the calling process.
pub const PROC_SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// Whether `path` is the mount point of some mount in the table at `mountinfo`. A path that
/// resolves elsewhere through symlinks is also looked up by its resolved form, which is the
/// one the kernel reports.
pub fn is_mount_point(mountinfo: &Path, path: &Path) -> io::Result<bool> {
    let table = std::fs::read(mountinfo)?;
    let resolved = std::fs::canonicalize(path).ok();
    Ok(mount_points(&table).any(|point| {
        let point = Path::new(OsStr::from_bytes(&point));
        point == path || resolved.as_deref() == Some(point)
    }))
}

/// The mount points (field 5, unescaped) of a mountinfo table, in order.
pub fn mount_points(table: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    table.split(|&b| b == b'\n').filter_map(|line| {
        line.split(|b| b.is_ascii_whitespace())
            .filter(|field| !field.is_empty())
            .nth(4)
            .map(unescape_octal)
    })
}

/// Replaces every `\ooo` (three octal digits, at most `\377`) with the byte it stands for;
/// anything else is kept as it is.
pub fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'\\'
            && let Some(byte) = tail.get(..3).and_then(octal_byte)
        {
            out.push(byte);
            rest = &tail[3..];
            continue;
        }
        out.push(first);
        rest = tail;
    }
    out
}

/// Three octal digits as one byte, if they are octal digits and fit in a byte.
fn octal_byte(digits: &[u8]) -> Option<u8> {
    let mut value: u16 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value * 8 + u16::from(d - b'0');
    }
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
41 22 0:40 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/workload-socket/mount rw shared:2 - ext4 /dev/sda1 rw
42 22 0:41 /data /mnt/with\\040space\\011tab rw - tmpfs tmpfs rw
43 22 0:42 / /back\\134slash rw - tmpfs tmpfs rw
short line
";

    #[test]
    fn field_five_is_the_unescaped_mount_point() {
        let points: Vec<String> = mount_points(TABLE.as_bytes())
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(
            points,
            [
                "/",
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/workload-socket/mount",
                "/mnt/with space\ttab",
                "/back\\slash",
            ]
        );
    }

    #[test]
    fn only_three_digit_octal_byte_escapes_are_decoded() {
        assert_eq!(unescape_octal(b"a\\040b"), b"a b");
        assert_eq!(unescape_octal(b"\\012"), b"\n");
        assert_eq!(unescape_octal(b"\\377"), [0xff]);
        assert_eq!(unescape_octal(b"\\400"), b"\\400", "not a byte");
        assert_eq!(unescape_octal(b"\\08x"), b"\\08x", "not octal");
        assert_eq!(unescape_octal(b"end\\04"), b"end\\04", "too short");
        assert_eq!(unescape_octal(b"\\\\040"), b"\\ ", "first backslash kept");
    }

    #[test]
    fn mount_points_are_found_in_a_table_file() {
        let tmp = tempfile::tempdir().unwrap();
        let table = tmp.path().join("mountinfo");
        std::fs::write(&table, TABLE).unwrap();
        let yes =
            Path::new("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/workload-socket/mount");
        assert!(is_mount_point(&table, yes).unwrap());
        assert!(is_mount_point(&table, Path::new("/mnt/with space\ttab")).unwrap());
        assert!(!is_mount_point(&table, Path::new("/var/lib/kubelet/pods/u1")).unwrap());
        assert!(!is_mount_point(&table, Path::new("")).unwrap());
        let missing = tmp.path().join("absent");
        assert_eq!(
            is_mount_point(&missing, yes).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn the_real_table_has_the_root_mount() {
        assert!(is_mount_point(Path::new(PROC_SELF_MOUNTINFO), Path::new("/")).unwrap());
    }
}
