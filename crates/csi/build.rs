//! Compiles `proto/csi.proto` (our own definition of the CSI Identity and Node services) with
//! protox (pure Rust, no `protoc`) into prost messages plus tonic servers and clients.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    let fds = protox::compile([proto_root.join("csi.proto")], [&proto_root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .compile_fds(fds)?;
    Ok(())
}
