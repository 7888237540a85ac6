//! The `k8s` attestor's container locator over `/proc/<pid>/cgroup` and `mountinfo` (both
//! written by the kernel, but shaped by whoever names the cgroups and mounts): never panics;
//! a container ID is 64 hex digits taken from the input, a pod UID is a dashed UID and only
//! comes with a container ID; mountinfo never overrides a container ID from the cgroup file.
//!
//! Input: the cgroup file, optionally followed by a NUL byte and the mountinfo file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spire_agent_plugin::workloadattestor::k8s::cgroup::{
    ContainerLocation, cgroup_mount_roots, cgroup_paths, extract, locate_in,
};

fn check(location: &ContainerLocation, input: &str) {
    let id = &location.container_id;
    assert!(id.is_empty() || (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    assert!(
        input.contains(id.as_str()),
        "the container ID comes from the input"
    );
    let uid = &location.pod_uid;
    if !uid.is_empty() {
        assert!(!id.is_empty(), "no pod UID without a container ID");
        assert_eq!(uid.len(), 36);
        for (i, b) in uid.bytes().enumerate() {
            if [8, 13, 18, 23].contains(&i) {
                assert_eq!(b, b'-');
            } else {
                assert!(b.is_ascii_hexdigit());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (cgroup, mountinfo) = match input.split_once('\0') {
        Some((cgroup, mountinfo)) => (cgroup, Some(mountinfo)),
        None => (input, None),
    };

    if let Ok(paths) = cgroup_paths(cgroup) {
        for path in paths {
            assert!(cgroup.contains(path));
            if let Some((uid, id)) = extract(path) {
                assert!(path.contains(id));
                assert!(uid.is_none_or(|uid| uid.len() == 36));
            }
        }
    }
    if let Some(mountinfo) = mountinfo
        && let Ok(roots) = cgroup_mount_roots(mountinfo)
    {
        for root in roots {
            assert!(root != "/" && !root.contains(' ') && mountinfo.contains(root));
        }
    }

    let alone = locate_in(Some(cgroup), None);
    if let Ok(location) = &alone {
        check(location, cgroup);
    }
    let both = locate_in(Some(cgroup), mountinfo);
    if let Ok(location) = &both {
        check(location, input);
    }
    if let Ok(location) = &alone
        && !location.container_id.is_empty()
    {
        assert_eq!(
            both.as_ref(),
            Ok(location),
            "the cgroup file is authoritative"
        );
    }
    if alone.is_err() {
        assert!(
            both.is_err(),
            "a broken cgroup file is never rescued by mountinfo"
        );
    }
});
