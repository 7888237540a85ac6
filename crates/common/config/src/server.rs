//! The `server { }` section: every key SPIRE documents, with SPIRE's defaults, and which of
//! them spire-rs refuses ([`ServerSection::refusals`], [`TelemetrySection::refusals`]) or
//! accepts without effect yet ([`ServerSection::ignored`]).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::de::{GoDuration, Lenient, LenientBool, OneOrMany};
use crate::refused::{Findings, Refusal};

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
    pub proxy_protocol_trusted_cidrs: Option<Vec<String>>,
    pub federation: Option<FederationSection>,
    pub experimental: Option<ExperimentalSection>,
    pub profiling_enabled: Option<LenientBool>,
    pub profiling_port: Option<Lenient<u16>>,
    pub profiling_freq: Option<Lenient<u32>>,
    pub profiling_names: Option<Vec<String>>,
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

/// `telemetry { … }`: the Prometheus sink and the labels are served by `spire-metrics`; the
/// other sinks and the filters are refused ([`TelemetrySection::refusals`]).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[allow(missing_docs, non_snake_case)] // SPIRE spells these keys in CamelCase
pub struct TelemetrySection {
    pub Prometheus: Option<PrometheusSection>,
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

/// `telemetry { Prometheus { host port } }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[allow(missing_docs)]
pub struct PrometheusSection {
    pub host: Option<String>,
    pub port: Option<Lenient<u16>>,
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

    /// `log_source_location`, default false.
    pub fn log_source_location(&self) -> bool {
        is_true(self.log_source_location)
    }

    /// The keys set here that spire-rs does not implement, each with the reason. A key is
    /// refused when present, or (for a flag whose `false` is SPIRE's default and spire-rs's
    /// behaviour) when true.
    pub fn refusals(&self) -> Vec<Refusal> {
        let mut found = Findings::new("server");
        found.present(
            &self.max_attested_node_info_staleness,
            "max_attested_node_info_staleness",
            "attested node information is not cached, so there is no staleness to bound",
        );
        found.present(
            &self.proxy_protocol_trusted_cidrs,
            "proxy_protocol_trusted_cidrs",
            "the server port does not read PROXY protocol headers",
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

    /// Warnings for keys spire-rs accepts without acting on them yet: none in `server` today
    /// (`ratelimit`, once warned about here, is enforced).
    pub fn ignored(&self) -> Vec<String> {
        Findings::new("server").into_warnings()
    }

    /// `ratelimit { attestation, signing }` as `(attestation, signing)`: each on unless set to
    /// false, as in SPIRE (no block, or `ratelimit {}`, means both on).
    pub fn rate_limits(&self) -> (bool, bool) {
        let on = |set: Option<LenientBool>| set.is_none_or(|b| b.0);
        self.ratelimit
            .as_ref()
            .map_or((true, true), |r| (on(r.attestation), on(r.signing)))
    }
}

// === impl ExperimentalSection ===

impl ExperimentalSection {
    fn refusals(&self, found: &mut Findings) {
        found.present(
            &self.auth_opa_policy_engine,
            "experimental.auth_opa_policy_engine",
            "OPA/Rego policies cannot be loaded (authorization follows SPIRE's default policy)",
        );
        found.when(
            is_true(self.agent_spiffe_id_as_selector),
            "experimental.agent_spiffe_id_as_selector",
            "an agent's SPIFFE ID is not offered as a selector",
        );
        found.present(
            &self.named_pipe_name,
            "experimental.named_pipe_name",
            "there are no Windows named pipes (use socket_path)",
        );
        found.when(
            is_true(self.require_pq_kem),
            "experimental.require_pq_kem",
            "TLS key exchange cannot be restricted to post-quantum groups",
        );
        found.present(
            &self.wit_issuer,
            "experimental.wit_issuer",
            "WIT-SVIDs are not issued",
        );
        found.present(
            &self.wit_key_type,
            "experimental.wit_key_type",
            "WIT-SVIDs are not issued",
        );
        found.present(
            &self.sql_transaction_timeout,
            "experimental.sql_transaction_timeout",
            "the datastore has no transaction timeout setting",
        );
        found.present(
            &self.full_cache_reload_interval,
            "experimental.full_cache_reload_interval",
            "the entry cache follows the change feed and never reloads in full",
        );
        found.present(
            &self.event_timeout,
            "experimental.event_timeout",
            "the change feed has no event gap timeout",
        );
        feature_flags(found, &self.feature_flags);
    }
}

// === impl TelemetrySection ===

impl TelemetrySection {
    /// The keys spire-rs does not implement, refused by name: the sinks other than
    /// Prometheus and the prefix and label filters.
    pub fn refusals(&self) -> Vec<Refusal> {
        let mut found = Findings::new("telemetry");
        let sink = "spire-rs exports metrics through telemetry.Prometheus only";
        found.when(self.DogStatsd.is_some(), "DogStatsd", sink);
        found.when(self.Statsd.is_some(), "Statsd", sink);
        found.when(self.M3.is_some(), "M3", sink);
        found.when(self.InMem.is_some(), "InMem", sink);
        let filter = "metric filters are not implemented; every series is exported";
        found.when(self.AllowedPrefixes.is_some(), "AllowedPrefixes", filter);
        found.when(self.BlockedPrefixes.is_some(), "BlockedPrefixes", filter);
        found.when(self.AllowedLabels.is_some(), "AllowedLabels", filter);
        found.when(self.BlockedLabels.is_some(), "BlockedLabels", filter);
        found.into_refusals()
    }
}

/// True when a flag is set to true.
pub(crate) fn is_true(flag: Option<LenientBool>) -> bool {
    flag.is_some_and(|b| b.0)
}

/// `profiling_*` (both binaries): `profiling_enabled = false` asks for what spire-rs does;
/// anything else asks for the pprof endpoint it does not have.
pub(crate) fn profiling(
    found: &mut Findings,
    enabled: Option<LenientBool>,
    port: &Option<Lenient<u16>>,
    freq: &Option<Lenient<u32>>,
    names: &Option<Vec<String>>,
) {
    const REASON: &str = "there is no profiling (pprof) endpoint";
    found.when(is_true(enabled), "profiling_enabled", REASON);
    found.present(port, "profiling_port", REASON);
    found.present(freq, "profiling_freq", REASON);
    found.present(names, "profiling_names", REASON);
}

/// `experimental.feature_flags` (both binaries): spire-rs has none of SPIRE's flags.
pub(crate) fn feature_flags(found: &mut Findings, flags: &[String]) {
    found.when(
        !flags.is_empty(),
        "experimental.feature_flags",
        &format!(
            "spire-rs has none of SPIRE's feature flags (set: {})",
            flags
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}
