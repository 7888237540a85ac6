//! The one place errors become gRPC statuses: SPIRE's message shapes (`msg` or `msg: cause`)
//! and its logging (every non-OK outcome is logged once, here).

use std::fmt::Display;

use prost::Message as _;
use spire_proto::spire::api::types;
use spire_proto::spire::api::types::permission_denied_details::Reason;
use spire_server_datastore::Error as DsError;
use tonic::{Code, Status};

/// Logs the failure and returns the status SPIRE returns for it: the message is `msg`, or
/// `msg: cause` when there is a cause, except for `NotFound`, which never carries its cause.
pub(crate) fn make_err(code: Code, msg: &str, cause: Option<&dyn Display>) -> Status {
    Status::new(code, log_and_format(code, msg, cause))
}

/// `PermissionDenied` with `message` and, as grpc-go sends it, a `grpc-status-details-bin`
/// trailer: `google.rpc.Status{code, message, details: [Any(PermissionDeniedDetails{reason})]}`.
pub(crate) fn permission_denied(reason: Reason, message: &str) -> Status {
    tracing::warn!(reason = reason.as_str_name(), "{}", capitalize(message));
    let details = types::PermissionDeniedDetails {
        reason: reason.into(),
    };
    let rpc = RpcStatus {
        code: Code::PermissionDenied as i32,
        message: message.to_owned(),
        details: vec![RpcAny {
            type_url: PERMISSION_DENIED_DETAILS_URL.to_owned(),
            value: details.encode_to_vec(),
        }],
    };
    Status::with_details(Code::PermissionDenied, message, rpc.encode_to_vec().into())
}

/// The `PermissionDeniedDetails` of a status made by [`permission_denied`] (or by SPIRE).
pub(crate) fn permission_denied_details(status: &Status) -> Option<types::PermissionDeniedDetails> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    rpc.details
        .iter()
        .find(|any| any.type_url == PERMISSION_DENIED_DETAILS_URL)
        .and_then(|any| types::PermissionDeniedDetails::decode(any.value.as_slice()).ok())
}

const PERMISSION_DENIED_DETAILS_URL: &str =
    "type.googleapis.com/spire.api.types.PermissionDeniedDetails";

/// `google.rpc.Status` (the only use of it; no proto file needed).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// [`make_err`] for a per-item result of a batch RPC.
pub(crate) fn make_status(code: Code, msg: &str, cause: Option<&dyn Display>) -> types::Status {
    if code == Code::Ok {
        return ok();
    }
    types::Status {
        code: code as i32,
        message: log_and_format(code, msg, cause),
    }
}

/// The per-item status of a success, `{code: OK, message: "OK"}` as SPIRE sends it.
pub(crate) fn ok() -> types::Status {
    types::Status {
        code: Code::Ok as i32,
        message: "OK".to_owned(),
    }
}

/// A per-item status with exactly this message, logged at warn level.
pub(crate) fn plain_status(code: Code, message: &str) -> types::Status {
    tracing::warn!(code = ?code, "{message}");
    types::Status {
        code: code as i32,
        message: message.to_owned(),
    }
}

/// The gRPC code for a datastore failure: item-level variants keep their meaning, a backend
/// failure is `Internal`.
pub(crate) fn ds_code(error: &DsError) -> Code {
    match error {
        DsError::NotFound(_) => Code::NotFound,
        DsError::AlreadyExists { .. } => Code::AlreadyExists,
        DsError::InvalidArgument(_) => Code::InvalidArgument,
        DsError::FailedPrecondition(_) => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

/// `Internal` with `msg: error`, for a datastore call that has no item-level meaning here.
pub(crate) fn internal(msg: &str, error: &dyn Display) -> Status {
    make_err(Code::Internal, msg, Some(error))
}

fn log_and_format(code: Code, msg: &str, cause: Option<&dyn Display>) -> String {
    match (code, cause) {
        (Code::NotFound, _) | (_, None) => {
            log(code, msg, None);
            msg.to_owned()
        }
        (_, Some(cause)) => {
            let cause = cause.to_string();
            log(code, msg, Some(&cause));
            format!("{msg}: {cause}")
        }
    }
}

/// As SPIRE logs a failure: the cause, when there is one, in the `error` field.
fn log(code: Code, msg: &str, cause: Option<&str>) {
    match code {
        Code::InvalidArgument => tracing::error!(error = cause, "Invalid argument: {msg}"),
        Code::NotFound => tracing::error!("{}", capitalize(msg)),
        _ => tracing::error!(code = ?code, error = cause, "{}", capitalize(msg)),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_msg_then_cause_except_for_not_found() {
        let cause: &dyn Display = &"boom";
        assert_eq!(
            make_err(Code::Internal, "failed to x", Some(cause)).message(),
            "failed to x: boom"
        );
        assert_eq!(
            make_err(Code::NotFound, "entry not found", Some(cause)).message(),
            "entry not found"
        );
        assert_eq!(
            make_err(Code::InvalidArgument, "bad", None).message(),
            "bad"
        );
        assert_eq!(make_status(Code::Ok, "ignored", None), ok());
        assert_eq!(capitalize("failed"), "Failed");
    }
}
