//! PID → pod UID and container ID: SPIRE's container locator over `/proc/<pid>/cgroup`, with
//! `/proc/<pid>/mountinfo` as a fallback.
//!
//! Each cgroup path (or cgroup mount root) is walked from its last segment backwards: the
//! first segment holding a 64-hex word (`\b[[:xdigit:]]{64}\b`, Go's ASCII word boundaries)
//! gives the container ID; the walk then goes on, starting with what precedes the ID in that
//! segment, for `\bpod<uid>\b` where the UID is 8-4-4-4-12 hex digits separated by `-` or `_`
//! (systemd renders dashes as underscores; they become dashes again). Without a container ID
//! the pod UID is not searched. A segment that is empty (a leading, trailing or doubled `/`)
//! ends the walk.
//!
//! Paths combine as in SPIRE: a path with a pod UID overrides earlier ones without, later
//! paths without a UID are ignored once one is known, and differing UIDs or container IDs
//! are a conflict (`FailedPrecondition`). The cgroup file is authoritative; mountinfo is read
//! only when the cgroup file yields no container ID (a workload can bind-mount another
//! container's cgroup into its own mount namespace, but cannot forge its cgroup file).
//!
//! Everything here except [`locate`] is pure and fuzzed (`fuzz/`).

use std::io;
use std::path::Path;

use spire_id::go_fmt::quote;

use crate::{Code, Error};

/// What the locator found for a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerLocation {
    /// The pod UID with dashes (`2c48913c-b29f-11e7-9350-020968147796`); empty when the
    /// paths name none (CRI-O / kubeedge layouts, static pods' 32-hex UIDs).
    pub pod_uid: String,
    /// The 64-hex container ID; empty when the process is not in a container (then it is
    /// not a Kubernetes workload and gets no selectors).
    pub container_id: String,
}

/// Why the locator gave up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// A cgroup line without two colons.
    #[error(
        "invalid cgroup entry, contains {fields} colon-separated fields but expected at least 3: {}",
        quote(line)
    )]
    InvalidCgroupEntry {
        /// How many `:`-separated fields the line has.
        fields: usize,
        /// The line.
        line: String,
    },
    /// A mountinfo line that is not `proc(5)`-shaped.
    #[error("{0}")]
    InvalidMountInfo(String),
    /// Two paths name different pods.
    #[error("multiple pod UIDs found ({}, {})", quote(.0), quote(.1))]
    MultiplePodUids(String, String),
    /// Two paths name different containers.
    #[error("multiple container IDs found ({}, {})", quote(.0), quote(.1))]
    MultipleContainerIds(String, String),
}

/// Accumulates paths with SPIRE's combination rules.
#[derive(Debug, Default)]
struct Combined {
    pod_uid: String,
    container_id: String,
}

// === impl Combined ===

impl Combined {
    fn add(&mut self, path: &str) -> Result<(), LocateError> {
        let (pod_uid, container_id) = match extract(path) {
            Some((pod_uid, container_id)) => (pod_uid.unwrap_or_default(), container_id),
            None => (String::new(), ""),
        };
        match (self.pod_uid.is_empty(), pod_uid.is_empty()) {
            // A UID is known and this path has none: ignore it.
            (false, true) => return Ok(()),
            // The first path with a UID overrides whatever came before.
            (true, false) => {
                self.pod_uid.clone_from(&pod_uid);
                container_id.clone_into(&mut self.container_id);
            }
            _ => {}
        }
        if !pod_uid.is_empty() && pod_uid != self.pod_uid {
            return Err(LocateError::MultiplePodUids(self.pod_uid.clone(), pod_uid));
        }
        if !self.container_id.is_empty() && container_id != self.container_id {
            return Err(LocateError::MultipleContainerIds(
                self.container_id.clone(),
                container_id.to_owned(),
            ));
        }
        container_id.clone_into(&mut self.container_id);
        self.pod_uid = pod_uid;
        Ok(())
    }

    fn finish(self) -> ContainerLocation {
        ContainerLocation {
            pod_uid: self.pod_uid,
            container_id: self.container_id,
        }
    }
}

/// The container ID and pod UID (dashed) named by one cgroup path or mount root; `None`
/// without a container ID.
pub fn extract(path: &str) -> Option<(Option<String>, &str)> {
    let (mut rest, mut segment) = split_last(path);
    let mut container_id = None;
    while !segment.is_empty() {
        if let Some((start, end)) = find_container_id(segment) {
            container_id = Some(&segment[start..end]);
            segment = &segment[..start];
            break;
        }
        (rest, segment) = split_last(rest);
    }
    let container_id = container_id?;
    if segment.is_empty() {
        (rest, segment) = split_last(rest);
    }
    while !segment.is_empty() {
        if let Some(uid) = find_pod_uid(segment) {
            return Some((Some(uid.replace('_', "-")), container_id));
        }
        (rest, segment) = split_last(rest);
    }
    Some((None, container_id))
}

/// The cgroup paths of a `/proc/<pid>/cgroup` file (`hierarchy-ID:controllers:path`; the
/// path is everything after the second colon).
pub fn cgroup_paths(text: &str) -> Result<Vec<&str>, LocateError> {
    lines(text)
        .map(|line| {
            let mut fields = line.splitn(3, ':');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(_), Some(_), Some(path)) => Ok(path),
                _ => Err(LocateError::InvalidCgroupEntry {
                    fields: line.split(':').count(),
                    line: line.to_owned(),
                }),
            }
        })
        .collect()
}

/// The roots of the cgroup (`cgroup`, `cgroup2`) mounts of a `/proc/<pid>/mountinfo` file,
/// except those mounted at their hierarchy's root (`/`). Fields are split on single spaces,
/// so an empty mount source survives; blank lines are skipped.
pub fn cgroup_mount_roots(text: &str) -> Result<Vec<&str>, LocateError> {
    let mut roots = Vec::new();
    for line in lines(text).filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(separator) = fields.iter().position(|f| *f == "-") else {
            return Err(LocateError::InvalidMountInfo(format!(
                "missing separator in mountinfo line: {line}"
            )));
        };
        if separator < 6 {
            return Err(LocateError::InvalidMountInfo(format!(
                "expected at least 6 fields before separator in mountinfo line: {line}"
            )));
        }
        let fs_type = fields.get(separator + 1).copied().unwrap_or_default();
        if fs_type.is_empty() {
            return Err(LocateError::InvalidMountInfo(format!(
                "missing filesystem type in mountinfo line: {line}"
            )));
        }
        let root = fields[3];
        if matches!(fs_type, "cgroup" | "cgroup2") && root != "/" {
            roots.push(root);
        }
    }
    Ok(roots)
}

/// The location given the text of the cgroup file and of mountinfo (`None`: the file does
/// not exist). Mountinfo counts only when the cgroup file yields no container ID.
pub fn locate_in(
    cgroup: Option<&str>,
    mountinfo: Option<&str>,
) -> Result<ContainerLocation, LocateError> {
    let from_cgroup = combine(cgroup.map(cgroup_paths).transpose()?.unwrap_or_default())?;
    if !from_cgroup.container_id.is_empty() {
        return Ok(from_cgroup);
    }
    match mountinfo {
        Some(text) => combine(cgroup_mount_roots(text)?),
        None => Ok(from_cgroup),
    }
}

/// Reads `<proc_root>/<pid>/cgroup` (and, if needed, `mountinfo`) and locates the process.
/// Missing files mean "not in a container"; unreadable or malformed ones are `Internal`,
/// conflicts `FailedPrecondition`.
pub fn locate(proc_root: &Path, pid: i32, verbose: bool) -> Result<ContainerLocation, Error> {
    let dir = proc_root.join(pid.to_string());
    let cgroup_path = dir.join("cgroup");
    let cgroup = read_optional(&cgroup_path)
        .map_err(|e| Error::status(Code::Internal, format!("unable to obtain cgroups: {e}")))?;
    let paths = match cgroup.as_deref().map(cgroup_paths).transpose() {
        Ok(paths) => paths.unwrap_or_default(),
        Err(e) => {
            return Err(Error::status(
                Code::Internal,
                format!("unable to obtain cgroups: {e}"),
            ));
        }
    };
    if verbose {
        for (i, path) in paths.iter().enumerate() {
            tracing::debug!(
                pid,
                index = i + 1,
                total = paths.len(),
                path,
                "PID cgroup enumerated"
            );
        }
    }
    let from_cgroup = combine(paths).map_err(conflict)?;
    if !from_cgroup.container_id.is_empty() {
        return Ok(from_cgroup);
    }

    let mountinfo_path = dir.join("mountinfo");
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::status(
            Code::Internal,
            format!(
                "failed to parse mount info at {}: {e}",
                quote(&mountinfo_path.to_string_lossy())
            ),
        )
    };
    let Some(mountinfo) = read_optional(&mountinfo_path).map_err(|e| unreadable(&e))? else {
        return Ok(from_cgroup);
    };
    let roots = cgroup_mount_roots(&mountinfo).map_err(|e| unreadable(&e))?;
    if verbose {
        for (i, root) in roots.iter().enumerate() {
            tracing::debug!(
                pid,
                index = i + 1,
                total = roots.len(),
                root,
                "PID cgroup mount enumerated"
            );
        }
    }
    combine(roots).map_err(conflict)
}

// === helpers ===

fn combine<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<ContainerLocation, LocateError> {
    let mut combined = Combined::default();
    for path in paths {
        combined.add(path)?;
    }
    Ok(combined.finish())
}

fn conflict(error: LocateError) -> Error {
    let code = match error {
        LocateError::MultiplePodUids(..) | LocateError::MultipleContainerIds(..) => {
            Code::FailedPrecondition
        }
        _ => Code::Internal,
    };
    Error::status(code, error.to_string())
}

fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Lines as Go's `bufio.Scanner` yields them: split on `\n`, a trailing `\r` dropped, no
/// empty last line after a final newline.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .filter(move |_| !text.is_empty())
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// Go's `path.Split` with the trailing slash of the directory trimmed.
fn split_last(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The leftmost `\b[[:xdigit:]]{64}\b`: a maximal run of word bytes that is exactly 64 hex
/// digits.
fn find_container_id(segment: &str) -> Option<(usize, usize)> {
    let bytes = segment.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !is_word(bytes[start]) {
            start += 1;
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|b| !is_word(*b))
            .map_or(bytes.len(), |n| start + n);
        if end - start == 64 && bytes[start..end].iter().all(u8::is_ascii_hexdigit) {
            return Some((start, end));
        }
        start = end;
    }
    None
}

/// The UID of the leftmost `\bpod(8h[-_]4h[-_]4h[-_]4h[-_]12h)\b`, separators as written.
fn find_pod_uid(segment: &str) -> Option<&str> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    const UID_LEN: usize = 36;
    let bytes = segment.as_bytes();
    let matches_at = |i: usize| -> bool {
        if !bytes[i..].starts_with(b"pod") || (i > 0 && is_word(bytes[i - 1])) {
            return false;
        }
        let uid_start = i + 3;
        let end = uid_start + UID_LEN;
        if end > bytes.len() || (end < bytes.len() && is_word(bytes[end])) {
            return false;
        }
        let mut at = uid_start;
        for (n, len) in GROUPS.iter().enumerate() {
            if n > 0 {
                if !matches!(bytes[at], b'-' | b'_') {
                    return false;
                }
                at += 1;
            }
            if !bytes[at..at + len].iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            at += len;
        }
        true
    };
    (0..bytes.len())
        .find(|&i| matches_at(i))
        .map(|i| &segment[i + 3..i + 3 + UID_LEN])
}

#[cfg(test)]
mod tests;
