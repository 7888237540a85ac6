//! Envoy SDS v3 (`envoy.service.secret.v3.SecretDiscoveryService`) as the SPIRE agent serves it.
//!
//! Served on the agent's public socket next to the Workload API, without its security header.
//! Each stream attests its caller like the Workload API does ([`spire_agent_workload::peer`]),
//! subscribes to the agent cache with the caller's selectors, and answers Envoy's resource
//! names with `Secret`s: an identity's TLS certificate, or a validation context for one trust
//! domain or for all of them ([`secrets`]). `StreamSecrets` follows SPIRE's state-of-the-world
//! rules ([`stream`]); `FetchSecrets` answers once; `DeltaSecrets` is not implemented.
//!
//! The `Secret` resources of one cache update are encoded once (through
//! `WorkloadUpdate::memo`) and shared by every stream that sends them; only `version_info` and
//! `nonce` are per stream.
#![forbid(unsafe_code)]

mod config;
pub mod node;
pub mod secrets;
mod service;
pub mod stream;

pub use config::SdsConfig;
pub use node::ValidatorMode;
pub use service::SdsService;

use tonic::Status;

/// Why an SDS request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Some requested resource names are not served to this caller (sorted, deduplicated).
    #[error("workload is not authorized for the requested identities {}", go_quoted_list(.0))]
    NotAuthorized(Vec<String>),
    /// `default_all_bundles_name` was asked by an Envoy that gets plain `trusted_ca` contexts.
    #[error("unable to use \"SPIFFE validator\" on Envoy below 1.17")]
    SpiffeValidatorUnsupported,
    /// The caller could not be attested.
    #[error("workload attestation failed")]
    AttestationFailed,
    /// The agent cache is gone (the agent is stopping).
    #[error("SDS is shutting down")]
    ShuttingDown,
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// === impl Error ===

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::NotAuthorized(_) => Status::invalid_argument(message),
            Error::SpiffeValidatorUnsupported => Status::internal(message),
            Error::AttestationFailed | Error::ShuttingDown => Status::unavailable(message),
        }
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `strconv.Quote` for the characters resource names can hold.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_authorized_message_is_spires() {
        let error = Error::NotAuthorized(vec!["default".into(), "spiffe://x/\"q\"".into()]);
        assert_eq!(
            error.to_string(),
            r#"workload is not authorized for the requested identities ["default" "spiffe://x/\"q\""]"#
        );
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(go_quote("a\u{1}\n"), r#""a\x01\n""#);
    }

    #[test]
    fn codes_follow_spire() {
        assert_eq!(
            Status::from(Error::SpiffeValidatorUnsupported).code(),
            tonic::Code::Internal
        );
        assert_eq!(
            Status::from(Error::AttestationFailed).message(),
            "workload attestation failed"
        );
    }
}
