//! The mount operations the Node service needs, behind a narrow trait so that the request
//! handling can be tested without privileges; [`SystemMounter`] does them for real.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::mountinfo;

/// Bind mounts, unmounts and mount-point lookups. Calls block (mount(2), reading the mount
/// table): the Node service makes them on tokio's blocking pool.
pub trait Mounter: Send + Sync + fmt::Debug + 'static {
    /// Bind-mounts the directory `source` on `target` (not recursively). With `read_only`,
    /// the new mount is then remounted read-only; if that fails it is undone.
    fn bind(&self, source: &Path, target: &Path, read_only: bool) -> io::Result<()>;

    /// Unmounts whatever is mounted on `target` (no flags: a busy mount is an error).
    fn unmount(&self, target: &Path) -> io::Result<()>;

    /// Whether `path` is a mount point.
    fn is_mount_point(&self, path: &Path) -> io::Result<bool>;
}

/// mount(2) and umount(2) through rustix, and the process's mount table for lookups.
#[derive(Debug, Clone)]
pub struct SystemMounter {
    mountinfo: PathBuf,
}

// === impl SystemMounter ===

impl SystemMounter {
    /// Looks mount points up in `/proc/self/mountinfo`.
    pub fn new() -> Self {
        Self {
            mountinfo: PathBuf::from(mountinfo::PROC_SELF_MOUNTINFO),
        }
    }
}

impl Default for SystemMounter {
    fn default() -> Self {
        Self::new()
    }
}

impl Mounter for SystemMounter {
    fn bind(&self, source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
        rustix::mount::mount_bind(source, target)?;
        if read_only {
            // MS_RDONLY is ignored on the bind itself; only a remount of the new mount
            // applies it (and only to that mount, not to the source).
            let remount =
                rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "");
            if let Err(error) = remount {
                // Never leave a writable mount behind when a read-only one was asked for.
                let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
                return Err(error.into());
            }
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, UnmountFlags::empty())?;
        Ok(())
    }

    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        mountinfo::is_mount_point(&self.mountinfo, path)
    }
}
