//! `telemetry { }` resolved: the Prometheus listener and the process-wide labels.

use spire_config::server::TelemetrySection;

use crate::Registry;

/// `telemetry.Prometheus.host` when unset (SPIRE's default).
pub const DEFAULT_PROMETHEUS_HOST: &str = "localhost";

/// The resolved `telemetry { }` section of either binary. The sinks and filters spire-rs does
/// not implement are refused by [`TelemetrySection::refusals`] before this is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `Prometheus { host port }`: serve the exposition there; `None` serves nothing (the
    /// series are still kept).
    pub prometheus: Option<(String, u16)>,
    /// `MetricPrefix`, else `spire_server` / `spire_agent`.
    pub prefix: String,
    /// `EnableHostnameLabel` (default true): a `host` label on every series.
    pub hostname_label: bool,
    /// `EnableTrustDomainLabel` (default false): a `trust_domain_id` label on every series.
    pub trust_domain_label: bool,
}

impl TelemetryConfig {
    /// Resolves `section` for a binary whose default prefix is `default_prefix`.
    pub fn from_section(section: &TelemetrySection, default_prefix: &str) -> Result<Self, String> {
        let prometheus = match &section.Prometheus {
            None => None,
            Some(p) => {
                let host = p
                    .host
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| DEFAULT_PROMETHEUS_HOST.to_owned());
                let port = p
                    .port
                    .map(|p| p.0)
                    .ok_or_else(|| "telemetry.Prometheus.port is required".to_owned())?;
                Some((host, port))
            }
        };
        Ok(Self {
            prometheus,
            prefix: section
                .MetricPrefix
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| default_prefix.to_owned()),
            hostname_label: section.EnableHostnameLabel.is_none_or(|b| b.0),
            trust_domain_label: section.EnableTrustDomainLabel.is_some_and(|b| b.0),
        })
    }

    /// Nothing configured: no listener, `default_prefix`, the host label on.
    pub fn unconfigured(default_prefix: &str) -> Self {
        Self {
            prometheus: None,
            prefix: default_prefix.to_owned(),
            hostname_label: true,
            trust_domain_label: false,
        }
    }

    /// The registry these settings describe, for a process of `trust_domain`.
    pub fn registry(&self, trust_domain: &str) -> Registry {
        let host = crate::hostname();
        let mut labels: Vec<(&str, &str)> = Vec::new();
        if self.hostname_label {
            labels.push(("host", &host));
        }
        if self.trust_domain_label {
            labels.push(("trust_domain_id", trust_domain));
        }
        Registry::new(&self.prefix, &labels)
    }
}
