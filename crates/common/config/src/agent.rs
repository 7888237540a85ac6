//! The `agent { }` section: every key SPIRE documents (compat §8.2), with SPIRE's defaults.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::de::{GoDuration, Lenient, LenientBool};

/// `agent { }` as written (absent keys take SPIRE's defaults through the accessors).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)] // each field is the SPIRE key of the same name
pub struct AgentSection {
    pub trust_domain: Option<String>,
    pub server_address: Option<String>,
    pub server_port: Option<Lenient<u16>>,
    pub data_dir: Option<String>,
    pub socket_path: Option<String>,
    pub admin_socket_path: Option<String>,
    #[serde(default)]
    pub authorized_delegates: Vec<String>,
    pub trust_bundle_path: Option<String>,
    pub trust_bundle_url: Option<String>,
    pub trust_bundle_unix_socket: Option<String>,
    pub trust_bundle_spiffe_workload_api: Option<Value>,
    pub trust_bundle_format: Option<String>,
    pub insecure_bootstrap: Option<LenientBool>,
    pub rebootstrap_mode: Option<String>,
    pub rebootstrap_delay: Option<GoDuration>,
    pub join_token: Option<String>,
    pub join_token_file: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub log_file: Option<String>,
    #[serde(default)]
    pub log_selectors: Option<Value>,
    pub log_source_location: Option<LenientBool>,
    pub sds: Option<SdsSection>,
    pub disable_workload_api: Option<LenientBool>,
    pub disable_sds_api: Option<LenientBool>,
    pub workload_x509_svid_key_type: Option<String>,
    pub allow_unauthenticated_verifiers: Option<LenientBool>,
    #[serde(default)]
    pub allowed_foreign_jwt_claims: Vec<String>,
    pub availability_target: Option<GoDuration>,
    pub x509_svid_cache_max_size: Option<Lenient<u32>>,
    pub jwt_svid_cache_max_size: Option<Lenient<u32>>,
    pub experimental: Option<AgentExperimentalSection>,
    pub profiling_enabled: Option<LenientBool>,
    pub profiling_port: Option<Lenient<u16>>,
    pub profiling_freq: Option<Lenient<u32>>,
    #[serde(default)]
    pub profiling_names: Vec<String>,
}

/// `sds { default_svid_name, default_bundle_name, default_all_bundles_name,
/// disable_spiffe_cert_validation }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub struct SdsSection {
    pub default_svid_name: Option<String>,
    pub default_bundle_name: Option<String>,
    pub default_all_bundles_name: Option<String>,
    pub disable_spiffe_cert_validation: Option<LenientBool>,
}

/// The agent's `experimental { … }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)]
pub struct AgentExperimentalSection {
    pub sync_interval: Option<GoDuration>,
    pub jwt_svid_cache_hit_timeout: Option<GoDuration>,
    pub use_sync_authorized_entries: Option<LenientBool>,
    pub require_pq_kem: Option<LenientBool>,
    pub ratelimit: Option<Value>,
    pub broker: Option<Value>,
    pub named_pipe_name: Option<String>,
    pub admin_named_pipe_name: Option<String>,
    #[serde(default)]
    pub feature_flags: Vec<String>,
}

// === impl AgentSection ===

impl AgentSection {
    /// SPIRE's default public (Workload API) socket.
    pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-agent/public/api.sock";

    /// `socket_path`, default `/tmp/spire-agent/public/api.sock`.
    pub fn socket_path(&self) -> &str {
        self.socket_path
            .as_deref()
            .unwrap_or(Self::DEFAULT_SOCKET_PATH)
    }

    /// `data_dir`, default `.` (the working directory).
    pub fn data_dir(&self) -> &str {
        self.data_dir.as_deref().unwrap_or(".")
    }

    /// `trust_bundle_format`, default `pem`.
    pub fn trust_bundle_format(&self) -> &str {
        self.trust_bundle_format.as_deref().unwrap_or("pem")
    }

    /// `log_level`, default `INFO`.
    pub fn log_level(&self) -> &str {
        self.log_level.as_deref().unwrap_or("INFO")
    }

    /// `x509_svid_cache_max_size`, default 1000.
    pub fn x509_svid_cache_max_size(&self) -> u32 {
        self.x509_svid_cache_max_size.map_or(1000, |v| v.0)
    }

    /// `experimental.sync_interval`, default 5 s.
    pub fn sync_interval(&self) -> Duration {
        self.experimental
            .as_ref()
            .and_then(|e| e.sync_interval)
            .map_or(Duration::from_secs(5), |d| d.0)
    }
}
