//! The `unix` workload attestor: the caller's effective user and group, its supplementary
//! groups and, with `discover_workload_path`, its executable's path and SHA-256.
//!
//! Selectors (SPIRE's, exactly): `unix:uid:<n>`, `unix:user:<name>`, `unix:gid:<n>`,
//! `unix:group:<name>`, `unix:supplementary_gid:<n>`, `unix:supplementary_group:<name>`,
//! `unix:path:<exe>`, `unix:sha256:<hex>`. Names come from `/etc/passwd` and `/etc/group`
//! (files only, no NSS); an ID without a name there yields only the numeric selector.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use spire_config::de::{Lenient, LenientBool};
use spire_id::Selector;

use super::WorkloadAttestor;
use crate::{Code, Error, Result};

/// The plugin name and selector type.
pub const NAME: &str = "unix";

/// The `unix` attestor's `plugin_data`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixConfig {
    /// `discover_workload_path`: also produce `unix:path` and `unix:sha256`.
    pub discover_workload_path: bool,
    /// `workload_size_limit` in bytes for hashing: 0 = no limit, negative = never hash, and
    /// an executable larger than a positive limit fails attestation.
    pub workload_size_limit: i64,
}

/// The `unix` workload attestor.
#[derive(Clone, Debug)]
pub struct UnixAttestor {
    config: UnixConfig,
    proc_root: PathBuf,
    passwd: PathBuf,
    group: PathBuf,
}

#[derive(Deserialize)]
struct RawConfig {
    discover_workload_path: Option<LenientBool>,
    workload_size_limit: Option<Lenient<i64>>,
}

// === impl UnixAttestor ===

impl UnixAttestor {
    /// An attestor reading the host's `/proc`, `/etc/passwd` and `/etc/group`.
    pub fn new(config: UnixConfig) -> Self {
        Self {
            config,
            proc_root: PathBuf::from("/proc"),
            passwd: PathBuf::from("/etc/passwd"),
            group: PathBuf::from("/etc/group"),
        }
    }

    /// Parses `plugin_data` (an object; unknown keys are an error, [`Error::PluginData`]) and
    /// builds the attestor.
    pub fn from_plugin_data(plugin_data: &Value) -> Result<Self> {
        let raw: RawConfig = spire_config::typed(
            "plugins.WorkloadAttestor.unix.plugin_data",
            plugin_data.clone(),
        )?;
        Ok(Self::new(UnixConfig {
            discover_workload_path: raw.discover_workload_path.is_some_and(|b| b.0),
            workload_size_limit: raw.workload_size_limit.map_or(0, |l| l.0),
        }))
    }

    /// The configuration in effect.
    pub fn config(&self) -> &UnixConfig {
        &self.config
    }

    /// Reads user and group names from these files instead of `/etc/passwd` and `/etc/group`.
    pub fn with_account_files(
        mut self,
        passwd: impl Into<PathBuf>,
        group: impl Into<PathBuf>,
    ) -> Self {
        self.passwd = passwd.into();
        self.group = group.into();
        self
    }

    /// The selectors of `pid`, read synchronously (blocking file I/O).
    pub fn attest_blocking(&self, pid: i32) -> Result<Vec<Selector>> {
        let process = procfs::process::Process::new_with_root(self.proc_root.join(pid.to_string()))
            .map_err(failed)?;
        let status = process.status().map_err(failed)?;
        let mut selectors = Vec::new();
        let users = read_or_empty(&self.passwd);
        let groups = read_or_empty(&self.group);

        selectors.push(selector("uid", &status.euid.to_string())?);
        if let Some(name) = account_name(&users, status.euid) {
            selectors.push(selector("user", name)?);
        }
        selectors.push(selector("gid", &status.egid.to_string())?);
        if let Some(name) = account_name(&groups, status.egid) {
            selectors.push(selector("group", name)?);
        }
        for &gid in &status.groups {
            selectors.push(selector("supplementary_gid", &gid.to_string())?);
            if let Some(name) = account_name(&groups, gid) {
                selectors.push(selector("supplementary_group", name)?);
            }
        }

        if self.config.discover_workload_path {
            let path = process.exe().map_err(failed)?;
            selectors.push(selector("path", &path.to_string_lossy())?);
            if self.config.workload_size_limit >= 0 {
                // The link itself opens the very file the process runs, even if it was
                // replaced or deleted on disk, and in the process's own mount namespace.
                let exe = self.proc_root.join(pid.to_string()).join("exe");
                let digest = sha256_file(&exe, self.config.workload_size_limit)?;
                selectors.push(selector("sha256", &digest)?);
            }
        }
        Ok(selectors)
    }
}

#[async_trait::async_trait]
impl WorkloadAttestor for UnixAttestor {
    fn name(&self) -> &str {
        NAME
    }

    async fn attest(&self, pid: i32) -> Result<Vec<Selector>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.attest_blocking(pid))
            .await
            .map_err(|e| failed(format!("attestation task: {e}")))?
    }
}

// === helpers ===

fn failed(error: impl std::fmt::Display) -> Error {
    Error::status(Code::Internal, error.to_string())
}

fn selector(kind: &str, value: &str) -> Result<Selector> {
    Selector::new(NAME, &format!("{kind}:{value}")).map_err(failed)
}

/// A missing or unreadable account file means no names (numeric selectors only).
fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The name of `id` in passwd(5) or group(5) text: `name:password:id:…`; the first match wins.
pub fn account_name(text: &str, id: u32) -> Option<&str> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let found: u32 = fields.next()?.trim().parse().ok()?;
            (found == id && !name.is_empty()).then_some(name)
        })
}

/// Lowercase hex SHA-256 of the file, refusing files larger than a positive `limit`.
fn sha256_file(path: &Path, limit: i64) -> Result<String> {
    let mut file = File::open(path).map_err(|e| failed(format!("open {}: {e}", path.display())))?;
    let size = file.metadata().map_err(failed)?.len();
    if let Ok(limit) = u64::try_from(limit)
        && limit > 0
        && size > limit
    {
        return Err(failed(format!(
            "workload {} exceeds size limit ({size} > {limit})",
            path.display()
        )));
    }
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => context.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(format!("read {}: {e}", path.display()))),
        }
    }
    Ok(hex::encode(context.finish()))
}

#[cfg(test)]
mod tests;
