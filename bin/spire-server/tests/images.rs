//! The container images build from this workspace's debug binaries (`images/build.sh`, buildah
//! from `scratch`, no registry) and each image's binaries run inside it with the entrypoint,
//! working directory and user upstream's manifests expect (`images/check.sh`).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Each image and the binaries it holds, in build order (the CSI driver last, as build.sh).
const IMAGES: &[(&str, &[&str])] = &[
    ("spire-server", &["spire-server"]),
    ("spire-agent", &["spire-agent"]),
    (
        "spire-controller-manager",
        &["spire-controller-manager", "k8s-workload-registrar"],
    ),
    ("spiffe-csi-driver", &["spiffe-csi-driver"]),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where cargo put this package's binary, and so the workspace's other binaries (this follows
/// CARGO_TARGET_DIR and the profile).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_spire-server"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn succeeds(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
}

/// Root, buildah and a static busybox, or the reason one is missing.
fn missing_tool() -> Option<String> {
    let uid = succeeds("id", &["-u"]).map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    if uid.as_deref().map(str::trim) != Some("0") {
        return Some("building images needs root (buildah's vfs storage mounts)".into());
    }
    if succeeds("buildah", &["--version"]).is_none() {
        return Some("buildah is not installed (apt-get install buildah busybox-static)".into());
    }
    // ldd fails on a static executable; busybox-static's is one, Debian's plain busybox is not.
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() || succeeds("ldd", &["/bin/busybox"]).is_some() {
        return Some(
            "/bin/busybox is not a static busybox (apt-get install busybox-static)".into(),
        );
    }
    None
}

/// Runs an images/ script, echoing its output (shown by the harness on failure).
fn script(name: &str, args: &[String]) -> String {
    let out = Command::new("bash")
        .arg(repo().join("images").join(name))
        .args(args)
        .output()
        .unwrap();
    let output = text(&out);
    eprintln!("images/{name} {}:\n{output}", args.join(" "));
    assert!(out.status.success(), "images/{name} failed:\n{output}");
    output
}

#[test]
fn images_build_from_the_debug_binaries_and_run_them() {
    if let Some(reason) = missing_tool() {
        spire_test::skip(&reason);
        return;
    }
    let bins = bin_dir();
    let mut images = Vec::new();
    for (image, needs) in IMAGES {
        match needs.iter().find(|bin| !bins.join(bin).is_file()) {
            Some(bin) => spire_test::skip(&format!(
                "image {image}: {} is not built (cargo build -p {bin})",
                bins.join(bin).display()
            )),
            None => images.push((*image).to_owned()),
        }
    }
    if images.is_empty() {
        return;
    }

    let mut build_args = vec!["--bin-dir".to_owned(), bins.display().to_string()];
    build_args.extend(images.iter().cloned());
    let built = script("build.sh", &build_args);
    for image in &images {
        assert!(
            built
                .lines()
                .any(|line| line.starts_with("built ") && line.contains(&format!("/{image}:"))),
            "{image} not built:\n{built}"
        );
    }

    let checked = script("check.sh", &images);
    for image in &images {
        assert!(
            checked.contains(&format!("ok   {image}: Entrypoint is")),
            "{image} not checked:\n{checked}"
        );
    }
    let summary = checked
        .lines()
        .find(|line| line.ends_with(" failed") && line.contains(" passed, "))
        .unwrap();
    assert!(summary.ends_with(", 0 failed"), "{summary}");
    assert!(!summary.starts_with("0 passed"), "{summary}");
}
