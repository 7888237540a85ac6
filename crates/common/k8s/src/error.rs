//! The one error type of the crate.

use std::path::PathBuf;
use std::time::Duration;

use crate::types::Status;

/// What can go wrong talking to the apiserver or the kubelet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (a kubeconfig without a current context, an exec
    /// credential plugin, a bad URL, a certificate that does not parse, ...).
    #[error("{0}")]
    Config(String),
    /// A file the configuration names could not be read.
    #[error("unable to read {what} {}: {source}", path.display())]
    File {
        /// What the file holds ("kubeconfig", "token file", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The request itself is malformed (e.g. an empty resource name).
    #[error("{0}")]
    InvalidRequest(String),
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("{message}")]
    Transport {
        /// The request (`GET <url>`) and the whole chain of causes, outermost first.
        message: String,
        /// The outermost cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No complete answer within the per-request timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The apiserver answered with an error status; displays as its `Status.message`.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The kubelet answered `/pods` with a status other than 200.
    #[error("unexpected status code on pods response: {code} {body}")]
    UnexpectedStatus {
        /// The HTTP status code.
        code: u16,
        /// At most 1 KiB of the body (lossy UTF-8).
        body: String,
    },
    /// A response body was larger than allowed; reading stopped at the limit.
    #[error("response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A 2xx response whose body is not what the call expects.
    #[error("unable to decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// An apiserver error response: the HTTP status with its `Status` object. Displays as
/// client-go does, i.e. as the status message (e.g. `pods "x" not found`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// `Status.message`, or a generic message when the body was not a `Status`.
    pub message: String,
    /// `Status.reason` (`NotFound`, `Conflict`, ...), or the reason that goes with the code
    /// when the body did not name one.
    pub reason: String,
    /// The decoded `Status`, when the body was one.
    pub status: Option<Box<Status>>,
}

// === impl Error ===

impl Error {
    /// The HTTP status code of an apiserver or kubelet error response.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.code),
            Self::UnexpectedStatus { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The apiserver's `Status.reason` (`NotFound`, `Conflict`, `AlreadyExists`, ...).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Api(api) => Some(&api.reason),
            _ => None,
        }
    }

    /// True for an apiserver `404 NotFound`.
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404) && matches!(self, Self::Api(_))
    }

    /// True for an apiserver `409` (`Conflict` or `AlreadyExists`).
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409) && matches!(self, Self::Api(_))
    }

    /// True when the configuration (not the server) is at fault.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config(_) | Self::File { .. })
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }

    /// A transport failure of the request `what` (e.g. `GET https://host/path`).
    pub(crate) fn transport(
        what: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        let mut message = format!("{what}: {source}");
        let mut cause = source.source();
        while let Some(next) = cause {
            let text = next.to_string();
            // hyper wraps causes in layers that repeat them; skip repeats.
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = next.source();
        }
        Self::Transport { message, source }
    }
}

// === impl ApiError ===

impl ApiError {
    /// The error for an apiserver response with `code` and `body`.
    pub(crate) fn from_response(code: u16, body: &[u8]) -> Self {
        let status = serde_json::from_slice::<Status>(body)
            .ok()
            .filter(|s| s.kind == "Status" || !s.message.is_empty());
        match status {
            Some(status) => Self {
                code,
                message: if status.message.is_empty() {
                    generic_message(code)
                } else {
                    status.message.clone()
                },
                reason: if status.reason.is_empty() {
                    reason_for(code).to_owned()
                } else {
                    status.reason.clone()
                },
                status: Some(Box::new(status)),
            },
            None => Self {
                code,
                message: generic_message(code),
                reason: reason_for(code).to_owned(),
                status: None,
            },
        }
    }
}

fn generic_message(code: u16) -> String {
    match code {
        401 => "Unauthorized".to_owned(),
        403 => "forbidden: the server does not allow this request".to_owned(),
        404 => "the server could not find the requested resource".to_owned(),
        _ => format!("the server responded with status code {code} and no status details"),
    }
}

/// The `StatusReason` Kubernetes pairs with an HTTP code.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_display_the_status_message() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#;
        let error = Error::from(ApiError::from_response(404, body));
        assert_eq!(error.to_string(), r#"pods "x" not found"#);
        assert_eq!(error.status_code(), Some(404));
        assert_eq!(error.reason(), Some("NotFound"));
        assert!(error.is_not_found());
        assert!(!error.is_conflict());
        let Error::Api(api) = error else { panic!() };
        let details = api.status.unwrap().details.unwrap();
        assert_eq!(
            (details.name.as_str(), details.kind.as_str()),
            ("x", "pods")
        );
    }

    #[test]
    fn api_errors_without_a_status_body_get_a_generic_message_and_reason() {
        let error = Error::from(ApiError::from_response(502, b"<html>bad gateway</html>"));
        assert_eq!(
            error.to_string(),
            "the server responded with status code 502 and no status details"
        );
        assert_eq!(error.reason(), Some("Unknown"));
        let error = Error::from(ApiError::from_response(409, b""));
        assert!(error.is_conflict());
        assert_eq!(error.reason(), Some("Conflict"));
        let error = Error::from(ApiError::from_response(401, b"{}"));
        assert_eq!(error.to_string(), "Unauthorized");
    }

    #[test]
    fn kubelet_status_errors_read_like_spire() {
        let error = Error::UnexpectedStatus {
            code: 403,
            body: "Forbidden (user=x, verb=get, resource=nodes, subresource=proxy)".into(),
        };
        assert_eq!(
            error.to_string(),
            "unexpected status code on pods response: 403 Forbidden (user=x, verb=get, resource=nodes, subresource=proxy)"
        );
        assert_eq!(error.status_code(), Some(403));
        assert!(!error.is_not_found());
    }

    #[test]
    fn transport_errors_flatten_their_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let error = Error::transport(
            "GET https://10.96.0.1:443/api/v1/nodes/n",
            Outer(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            )),
        );
        assert_eq!(
            error.to_string(),
            "GET https://10.96.0.1:443/api/v1/nodes/n: client error (Connect): connection refused"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
