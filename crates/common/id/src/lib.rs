//! SPIFFE IDs, trust domains and selectors as types that are valid by construction.
//!
//! Parsing follows SPIRE (go-spiffe) strictly and returns its messages: no uppercase, no
//! percent-encoding, no userinfo or port, no empty or dot segments. The length limits of the
//! SPIFFE specification are enforced when spire-rs *creates* an ID ([`TrustDomain::new`],
//! [`SpiffeId::from_path`], [`SpiffeId::check_creatable`]), not when it parses an ID that
//! someone else sent.
#![forbid(unsafe_code)]

pub mod go_fmt;
mod selector;
mod spiffe_id;
mod trust_domain;

pub use selector::{Selector, SelectorError, SelectorSet};
pub use spiffe_id::SpiffeId;
pub use trust_domain::TrustDomain;

/// Why a SPIFFE ID or trust domain was rejected. Messages are go-spiffe's, which SPIRE returns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input was empty.
    #[error("cannot be empty")]
    Empty,
    /// The input does not start with `spiffe://`.
    #[error("scheme is missing or invalid")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("trust domain is missing")]
    MissingTrustDomain,
    /// A trust-domain byte outside `[a-z0-9._-]`.
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
    )]
    BadTrustDomainChar,
    /// A path byte outside `[a-zA-Z0-9._-]`.
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
    )]
    BadPathSegmentChar,
    /// A `.` or `..` segment.
    #[error("path cannot contain dot segments")]
    DotSegment,
    /// A path that is not empty and does not start with `/`.
    #[error("path must have a leading slash")]
    NoLeadingSlash,
    /// Two consecutive slashes.
    #[error("path cannot contain empty segments")]
    EmptySegment,
    /// A path ending in `/`.
    #[error("path cannot have a trailing slash")]
    TrailingSlash,
    /// A trust domain longer than [`TrustDomain::MAX_LEN`] bytes, refused on creation.
    #[error("trust domain exceeds maximum length ({} bytes)", TrustDomain::MAX_LEN)]
    TrustDomainTooLong,
    /// An ID longer than [`SpiffeId::MAX_LEN`] bytes, refused on creation.
    #[error("SPIFFE ID exceeds maximum length ({} bytes)", SpiffeId::MAX_LEN)]
    IdTooLong,
}

/// `spiffe://`, the only scheme a SPIFFE ID may have (lowercase, as SPIRE requires).
pub const SCHEME_PREFIX: &str = "spiffe://";

pub(crate) fn is_trust_domain_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

pub(crate) fn is_path_segment_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

/// Checks a SPIFFE ID path (`""` or `/seg/seg…`) as go-spiffe does, segment by segment.
pub(crate) fn validate_path(path: &str) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    let bytes = path.as_bytes();
    if bytes[0] != b'/' {
        return Err(IdError::NoLeadingSlash);
    }
    let mut segment_start = 0;
    for (i, &c) in bytes.iter().enumerate().skip(1) {
        if c == b'/' {
            check_segment(&path[segment_start..i], IdError::EmptySegment)?;
            segment_start = i;
        } else if !is_path_segment_char(c) {
            return Err(IdError::BadPathSegmentChar);
        }
    }
    check_segment(&path[segment_start..], IdError::TrailingSlash)
}

/// `segment` includes its leading slash; `if_empty` tells an inner empty segment from a trailing one.
fn check_segment(segment: &str, if_empty: IdError) -> Result<(), IdError> {
    match segment {
        "/" => Err(if_empty),
        "/." | "/.." => Err(IdError::DotSegment),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
