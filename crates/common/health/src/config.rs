//! `health_checks { }` resolved with SPIRE's defaults, and the listener's resource limits.

use std::time::Duration;

use spire_config::server::HealthChecksSection;
use spire_config::{ConfigError, Document};

/// `bind_address` when unset or empty (SPIRE's default).
pub const DEFAULT_BIND_ADDRESS: &str = "localhost";
/// `bind_port` when unset (SPIRE's default).
pub const DEFAULT_BIND_PORT: u16 = 80;
/// `live_path` when unset or empty (SPIRE's default).
pub const DEFAULT_LIVE_PATH: &str = "/live";
/// `ready_path` when unset or empty (SPIRE's default).
pub const DEFAULT_READY_PATH: &str = "/ready";

/// The resolved `health_checks { }` section of either binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// `listener_enabled` (default false): serve the HTTP paths. The checks run either way, as
    /// in SPIRE, so failures are logged even without a listener.
    pub listener_enabled: bool,
    /// `bind_address` (default `localhost`); a host name binds its first IPv4 address, as
    /// Go's `net.Listen` does.
    pub bind_address: String,
    /// `bind_port` (default 80).
    pub bind_port: u16,
    /// `live_path` (default `/live`).
    pub live_path: String,
    /// `ready_path` (default `/ready`).
    pub ready_path: String,
    /// Resource limits of the listener (not configurable in SPIRE's file).
    pub limits: HealthLimits,
}

/// What one client, or a flood of them, can make the listener hold. With the defaults the
/// listener never keeps more than `max_connections` connections, each with at most one
/// request head of `max_header_size` bytes buffered, for at most `connection_timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthLimits {
    /// Open connections at most; a connection beyond them is closed at once (default 64).
    pub max_connections: usize,
    /// The request head must arrive within this (default 10 s, SPIRE's `ReadHeaderTimeout`).
    pub header_read_timeout: Duration,
    /// Largest request head in bytes, start line included; larger gets
    /// `431 Request Header Fields Too Large` (default 8 KiB).
    pub max_header_size: usize,
    /// Most header fields in one request; more gets 431 (default 32).
    pub max_headers: usize,
    /// A connection is closed this long after it was accepted, whatever it is doing (default
    /// 30 s). Every response also closes its connection (no keep-alive).
    pub connection_timeout: Duration,
}

// === impl HealthConfig ===

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            listener_enabled: false,
            bind_address: DEFAULT_BIND_ADDRESS.to_owned(),
            bind_port: DEFAULT_BIND_PORT,
            live_path: DEFAULT_LIVE_PATH.to_owned(),
            ready_path: DEFAULT_READY_PATH.to_owned(),
            limits: HealthLimits::default(),
        }
    }
}

impl HealthConfig {
    /// Reads `health_checks { }` from a parsed configuration file (absent = defaults); unknown
    /// keys are an error that names them.
    pub fn from_document(doc: &Document) -> Result<Self, ConfigError> {
        let section: HealthChecksSection = doc.section("health_checks")?;
        Ok(Self::from(&section))
    }

    /// `bind_address:bind_port` as written in logs.
    pub fn address(&self) -> String {
        if self.bind_address.contains(':') && !self.bind_address.starts_with('[') {
            format!("[{}]:{}", self.bind_address, self.bind_port)
        } else {
            format!("{}:{}", self.bind_address, self.bind_port)
        }
    }
}

/// SPIRE's defaults for every key that is absent or, for the strings, empty.
impl From<&HealthChecksSection> for HealthConfig {
    fn from(section: &HealthChecksSection) -> Self {
        let text = |value: &Option<String>, default: &str| {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        Self {
            listener_enabled: section.listener_enabled.is_some_and(|b| b.0),
            bind_address: text(&section.bind_address, DEFAULT_BIND_ADDRESS),
            bind_port: section.bind_port.map_or(DEFAULT_BIND_PORT, |p| p.0),
            live_path: text(&section.live_path, DEFAULT_LIVE_PATH),
            ready_path: text(&section.ready_path, DEFAULT_READY_PATH),
            limits: HealthLimits::default(),
        }
    }
}

// === impl HealthLimits ===

impl Default for HealthLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            max_header_size: 8 * 1024,
            max_headers: 32,
            connection_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HealthConfig, ConfigError> {
        HealthConfig::from_document(&Document::parse(text)?)
    }

    #[test]
    fn absent_section_takes_spire_s_defaults() {
        let config = parse("server { trust_domain = \"example.org\" }").expect("parses");
        assert_eq!(config, HealthConfig::default());
        assert!(!config.listener_enabled);
        assert_eq!(config.address(), "localhost:80");
        assert_eq!(config.live_path, "/live");
        assert_eq!(config.ready_path, "/ready");
    }

    #[test]
    fn the_istio_quickstart_section_is_read() {
        let config = parse(
            r#"
health_checks {
    listener_enabled = true
    bind_address = "0.0.0.0"
    bind_port = "8080"
    live_path = "/live"
    ready_path = "/ready"
}
"#,
        )
        .expect("parses");
        assert!(config.listener_enabled);
        assert_eq!(config.address(), "0.0.0.0:8080");
    }

    #[test]
    fn empty_strings_mean_the_default_as_in_spire() {
        let config =
            parse(r#"health_checks { bind_address = "" live_path = "" ready_path = "/healthz" }"#)
                .expect("parses");
        assert_eq!(config.bind_address, "localhost");
        assert_eq!(config.live_path, "/live");
        assert_eq!(config.ready_path, "/healthz");
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = parse("health_checks { listener_enabled = true, bind_prot = 80 }")
            .expect_err("unknown key");
        assert!(
            error.to_string().contains("health_checks.bind_prot"),
            "{error}"
        );
    }

    #[test]
    fn ipv6_literals_are_bracketed_in_the_address() {
        let config = HealthConfig {
            bind_address: "::1".into(),
            bind_port: 8080,
            ..HealthConfig::default()
        };
        assert_eq!(config.address(), "[::1]:8080");
    }
}
