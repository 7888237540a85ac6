//! The apiserver's `Status` objects, in the real wire shape and field order.

use serde::Serialize;

/// A `Status` response: an error (`Failure`) or a delete confirmation (`Success`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: StatusMeta,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Box<Details>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) code: u16,
}

/// `metadata` of a status: empty but for the continue token of an expired list.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
struct StatusMeta {
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<Box<str>>,
}

/// `details` of a status: the object it is about.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) group: String,
    /// The resource (plural) for most reasons; the kind for `Invalid`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) uid: String,
}

/// The resource as the apiserver names it in messages: `configmaps`, `leases.coordination.k8s.io`.
pub(crate) fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

// === impl Status ===

impl Status {
    /// A failure with `code`, the reason Kubernetes pairs with it, and `message`.
    pub(crate) fn failure(code: u16, message: impl Into<String>) -> Self {
        Self {
            kind: "Status",
            api_version: "v1",
            metadata: StatusMeta::default(),
            status: "Failure",
            message: message.into(),
            reason: reason_for(code),
            details: None,
            code,
        }
    }

    fn with_details(mut self, details: Details) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    fn about(group: &str, resource: &str, name: &str) -> Details {
        Details {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: resource.to_owned(),
            uid: String::new(),
        }
    }

    /// `401 Unauthorized`.
    pub(crate) fn unauthorized() -> Self {
        Self::failure(401, "Unauthorized")
    }

    /// `404 NotFound` for an object.
    pub(crate) fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::failure(
            404,
            format!("{} {name:?} not found", qualified(group, resource)),
        )
        .with_details(Self::about(group, resource, name))
    }

    /// `404 NotFound` for a path the server does not serve.
    pub(crate) fn no_such_resource() -> Self {
        Self::failure(404, "the server could not find the requested resource")
            .with_details(Details::default())
    }

    /// `409 AlreadyExists`.
    pub(crate) fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let mut status = Self::failure(
            409,
            format!("{} {name:?} already exists", qualified(group, resource)),
        )
        .with_details(Self::about(group, resource, name));
        status.reason = "AlreadyExists";
        status
    }

    /// `409 Conflict`: a stale resourceVersion (or another failed precondition).
    pub(crate) fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::failure(
            409,
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(group, resource)
            ),
        )
        .with_details(Self::about(group, resource, name))
    }

    /// The message of a stale-resourceVersion conflict.
    pub(crate) const MODIFIED: &'static str = "the object has been modified; please apply your \
                                               changes to the latest version and try again";

    /// `400 BadRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::failure(400, message)
    }

    /// `422 Invalid` for an object of `kind`.
    pub(crate) fn invalid(kind: &str, group: &str, name: &str, field_error: &str) -> Self {
        Self::failure(422, format!("{kind} {name:?} is invalid: {field_error}")).with_details(
            Details {
                name: name.to_owned(),
                group: group.to_owned(),
                kind: kind.to_owned(),
                uid: String::new(),
            },
        )
    }

    /// `405 MethodNotAllowed`.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::failure(405, message)
    }

    /// `405 MethodNotAllowed`: a create of a custom resource whose CRD is being deleted.
    pub(crate) fn crd_terminating(group: &str, resource: &str) -> Self {
        Self::failure(
            405,
            "create not allowed while custom resource definition is terminating",
        )
        .with_details(Self::about(group, resource, ""))
    }

    /// `415 UnsupportedMediaType` for a PATCH body type the resource does not take (custom
    /// resources take no strategic merge patch).
    pub(crate) fn unsupported_media_type(custom: bool) -> Self {
        let strategic = if custom {
            ""
        } else {
            "application/strategic-merge-patch+json, "
        };
        Self::failure(
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: application/json-patch+json, application/merge-patch+json, \
                 {strategic}application/apply-patch+yaml"
            ),
        )
    }

    /// The `Success` status a DELETE answers with.
    pub(crate) fn deleted(group: &str, resource: &str, name: &str, uid: &str) -> Self {
        Self {
            kind: "Status",
            api_version: "v1",
            metadata: StatusMeta::default(),
            status: "Success",
            message: String::new(),
            reason: "",
            details: Some(Box::new(Details {
                uid: uid.to_owned(),
                ..Self::about(group, resource, name)
            })),
            code: 0,
        }
    }

    /// `410 Expired`.
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        Self::failure(410, message)
    }

    /// The `410 Expired` of a list continued with an expired token; `inconsistent` continues
    /// the list from the current state.
    pub(crate) fn continue_expired(inconsistent: Option<String>) -> Self {
        let mut status = Self::expired(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue \
             token in this response to retrieve the remainder of the results. Continuing with \
             the provided token results in an inconsistent list - objects that were created, \
             modified, or deleted between the time the first chunk was returned and now may \
             show up in the list.",
        );
        status.metadata.continue_token = inconsistent.map(String::into_boxed_str);
        status
    }

    /// `403 Forbidden` for an object of `resource`.
    pub(crate) fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::failure(
            403,
            format!(
                "{} {name:?} is forbidden: {why}",
                qualified(group, resource)
            ),
        )
        .with_details(Self::about(group, resource, name))
    }

    /// `422 Invalid` without details (what a failed JSON patch answers).
    pub(crate) fn unprocessable() -> Self {
        Self::failure(
            422,
            "the server rejected our request due to an error in our request",
        )
    }

    /// The HTTP status code to answer with.
    pub(crate) fn http_code(&self) -> u16 {
        if self.code == 0 { 200 } else { self.code }
    }

    /// The JSON body.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Status serializes")
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
        _ => "",
    }
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}
