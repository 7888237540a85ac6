//! The `agent { }` section: every key SPIRE documents (compat §8.2), with SPIRE's defaults,
//! and which of them spire-rs refuses ([`AgentSection::refusals`]) or accepts without effect
//! yet ([`AgentSection::ignored`]).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::de::{GoDuration, Lenient, LenientBool};
use crate::refused::{Findings, Refusal};
use crate::server::{feature_flags, is_true, profiling};

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
    /// Only `never` (SPIRE's default, and what spire-rs does) is accepted; see
    /// [`AgentSection::refusals`].
    pub rebootstrap_mode: Option<String>,
    /// A Go duration; empty (as older helm charts render it) means SPIRE's default. Only
    /// read by SPIRE with a `rebootstrap_mode` other than `never`.
    pub rebootstrap_delay: Option<String>,
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
    pub profiling_names: Option<Vec<String>>,
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

    /// `rebootstrap_delay`, default 10 m (empty = default).
    pub fn rebootstrap_delay(&self) -> Result<Duration, String> {
        match self.rebootstrap_delay.as_deref().map(str::trim) {
            None | Some("") => Ok(Duration::from_secs(600)),
            Some(text) => GoDuration::parse(text)
                .map(|d| d.0)
                .map_err(|e| format!("invalid rebootstrap_delay: {e}")),
        }
    }

    /// The keys set here that spire-rs does not implement, each with the reason. A key is
    /// refused when present, or when set to a value other than the one that asks for what
    /// spire-rs does (`rebootstrap_mode = "never"`, flags left `false`, …).
    pub fn refusals(&self) -> Vec<Refusal> {
        let mut found = Findings::new("agent");
        let mode = self.rebootstrap_mode.as_deref().map(str::trim);
        found.when(
            !matches!(mode, None | Some("" | "never")),
            "rebootstrap_mode",
            &format!(
                "the agent never re-bootstraps: only \"never\" (SPIRE's default) is supported, \
                 got {:?}",
                mode.unwrap_or_default()
            ),
        );
        found.when(
            !self.authorized_delegates.is_empty(),
            "authorized_delegates",
            "the Delegated Identity API is not served",
        );
        found.present(
            &self.availability_target,
            "availability_target",
            "SVID rotation does not take an availability target",
        );
        found.present(
            &self.log_selectors,
            "log_selectors",
            "selector logging is not implemented",
        );
        profiling(
            &mut found,
            self.profiling_enabled,
            &self.profiling_port,
            &self.profiling_freq,
            &self.profiling_names,
        );
        if let Some(e) = &self.experimental {
            e.refusals(&mut found);
        }
        found.into_refusals()
    }

    /// Warnings for keys spire-rs accepts without acting on them yet (safe to leave
    /// unenforced): each names its key.
    pub fn ignored(&self) -> Vec<String> {
        Findings::new("agent").into_warnings()
    }

    /// `log_source_location`, default false.
    pub fn log_source_location(&self) -> bool {
        is_true(self.log_source_location)
    }

    /// `experimental.sync_interval`, default 5 s.
    pub fn sync_interval(&self) -> Duration {
        self.experimental
            .as_ref()
            .and_then(|e| e.sync_interval)
            .map_or(Duration::from_secs(5), |d| d.0)
    }
}

// === impl AgentExperimentalSection ===

impl AgentExperimentalSection {
    fn refusals(&self, found: &mut Findings) {
        found.when(
            self.use_sync_authorized_entries.is_some_and(|b| !b.0),
            "experimental.use_sync_authorized_entries",
            "the agent always syncs with SyncAuthorizedEntries (only true is supported)",
        );
        found.when(
            is_true(self.require_pq_kem),
            "experimental.require_pq_kem",
            "TLS key exchange cannot be restricted to post-quantum groups",
        );
        found.present(
            &self.ratelimit,
            "experimental.ratelimit",
            "Workload API calls are not rate-limited",
        );
        found.present(
            &self.broker,
            "experimental.broker",
            "the broker API is not served",
        );
        found.present(
            &self.named_pipe_name,
            "experimental.named_pipe_name",
            "there are no Windows named pipes (use socket_path)",
        );
        found.present(
            &self.admin_named_pipe_name,
            "experimental.admin_named_pipe_name",
            "there are no Windows named pipes",
        );
        feature_flags(found, &self.feature_flags);
    }
}
