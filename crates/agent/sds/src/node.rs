//! What an Envoy's `Node` says about the validation contexts it can take.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::google::protobuf::value::Kind;

/// The node metadata key that overrides `disable_spiffe_cert_validation` for one Envoy.
pub const DISABLE_SPIFFE_CERT_VALIDATION_KEY: &str = "disable_spiffe_cert_validation";

/// How validation contexts are shaped for one Envoy (compat §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidatorMode {
    /// `custom_validator_config` = `envoy.tls.cert_validator.spiffe` with a
    /// `SPIFFECertValidatorConfig` listing trust domains and their roots.
    Spiffe,
    /// Plain `trusted_ca` PEM roots (SPIFFE validation disabled, or Envoy older than 1.18).
    TrustedCa,
}

// === impl ValidatorMode ===

impl ValidatorMode {
    /// The mode for `node` (`None`: the stream never sent one): plain `trusted_ca` when the
    /// node's metadata `disable_spiffe_cert_validation` (bool, or a string Go's
    /// `strconv.ParseBool` accepts) is true — or, without that key, when `config_disabled` —
    /// or when the node's `user_agent_build_version` is below 1.18; otherwise the SPIFFE
    /// validator. A node without a build version is assumed to support it.
    pub fn for_node(config_disabled: bool, node: Option<&Node>) -> Self {
        if validation_disabled(config_disabled, node) || !supports_spiffe_validator(node) {
            Self::TrustedCa
        } else {
            Self::Spiffe
        }
    }
}

fn validation_disabled(config_disabled: bool, node: Option<&Node>) -> bool {
    let value = node
        .and_then(|node| node.metadata.as_ref())
        .and_then(|metadata| metadata.fields.get(DISABLE_SPIFFE_CERT_VALIDATION_KEY))
        .and_then(|value| value.kind.as_ref());
    match value {
        Some(Kind::BoolValue(disabled)) => *disabled,
        Some(Kind::StringValue(text)) => parse_go_bool(text).unwrap_or_else(|| {
            tracing::warn!(
                value = %text,
                "invalid {DISABLE_SPIFFE_CERT_VALIDATION_KEY} node metadata; using the agent's setting"
            );
            config_disabled
        }),
        _ => config_disabled,
    }
}

fn supports_spiffe_validator(node: Option<&Node>) -> bool {
    match node.and_then(|node| node.user_agent_version_type.as_ref()) {
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => {
            let (major, minor) = build
                .version
                .as_ref()
                .map_or((0, 0), |v| (v.major_number, v.minor_number));
            major > 1 || (major == 1 && minor >= 18)
        }
        _ => true,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::BuildVersion;
    use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
    use envoy_types::pb::google::protobuf::{Struct, Value};

    use super::*;

    fn node(metadata: Option<Kind>, version: Option<(u32, u32)>) -> Node {
        Node {
            metadata: metadata.map(|kind| Struct {
                fields: [(
                    DISABLE_SPIFFE_CERT_VALIDATION_KEY.to_owned(),
                    Value { kind: Some(kind) },
                )]
                .into_iter()
                .collect(),
            }),
            user_agent_version_type: version.map(|(major, minor)| {
                UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
                    version: Some(SemanticVersion {
                        major_number: major,
                        minor_number: minor,
                        patch: 0,
                    }),
                    metadata: None,
                })
            }),
            ..Node::default()
        }
    }

    #[test]
    fn mode_table() {
        use ValidatorMode::{Spiffe, TrustedCa};
        let string = |s: &str| Some(Kind::StringValue(s.to_owned()));
        #[rustfmt::skip]
        let rows: Vec<(bool, Option<Node>, ValidatorMode)> = vec![
            // (config disabled, node, expected)
            (false, None, Spiffe),
            (true, None, TrustedCa),
            (false, Some(node(None, None)), Spiffe),
            (false, Some(node(None, Some((1, 18)))), Spiffe),
            (false, Some(node(None, Some((2, 0)))), Spiffe),
            (false, Some(node(None, Some((1, 17)))), TrustedCa),
            (false, Some(node(None, Some((0, 30)))), TrustedCa),
            (false, Some(node(Some(Kind::BoolValue(true)), None)), TrustedCa),
            (true, Some(node(Some(Kind::BoolValue(false)), None)), Spiffe),
            (false, Some(node(string("true"), None)), TrustedCa),
            (false, Some(node(string("1"), None)), TrustedCa),
            (true, Some(node(string("false"), None)), Spiffe),
            (true, Some(node(string("nonsense"), None)), TrustedCa),
            (false, Some(node(string("nonsense"), None)), Spiffe),
            (true, Some(node(Some(Kind::NumberValue(0.0)), None)), TrustedCa),
            // An old Envoy cannot be forced into the SPIFFE validator.
            (false, Some(node(Some(Kind::BoolValue(false)), Some((1, 17)))), TrustedCa),
        ];
        for (i, (config, node, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                ValidatorMode::for_node(config, node.as_ref()),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn user_agent_version_string_is_not_a_build_version() {
        let node = Node {
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion("1.10".into())),
            ..Node::default()
        };
        assert_eq!(
            ValidatorMode::for_node(false, Some(&node)),
            ValidatorMode::Spiffe
        );
    }
}
