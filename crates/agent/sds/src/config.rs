//! The agent's `sds {}` settings.

/// The agent's `sds {}` block, with SPIRE's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdsConfig {
    /// `default_svid_name`: the name that returns the caller's first identity (`default`).
    pub default_svid_name: String,
    /// `default_bundle_name`: the name that returns the own trust domain's validation context
    /// (`ROOTCA`).
    pub default_bundle_name: String,
    /// `default_all_bundles_name`: the name that returns one SPIFFE-validator context with
    /// every trust domain the caller may see (`ALL`).
    pub default_all_bundles_name: String,
    /// `disable_spiffe_cert_validation`: plain `trusted_ca` contexts unless an Envoy's node
    /// metadata says otherwise (`false`).
    pub disable_spiffe_cert_validation: bool,
}

// === impl SdsConfig ===

impl SdsConfig {
    /// SPIRE's `default_svid_name`.
    pub const DEFAULT_SVID_NAME: &str = "default";
    /// SPIRE's `default_bundle_name`.
    pub const DEFAULT_BUNDLE_NAME: &str = "ROOTCA";
    /// SPIRE's `default_all_bundles_name`.
    pub const DEFAULT_ALL_BUNDLES_NAME: &str = "ALL";
}

impl Default for SdsConfig {
    fn default() -> Self {
        Self {
            default_svid_name: Self::DEFAULT_SVID_NAME.to_owned(),
            default_bundle_name: Self::DEFAULT_BUNDLE_NAME.to_owned(),
            default_all_bundles_name: Self::DEFAULT_ALL_BUNDLES_NAME.to_owned(),
            disable_spiffe_cert_validation: false,
        }
    }
}
