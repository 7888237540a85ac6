//! The string upstream builds for a SPIFFE ID from a trust domain and a path: Go's
//! `url.URL{Scheme: "spiffe", Host: td, Path: path}.String()`.

use std::fmt::Write as _;

use spire_id::TrustDomain;

/// `spiffe://<td>` followed by `path`, percent-encoded as Go encodes a URL path, with a `/`
/// inserted when `path` is non-empty and does not start with one (so `ns/a/sa/b` and
/// `/ns/a/sa/b` give the same ID). The result is not validated: a label value such as
/// `a b` yields `spiffe://td/a%20b`, which spire-server later refuses, as upstream's does.
pub(crate) fn spiffe_id_string(trust_domain: &TrustDomain, path: &str) -> String {
    let mut out = format!("spiffe://{}", trust_domain.name());
    if !path.is_empty() && !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        if keeps_unescaped(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Go's `shouldEscape(c, encodePath) == false`.
fn keeps_unescaped(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'$'
                | b'&'
                | b'+'
                | b','
                | b'/'
                | b':'
                | b';'
                | b'='
                | b'@'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").expect("valid trust domain")
    }

    #[test]
    fn relative_and_absolute_paths_give_the_same_id() {
        assert_eq!(
            spiffe_id_string(&td(), "ns/default/sa/sleep"),
            "spiffe://example.org/ns/default/sa/sleep"
        );
        assert_eq!(
            spiffe_id_string(&td(), "/ns/default/sa/sleep"),
            "spiffe://example.org/ns/default/sa/sleep"
        );
    }

    #[test]
    fn empty_path_gives_the_trust_domain_id() {
        assert_eq!(spiffe_id_string(&td(), ""), "spiffe://example.org");
    }

    #[test]
    fn reserved_bytes_are_percent_encoded_as_go_does() {
        assert_eq!(
            spiffe_id_string(&td(), "a b?c/é"),
            "spiffe://example.org/a%20b%3Fc/%C3%A9"
        );
        assert_eq!(
            spiffe_id_string(&td(), "x:y@z;w=v,u+t&s$r~q"),
            "spiffe://example.org/x:y@z;w=v,u+t&s$r~q"
        );
    }
}
