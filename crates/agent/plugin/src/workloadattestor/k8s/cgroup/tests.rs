use super::*;

const UID: &str = "2c48913c-b29f-11e7-9350-020968147796";
const UID_: &str = "2c48913c_b29f_11e7_9350_020968147796";
const OTHER_UID: &str = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
const CID: &str = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961";
const OTHER_CID: &str = "09bc3d7ade839efec32b6bec4ec79d099027a668ddba043083ec21d3c3b8f1e6";
const HOST_CID: &str = "93529524695bb00d91c1f6dba692ea8d3550c3b94fb2463af7bc9ec82f992d26";

fn found(pod_uid: &str, container_id: &str) -> Result<ContainerLocation, LocateError> {
    Ok(ContainerLocation {
        pod_uid: pod_uid.into(),
        container_id: container_id.into(),
    })
}

fn nothing() -> Result<ContainerLocation, LocateError> {
    Ok(ContainerLocation::default())
}

/// Every layout of the cgroup-path table, through the whole cgroup file.
#[test]
fn cgroup_layouts() {
    let crio_v1 = [
        "12:hugetlb:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda2830d0d_b0f0_4ff0_81b5_0ee4e299cf80.slice/crio-{CID}.scope",
        "4:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda2830d0d_b0f0_4ff0_81b5_0ee4e299cf80.slice/crio-{CID}.scope",
        "3:rdma:/",
        "1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda2830d0d_b0f0_4ff0_81b5_0ee4e299cf80.slice/crio-{CID}.scope",
        "0::/system.slice/crio.service",
    ]
    .join("\n");
    let cases: Vec<(&str, String, Result<ContainerLocation, LocateError>)> = vec![
        (
            "cgroupfs, burstable",
            format!("11:pids:/kubepods/burstable/pod{UID}/{CID}\n"),
            found(UID, CID),
        ),
        (
            "cgroupfs, guaranteed",
            format!("0::/kubepods/pod{UID}/{CID}"),
            found(UID, CID),
        ),
        (
            "systemd + docker, underscores",
            format!(
                "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{CID}.scope"
            ),
            found(UID, CID),
        ),
        (
            "systemd + docker, dashes",
            format!(
                "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice/docker-{CID}.scope"
            ),
            found(UID, CID),
        ),
        (
            "systemd + containerd, cgroup v2",
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod00000000_1111_2222_3333_444444444444.slice/cri-containerd-{CID}.scope\n"
            ),
            found("00000000-1111-2222-3333-444444444444", CID),
        ),
        (
            "containerd raw systemd form (colons inside the path)",
            format!(
                "1:name=systemd:/kubepods-besteffort-pod72f7f152_440c_66ac_9084_e0fc1d8a910c.slice:cri-containerd:{CID}"
            ),
            found("72f7f152-440c-66ac-9084-e0fc1d8a910c", CID),
        ),
        (
            "systemd + CRI-O, v1 with a root line and the crio service",
            crio_v1.replace("{CID}", CID),
            found(OTHER_UID, CID),
        ),
        (
            "kind, nested docker (v1), host container line after",
            format!(
                "1:cpuset:/docker/{HOST_CID}/kubepods/besteffort/pod{UID}/{CID}\n0::/docker/{HOST_CID}/system.slice/containerd.service\n"
            ),
            found(UID, CID),
        ),
        (
            "kind, nested docker (v1), host container line first",
            format!(
                "0::/docker/{HOST_CID}/system.slice/containerd.service\n1:cpuset:/docker/{HOST_CID}/kubepods/besteffort/pod{UID}/{CID}\n"
            ),
            found(UID, CID),
        ),
        (
            "kind, nested v2",
            format!(
                "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
            ),
            found(UID, CID),
        ),
        (
            "other cgroup namespace, systemd",
            format!(
                "0::/../../kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"
            ),
            found(UID, CID),
        ),
        (
            "other cgroup namespace, cgroupfs",
            format!("0::/../../../burstable/pod{UID}/{CID}"),
            found(UID, CID),
        ),
        (
            "other cgroup namespace, CRI-O / kubeedge without a pod UID",
            format!("0::/../crio-{CID}.scope"),
            found("", CID),
        ),
        (
            "static pod: 32-hex UID is not extracted",
            format!("0::/kubepods/besteffort/pod2732ca68f6358eba7703fb6f82a25c94/{CID}"),
            found("", CID),
        ),
        (
            "not in a pod: user session",
            "0::/user.slice/user-1000.slice/session-2.scope\n".into(),
            nothing(),
        ),
        ("not in a pod: root", "0::/\n".into(), nothing()),
        (
            "not in a pod: v1 with a 32-hex memory group",
            "9:name=systemd:/\n4:memory:/process_api/f6ccbd950fe9e67ea10590a588a1307b\n0::/\n"
                .into(),
            nothing(),
        ),
        ("empty file", String::new(), nothing()),
        (
            "two pod UIDs",
            format!("2:pids:/kubepods/pod{UID}/{CID}\n1:cpu:/kubepods/pod{OTHER_UID}/{CID}\n"),
            Err(LocateError::MultiplePodUids(UID.into(), OTHER_UID.into())),
        ),
        (
            "two container IDs",
            format!("2:pids:/kubepods/pod{UID}/{CID}\n1:cpu:/kubepods/pod{UID}/{OTHER_CID}\n"),
            Err(LocateError::MultipleContainerIds(
                CID.into(),
                OTHER_CID.into(),
            )),
        ),
        (
            "a path without a UID is ignored once a UID is known",
            format!(
                "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope\n1:name=systemd:/fake/cri-containerd-{OTHER_CID}.scope\n"
            ),
            found(UID, CID),
        ),
        (
            "without a UID, a later path without a container ID conflicts (SPIRE's rule)",
            format!("1:cpu:/../crio-{CID}.scope\n0::/\n"),
            Err(LocateError::MultipleContainerIds(CID.into(), String::new())),
        ),
        (
            "container-only paths that agree",
            format!("1:cpu:/../crio-{CID}.scope\n0::/../crio-{CID}.scope\n"),
            found("", CID),
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(locate_in(Some(&text), None), want, "{name}");
    }
}

#[test]
fn container_ids_are_whole_64_hex_words() {
    let id = |path: &str| extract(path).map(|(_, id)| id.to_owned());
    assert_eq!(id(&format!("/x/{CID}")), Some(CID.into()));
    assert_eq!(
        id(&format!("/x/{}", CID.to_uppercase())),
        Some(CID.to_uppercase()),
        "[[:xdigit:]] includes upper case"
    );
    assert_eq!(id(&format!("/x/{CID}0")), None, "65 hex digits");
    assert_eq!(id(&format!("/x/{}", &CID[1..])), None, "63 hex digits");
    assert_eq!(id(&format!("/x/_{CID}")), None, "`_` is a word character");
    assert_eq!(id(&format!("/x/{CID}_")), None);
    assert_eq!(id(&format!("/x/g{CID}")), None);
    assert_eq!(id(&format!("/x/a-{CID}.b")), Some(CID.into()));
    assert_eq!(
        id(&format!("/{CID}/{OTHER_CID}/tail")),
        Some(OTHER_CID.into()),
        "the last segment holding an ID wins"
    );
    assert_eq!(
        id(&format!("/x/{CID}:{OTHER_CID}")),
        Some(CID.into()),
        "leftmost in its segment"
    );
    assert_eq!(
        id(&format!("/{CID}/")),
        None,
        "an empty last segment ends the walk"
    );
    assert_eq!(
        id(&format!("/a/{CID}//b")),
        None,
        "so does an empty segment inside"
    );
    assert_eq!(id(CID), Some(CID.into()), "a bare segment");
}

#[test]
fn pod_uids_need_the_pod_prefix_on_a_word_boundary() {
    let uid = |path: &str| extract(path).and_then(|(uid, _)| uid);
    assert_eq!(uid(&format!("/pod{UID}/{CID}")), Some(UID.into()));
    assert_eq!(
        uid(&format!("/xpod{UID}/{CID}")),
        None,
        "no boundary before `pod`"
    );
    assert_eq!(uid(&format!("/_pod{UID}/{CID}")), None);
    assert_eq!(
        uid(&format!("/pod{UID}0/{CID}")),
        None,
        "no boundary after the UID"
    );
    assert_eq!(uid(&format!("/pod{UID}_x/{CID}")), None);
    assert_eq!(
        uid(&format!("/pod{}/{CID}", UID.replace('-', ":"))),
        None,
        "only - and _ separate the groups"
    );
    assert_eq!(
        uid(&format!("/pod2c48913c-b29f_11e7-9350_020968147796/{CID}")),
        Some(UID.into()),
        "mixed separators"
    );
    assert_eq!(
        uid(&format!("/pod{UID}.slice:cri-containerd:{CID}")),
        Some(UID.into())
    );
    assert_eq!(
        uid(&format!("/pod{OTHER_UID}/pod{UID}/{CID}")),
        Some(UID.into()),
        "the nearest segment before the container wins"
    );
    assert_eq!(
        uid(&format!("/{CID}/pod{UID}")),
        None,
        "UIDs after the container do not count"
    );
    assert_eq!(extract(&format!("/pod{UID}/no-container")), None);
}

#[test]
fn malformed_cgroup_lines_fail_the_whole_file() {
    let error = locate_in(Some("0::/\ngarbage\n"), None).unwrap_err();
    assert_eq!(
        error,
        LocateError::InvalidCgroupEntry {
            fields: 1,
            line: "garbage".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "invalid cgroup entry, contains 1 colon-separated fields but expected at least 3: \"garbage\""
    );
    assert!(matches!(
        locate_in(Some("1:cpu\n"), None),
        Err(LocateError::InvalidCgroupEntry { fields: 2, .. })
    ));
    // An empty line inside (or a lone newline) is a line too.
    assert!(locate_in(Some("0::/\n\n0::/\n"), None).is_err());
    assert!(locate_in(Some("\n"), None).is_err());
    assert_eq!(locate_in(Some("0::/\r\n"), None), nothing(), "CRLF");
}

fn mount(root: &str, fs_type: &str) -> String {
    format!(
        "1143 1140 0:27 {root} /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime shared:9 - {fs_type} {fs_type} rw,nsdelegate"
    )
}

#[test]
fn mountinfo_is_only_a_fallback() {
    let pod_root = format!("/kubepods/burstable/pod{UID}/{CID}");
    let mountinfo = format!("{}\n{}\n", mount("/", "proc"), mount(&pod_root, "cgroup2"));
    assert_eq!(
        locate_in(Some("0::/\n"), Some(&mountinfo)),
        found(UID, CID),
        "the cgroup file names no container"
    );
    assert_eq!(
        locate_in(None, Some(&mountinfo)),
        found(UID, CID),
        "no cgroup file"
    );

    // A workload that bind-mounted another pod's cgroup cannot override its own cgroup file.
    let spoofed = mount(&format!("/kubepods/pod{OTHER_UID}/{OTHER_CID}"), "cgroup2");
    assert_eq!(
        locate_in(Some(&format!("0::/../{CID}\n")), Some(&spoofed)),
        found("", CID)
    );
    assert_eq!(locate_in(None, None), nothing(), "neither file exists");
}

#[test]
fn mountinfo_reads_only_cgroup_mounts_off_their_root() {
    let pod_root = format!("/kubepods/besteffort/pod{UID}/{CID}");
    let text = [
        mount("/", "cgroup"),
        mount("/", "cgroup2"),
        mount(&pod_root, "cgroup"),
        mount(&format!("/kubepods/pod{OTHER_UID}/{OTHER_CID}"), "tmpfs"),
        // An empty mount source (two spaces) is a valid line.
        "119 206 0:68 / /local rw,relatime - tmpfs  rw,size=8192k".to_owned(),
        String::new(),
        mount(&pod_root, "cgroup"),
    ]
    .join("\n");
    assert_eq!(cgroup_mount_roots(&text).unwrap(), [&pod_root, &pod_root]);
    assert_eq!(locate_in(Some(""), Some(&text)), found(UID, CID));

    let conflicting = format!(
        "{}\n{}",
        mount(&pod_root, "cgroup"),
        mount(
            &format!("/kubepods/besteffort/pod{UID}/{OTHER_CID}"),
            "cgroup"
        )
    );
    assert_eq!(
        locate_in(None, Some(&conflicting)),
        Err(LocateError::MultipleContainerIds(
            CID.into(),
            OTHER_CID.into()
        ))
    );

    for (line, message) in [
        (
            "1 2 0:1 / /x rw shared:1 cgroup cgroup rw",
            "missing separator in mountinfo line",
        ),
        (
            "1 2 0:1 / /x - cgroup cgroup rw",
            "expected at least 6 fields before separator",
        ),
        ("1 2 0:1 / /x rw -", "missing filesystem type"),
        ("1 2 0:1 / /x rw -  src opts", "missing filesystem type"),
    ] {
        let error = cgroup_mount_roots(line).unwrap_err();
        assert!(error.to_string().contains(message), "{line}: {error}");
    }
}

/// `locate` reads the files under the given /proc root and maps errors to SPIRE's codes.
#[test]
fn locate_reads_proc_files_and_maps_errors() {
    let proc = tempfile::tempdir().unwrap();
    let write = |pid: i32, name: &str, text: &str| {
        let dir = proc.path().join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    };
    write(1, "cgroup", &format!("0::/kubepods/pod{UID}/{CID}\n"));
    write(2, "cgroup", "0::/\n");
    write(
        2,
        "mountinfo",
        &format!("{}\n", mount(&format!("/pod{UID}/{CID}"), "cgroup2")),
    );
    write(3, "cgroup", "garbage\n");
    write(
        4,
        "cgroup",
        &format!("1:a:/pod{UID}/{CID}\n0::/pod{OTHER_UID}/{CID}\n"),
    );
    write(5, "cgroup", "0::/\n");
    write(5, "mountinfo", "not mountinfo\n");

    let located = |pid| locate(proc.path(), pid, true);
    assert_eq!(
        located(1).unwrap(),
        ContainerLocation {
            pod_uid: UID.into(),
            container_id: CID.into()
        }
    );
    assert_eq!(located(2).unwrap().container_id, CID, "mountinfo fallback");
    assert_eq!(
        located(99).unwrap(),
        ContainerLocation::default(),
        "no such process"
    );

    let error = located(3).unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert!(
        error
            .to_string()
            .starts_with("unable to obtain cgroups: invalid cgroup entry"),
        "{error}"
    );
    let error = located(4).unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        error.to_string(),
        format!("multiple pod UIDs found (\"{UID}\", \"{OTHER_UID}\")")
    );
    let error = located(5).unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    assert!(
        error
            .to_string()
            .starts_with("failed to parse mount info at \""),
        "{error}"
    );
}
