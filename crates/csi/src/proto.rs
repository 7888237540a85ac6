//! The generated CSI types, servers and clients (package `csi.v1`, from our `proto/csi.proto`).

/// Package `csi.v1`: the Identity and Node services and their messages. prost/tonic output;
/// the allows keep a generator upgrade from failing `-D warnings` on code we do not write.
#[allow(
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    rustdoc::all
)]
pub mod v1 {
    tonic::include_proto!("csi.v1");
}
