//! Protobuf messages and tonic clients/servers for the APIs spire-rs speaks.
//!
//! * `spire::api::types` and `spire::api::server::<service>::v1`: the SPIRE server APIs, generated
//!   from our own `.proto` files under the repository's `proto/` directory. Package, message,
//!   field and service names and numbers match SPIRE's spire-api-sdk exactly (checked by
//!   `tests/wire_compat.rs` against the upstream definitions), so real SPIRE agents, CLIs and
//!   controllers interoperate with us.
//! * [`workload`]: the SPIFFE Workload API (`/SpiffeWorkloadAPI/...`, no proto package).
//! * [`health`]: `grpc.health.v1`, re-exported from `tonic-health`.
//!
//! Module nesting mirrors the proto packages because generated code refers to other packages
//! through `super::` paths.

pub use tonic_health as health;

/// Encoded `google.protobuf.FileDescriptorSet` of every file under `proto/` plus the well-known
/// types they import (source info stripped). For gRPC reflection and descriptor-level tests.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/spire_proto_fds.bin"));

/// One module of generated code. prost/tonic 0.14 output is currently lint-clean here; the allows
/// keep a generator upgrade from failing `-D warnings` on code we do not write (they apply to the
/// generated module only).
macro_rules! generated {
    ($(#[$doc:meta])* $name:ident, $package:literal) => {
        $(#[$doc])*
        #[allow(
            missing_debug_implementations,
            unreachable_pub,
            clippy::all,
            clippy::unwrap_used,
            rustdoc::all,
        )]
        pub mod $name {
            tonic::include_proto!($package);
        }
    };
}

/// Package `spire`.
pub mod spire {
    /// Package `spire.agent` (SPIRE's package for the agent's Debug API).
    pub mod agent {
        /// Package `spire.agent.debug`.
        pub mod debug {
            generated!(
                /// `spire.agent.debug.v1.Debug`.
                v1,
                "spire.agent.debug.v1"
            );
        }
    }

    /// Package `spire.api`.
    pub mod api {
        generated!(
            /// Package `spire.api.types`: entries, agents, bundles, SVIDs, selectors, statuses.
            types,
            "spire.api.types"
        );

        /// Agent APIs (the agent's admin socket), one module per service package.
        pub mod agent {
            /// Package `spire.api.agent.logger`.
            pub mod logger {
                generated!(
                    /// `spire.api.agent.logger.v1.Logger`.
                    v1,
                    "spire.api.agent.logger.v1"
                );
            }
        }

        /// Server APIs, one module per service package.
        pub mod server {
            /// Package `spire.api.server.agent`.
            pub mod agent {
                generated!(
                    /// `spire.api.server.agent.v1.Agent`.
                    v1,
                    "spire.api.server.agent.v1"
                );
            }
            /// Package `spire.api.server.bundle`.
            pub mod bundle {
                generated!(
                    /// `spire.api.server.bundle.v1.Bundle`.
                    v1,
                    "spire.api.server.bundle.v1"
                );
            }
            /// Package `spire.api.server.debug`.
            pub mod debug {
                generated!(
                    /// `spire.api.server.debug.v1.Debug`.
                    v1,
                    "spire.api.server.debug.v1"
                );
            }
            /// Package `spire.api.server.entry`.
            pub mod entry {
                generated!(
                    /// `spire.api.server.entry.v1.Entry`.
                    v1,
                    "spire.api.server.entry.v1"
                );
            }
            /// Package `spire.api.server.localauthority`.
            pub mod localauthority {
                generated!(
                    /// `spire.api.server.localauthority.v1.LocalAuthority`.
                    v1,
                    "spire.api.server.localauthority.v1"
                );
            }
            /// Package `spire.api.server.logger`.
            pub mod logger {
                generated!(
                    /// `spire.api.server.logger.v1.Logger`.
                    v1,
                    "spire.api.server.logger.v1"
                );
            }
            /// Package `spire.api.server.svid`.
            pub mod svid {
                generated!(
                    /// `spire.api.server.svid.v1.SVID`.
                    v1,
                    "spire.api.server.svid.v1"
                );
            }
            /// Package `spire.api.server.trustdomain`.
            pub mod trustdomain {
                generated!(
                    /// `spire.api.server.trustdomain.v1.TrustDomain`.
                    v1,
                    "spire.api.server.trustdomain.v1"
                );
            }
        }
    }
}

generated!(
    /// SPIFFE Workload API (`workload.proto`, no proto package; gRPC paths `/SpiffeWorkloadAPI/...`).
    workload,
    "_"
);

/// Package `spirers`: spire-rs's own extensions, not part of SPIRE.
pub mod spirers {
    /// Package `spirers.server`.
    pub mod server {
        /// Package `spirers.server.push`.
        pub mod push {
            generated!(
                /// `spirers.server.push.v1.Push`: the server tells agents when to synchronise.
                v1,
                "spirers.server.push.v1"
            );
        }
    }
}
