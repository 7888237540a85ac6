//! Why the server refused an agent: `PermissionDeniedDetails` carried in the
//! `grpc-status-details-bin` trailer (a `google.rpc.Status` whose details hold an `Any`).

use prost::Message as _;
use spire_proto::spire::api::types::PermissionDeniedDetails;
pub use spire_proto::spire::api::types::permission_denied_details::Reason;

/// The `Any` type URL of the details message.
pub const PERMISSION_DENIED_DETAILS_TYPE_URL: &str =
    "type.googleapis.com/spire.api.types.PermissionDeniedDetails";

/// `google.rpc.Status`, defined here (we need only its wire shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// The reason of a `PermissionDenied` status, when the server attached one.
pub fn permission_denied_reason(status: &tonic::Status) -> Option<Reason> {
    if status.code() != tonic::Code::PermissionDenied {
        return None;
    }
    let rpc = RpcStatus::decode(status.details()).ok()?;
    rpc.details
        .iter()
        .filter(|any| any.type_url == PERMISSION_DENIED_DETAILS_TYPE_URL)
        .find_map(|any| PermissionDeniedDetails::decode(any.value.as_slice()).ok())
        .and_then(|d| Reason::try_from(d.reason).ok())
        .filter(|r| *r != Reason::Unknown)
}

/// A `PermissionDenied` status carrying `reason` as SPIRE's server sends it (tests, fakes).
pub fn permission_denied(message: &str, reason: Reason) -> tonic::Status {
    let details = PermissionDeniedDetails {
        reason: reason as i32,
    };
    let rpc = RpcStatus {
        code: tonic::Code::PermissionDenied as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: PERMISSION_DENIED_DETAILS_TYPE_URL.to_owned(),
            value: details.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(
        tonic::Code::PermissionDenied,
        message,
        rpc.encode_to_vec().into(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_reason_round_trips_through_the_trailer_encoding() {
        for reason in [
            Reason::AgentExpired,
            Reason::AgentNotAttested,
            Reason::AgentNotActive,
            Reason::AgentBanned,
            Reason::AgentMustReattest,
        ] {
            let status = permission_denied("denied", reason);
            // Through the real header encoding, as a client receives it.
            let mut headers = http::HeaderMap::new();
            status.add_header(&mut headers).unwrap();
            let received = tonic::Status::from_header_map(&headers).unwrap();
            assert_eq!(permission_denied_reason(&received), Some(reason));
        }
    }

    #[test]
    fn other_statuses_have_no_reason() {
        assert_eq!(
            permission_denied_reason(&tonic::Status::permission_denied("no details")),
            None
        );
        assert_eq!(
            permission_denied_reason(&tonic::Status::unavailable("down")),
            None
        );
        let garbage = tonic::Status::with_details(
            tonic::Code::PermissionDenied,
            "x",
            vec![0xff, 0xff].into(),
        );
        assert_eq!(permission_denied_reason(&garbage), None);
    }
}
