//! Compiles the repository's `proto/` tree with protox (pure Rust, no `protoc`) and generates
//! prost messages plus tonic clients and servers for every file in it.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../../proto").canonicalize()?;
    // A directory makes cargo rerun when anything below it changes.
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files under {}", proto_root.display()).into());
    }

    let fds = protox::compile(&files, [&proto_root])?;

    // Exported for reflection and tests; comments are not needed there.
    let mut exported = fds.clone();
    for file in &mut exported.file {
        file.source_code_info = None;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("spire_proto_fds.bin"),
        exported.encode_to_vec(),
    )?;

    // The set also holds the imported well-known types: prost-build needs them to analyse
    // derives and maps them to prost-types / Rust primitives instead of generating them.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .compile_fds(fds)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
