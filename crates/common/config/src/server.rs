//! The `server { }` section: every key SPIRE documents, with SPIRE's defaults.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::de::{GoDuration, Lenient, LenientBool, OneOrMany};

/// `server { }` as written (absent keys take SPIRE's defaults through the accessors).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)] // each field is the SPIRE key of the same name
pub struct ServerSection {
    pub trust_domain: Option<String>,
    pub bind_address: Option<String>,
    pub bind_port: Option<Lenient<u16>>,
    pub socket_path: Option<String>,
    pub data_dir: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub log_file: Option<String>,
    pub log_source_location: Option<LenientBool>,
    pub ca_subject: Option<CaSubjectSection>,
    pub ca_key_type: Option<String>,
    pub jwt_key_type: Option<String>,
    pub ca_ttl: Option<GoDuration>,
    pub default_x509_svid_ttl: Option<GoDuration>,
    /// SPIRE ≤ 1.5's name for `default_x509_svid_ttl` (deprecated; the 2022 Istio quickstart
    /// still sets it): accepted with a warning, see [`ServerSection::deprecation_warnings`].
    pub default_svid_ttl: Option<GoDuration>,
    pub default_jwt_svid_ttl: Option<GoDuration>,
    pub agent_ttl: Option<GoDuration>,
    pub jwt_issuer: Option<String>,
    pub disable_jwt_svids: Option<LenientBool>,
    #[serde(default)]
    pub admin_ids: Vec<String>,
    pub audit_log_enabled: Option<LenientBool>,
    pub prune_attested_nodes_expired_for: Option<GoDuration>,
    pub prune_attested_nodes_batch_size: Option<Lenient<u32>>,
    pub prune_tofu_nodes: Option<LenientBool>,
    pub ratelimit: Option<RateLimitSection>,
    pub max_attested_node_info_staleness: Option<GoDuration>,
    #[serde(default)]
    pub proxy_protocol_trusted_cidrs: Vec<String>,
    pub federation: Option<FederationSection>,
    pub experimental: Option<ExperimentalSection>,
    pub profiling_enabled: Option<LenientBool>,
    pub profiling_port: Option<Lenient<u16>>,
    pub profiling_freq: Option<Lenient<u32>>,
    #[serde(default)]
    pub profiling_names: Vec<String>,
}

/// `ca_subject { country, organization, common_name }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub struct CaSubjectSection {
    #[serde(default)]
    pub country: Vec<String>,
    #[serde(default)]
    pub organization: Vec<String>,
    #[serde(default)]
    pub common_name: String,
}

/// `ratelimit { attestation, signing }` (both default true).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub struct RateLimitSection {
    pub attestation: Option<LenientBool>,
    pub signing: Option<LenientBool>,
}

/// `federation { bundle_endpoint { … } federates_with "td" { … } }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)]
pub struct FederationSection {
    pub bundle_endpoint: Option<BundleEndpointSection>,
    #[serde(default)]
    pub federates_with: std::collections::BTreeMap<String, FederatesWithSection>,
}

/// `bundle_endpoint { address, port, refresh_hint, profile "…" { … } }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)]
pub struct BundleEndpointSection {
    pub address: Option<String>,
    pub port: Option<Lenient<u16>>,
    pub refresh_hint: Option<GoDuration>,
    /// `profile "https_web" { acme { … } | serving_cert_file { … } }` or `profile "https_spiffe" {}`.
    pub profile: Option<Value>,
    /// Deprecated top-level `acme { … }` (SPIRE still reads it).
    pub acme: Option<Value>,
}

/// `federates_with "<td>" { bundle_endpoint_url, bundle_endpoint_profile "…" { … } }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)]
pub struct FederatesWithSection {
    pub bundle_endpoint_url: Option<String>,
    pub bundle_endpoint_profile: Option<Value>,
    /// Deprecated: `bundle_endpoint { address, port, spiffe_id }` (SPIRE ≤ 1.0 form).
    pub bundle_endpoint: Option<Value>,
}

/// `experimental { … }`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs)]
pub struct ExperimentalSection {
    pub cache_reload_interval: Option<GoDuration>,
    pub events_based_cache: Option<LenientBool>,
    pub full_cache_reload_interval: Option<GoDuration>,
    pub prune_events_older_than: Option<GoDuration>,
    pub event_timeout: Option<GoDuration>,
    pub agent_spiffe_id_as_selector: Option<LenientBool>,
    pub auth_opa_policy_engine: Option<Value>,
    pub named_pipe_name: Option<String>,
    pub require_pq_kem: Option<LenientBool>,
    pub wit_issuer: Option<String>,
    pub wit_key_type: Option<String>,
    pub sql_transaction_timeout: Option<GoDuration>,
    #[serde(default)]
    pub feature_flags: Vec<String>,
    /// spire-rs only: do not serve `spirers.server.push.v1.Push`, so agents fall back to
    /// polling every `sync_interval` as they do against a SPIRE server (benchmarks, tests).
    pub disable_push: Option<LenientBool>,
}

/// `health_checks { listener_enabled, bind_address, bind_port, live_path, ready_path }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub struct HealthChecksSection {
    pub listener_enabled: Option<LenientBool>,
    pub bind_address: Option<String>,
    pub bind_port: Option<Lenient<u16>>,
    pub live_path: Option<String>,
    pub ready_path: Option<String>,
}

/// `telemetry { … }`: sinks are kept as trees until telemetry is implemented.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs, non_snake_case)] // SPIRE spells these keys in CamelCase
pub struct TelemetrySection {
    pub Prometheus: Option<Value>,
    pub DogStatsd: Option<OneOrMany<Value>>,
    pub Statsd: Option<OneOrMany<Value>>,
    pub M3: Option<OneOrMany<Value>>,
    pub InMem: Option<Value>,
    pub MetricPrefix: Option<String>,
    pub EnableTrustDomainLabel: Option<LenientBool>,
    pub EnableHostnameLabel: Option<LenientBool>,
    pub AllowedPrefixes: Option<Vec<String>>,
    pub BlockedPrefixes: Option<Vec<String>>,
    pub AllowedLabels: Option<Vec<String>>,
    pub BlockedLabels: Option<Vec<String>>,
}

// === impl ServerSection ===

impl ServerSection {
    /// SPIRE's default admin socket.
    pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";

    /// `bind_address`, default `0.0.0.0`.
    pub fn bind_address(&self) -> &str {
        self.bind_address.as_deref().unwrap_or("0.0.0.0")
    }

    /// `bind_port`, default 8081.
    pub fn bind_port(&self) -> u16 {
        self.bind_port.map_or(8081, |p| p.0)
    }

    /// `socket_path`, default `/tmp/spire-server/private/api.sock`.
    pub fn socket_path(&self) -> &str {
        self.socket_path
            .as_deref()
            .unwrap_or(Self::DEFAULT_SOCKET_PATH)
    }

    /// `ca_ttl`, default 24h.
    pub fn ca_ttl(&self) -> Duration {
        self.ca_ttl.map_or(Duration::from_secs(24 * 3600), |d| d.0)
    }

    /// `default_x509_svid_ttl` (or the deprecated `default_svid_ttl`), default 1h.
    pub fn default_x509_svid_ttl(&self) -> Duration {
        self.default_x509_svid_ttl
            .or(self.default_svid_ttl)
            .map_or(Duration::from_secs(3600), |d| d.0)
    }

    /// Keys that are accepted for older configurations but deprecated, each with the
    /// warning to log; an error when a deprecated key conflicts with its replacement.
    pub fn deprecation_warnings(&self) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        if self.default_svid_ttl.is_some() {
            if self.default_x509_svid_ttl.is_some() {
                return Err(
                    "default_svid_ttl is deprecated and cannot be set together with \
                            default_x509_svid_ttl; remove default_svid_ttl"
                        .into(),
                );
            }
            warnings.push(
                "The default_svid_ttl configurable is deprecated and will be removed in a future \
                 release; use default_x509_svid_ttl instead"
                    .into(),
            );
        }
        Ok(warnings)
    }

    /// `default_jwt_svid_ttl`, default 5m.
    pub fn default_jwt_svid_ttl(&self) -> Duration {
        self.default_jwt_svid_ttl
            .map_or(Duration::from_secs(300), |d| d.0)
    }

    /// `log_level`, default `INFO`.
    pub fn log_level(&self) -> &str {
        self.log_level.as_deref().unwrap_or("INFO")
    }
}
