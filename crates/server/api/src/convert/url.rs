//! The part of Go's `net/url.Parse` that decides whether a bundle endpoint URL is accepted,
//! with Go's error texts (`parse "<url>": <reason>`): control characters, the scheme, the
//! authority (user info, host characters, port) and percent-escapes. Only what SPIRE checks
//! afterwards is kept: scheme, host and whether user info is present.

use std::fmt;

use spire_id::go_fmt::quote as go_quote;

/// The pieces of a parsed URL that SPIRE looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GoUrl {
    /// Lowercased scheme; empty when there is none.
    pub(crate) scheme: String,
    /// `host[:port]` as written (Go's `URL.Host`); empty for opaque or path-only URLs.
    pub(crate) host: String,
    /// Whether an `@` introduced user info (even an empty one).
    pub(crate) has_user: bool,
    /// The URL as Go prints it back for the accepted shapes: the input with the scheme
    /// lowercased.
    pub(crate) text: String,
}

/// Why Go's `url.Parse` refused the text; `Display` is Go's `*url.Error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parse {}: {reason}", go_quote(.url))]
pub(crate) struct UrlError {
    url: String,
    reason: String,
}

// === impl GoUrl ===

impl GoUrl {
    /// Parses `raw` as Go's `url.Parse` does (as far as the checks above go).
    pub(crate) fn parse(raw: &str) -> Result<Self, UrlError> {
        let fail = |reason: String| UrlError {
            url: raw.to_owned(),
            reason,
        };
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(fail("net/url: invalid control character in URL".to_owned()));
        }
        let (without_fragment, fragment) = match raw.split_once('#') {
            Some((before, after)) => (before, Some(after)),
            None => (raw, None),
        };
        let (scheme, rest) = split_scheme(without_fragment).map_err(fail)?;
        let rest = match rest.split_once('?') {
            Some((before, _query)) => before,
            None => rest,
        };
        let mut url = GoUrl {
            text: match scheme.len() {
                0 => raw.to_owned(),
                n => format!("{scheme}{}", &raw[n..]),
            },
            scheme,
            host: String::new(),
            has_user: false,
        };
        if !rest.starts_with('/') {
            if url.scheme.is_empty() {
                let first_segment = rest.split('/').next().unwrap_or_default();
                if first_segment.contains(':') {
                    return Err(fail(
                        "first path segment in URL cannot contain colon".to_owned(),
                    ));
                }
            } else {
                // Opaque (`https:example.org`): no authority at all.
                return Ok(url);
            }
        }
        let path = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                let (authority, path) = after.split_at(end);
                let (user, host) = match authority.rfind('@') {
                    Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
                    None => (None, authority),
                };
                check_host(host).map_err(fail)?;
                if let Some(user) = user {
                    if !valid_userinfo(user) {
                        return Err(fail("net/url: invalid userinfo".to_owned()));
                    }
                    url.has_user = true;
                }
                url.host = host.to_owned();
                path
            }
            None => rest,
        };
        check_escapes(path, false).map_err(fail)?;
        if let Some(fragment) = fragment {
            check_escapes(fragment, false).map_err(fail)?;
        }
        Ok(url)
    }
}

/// Go's `getScheme`: a letter then letters, digits, `+`, `-` or `.` up to the first `:`;
/// anything else first means there is no scheme. Returns `(lowercased scheme, rest)`.
fn split_scheme(raw: &str) -> Result<(String, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            ':' => return Ok((raw[..i].to_ascii_lowercase(), &raw[i + 1..])),
            _ => return Ok((String::new(), raw)),
        }
    }
    Ok((String::new(), raw))
}

/// Go's `parseHost`: an optional `:port` of digits after the host (or after `]` of an IPv6
/// literal), and only characters a host may hold.
fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err("missing ']' in host".to_owned());
        };
        (&host[1..close], &host[close + 1..])
    } else {
        match host.rfind(':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
    if !port_ok {
        return Err(format!("invalid port {} after host", go_quote(port)));
    }
    let name_to_check = if host.starts_with('[') {
        // The zone of an IPv6 literal (`%25…`) is escaped differently; only its characters
        // before the zone are host characters.
        name.split("%25").next().unwrap_or_default()
    } else {
        name
    };
    check_escapes(name_to_check, true)?;
    for (i, b) in name_to_check.bytes().enumerate() {
        if b != b'%' && b < 0x80 && !is_host_byte(b) {
            let c = &name_to_check[i..=i];
            return Err(format!("invalid character {} in host name", go_quote(c)));
        }
    }
    Ok(())
}

/// ASCII bytes Go leaves unescaped in a host.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]<>\"".contains(&b)
}

/// Go's `validUserinfo`.
fn valid_userinfo(user: &str) -> bool {
    user.bytes()
        .all(|b| b >= 0x80 || b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
}

/// Every `%` must start a two-digit hex escape; in a host, Go also refuses escapes of ASCII
/// bytes other than `%25`.
fn check_escapes(s: &str, host: bool) -> Result<(), String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let escape = &s[i..s.len().min(i + 3)];
        let hex_ok = bytes.len() >= i + 3
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        let ascii_in_host = host && hex_ok && bytes[i + 1] < b'8' && escape != "%25";
        if !hex_ok || ascii_in_host {
            return Err(format!("invalid URL escape {}", go_quote(escape)));
        }
        i += 3;
    }
    Ok(())
}

impl fmt::Display for GoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(raw: &str) -> String {
        GoUrl::parse(raw).unwrap_err().to_string()
    }

    #[test]
    fn accepted_shapes() {
        let u = GoUrl::parse("HTTPS://example.org:8443/path?q=1#f").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.has_user),
            ("https", "example.org:8443", false)
        );
        assert_eq!(u.to_string(), "https://example.org:8443/path?q=1#f");
        let u = GoUrl::parse("https://user@[::1]:443").unwrap();
        assert_eq!((u.host.as_str(), u.has_user), ("[::1]:443", true));
        assert_eq!(GoUrl::parse("https:example.org").unwrap().host, "");
        assert_eq!(GoUrl::parse("").unwrap().scheme, "");
        assert_eq!(GoUrl::parse("https://:8443").unwrap().host, ":8443");
        assert!(GoUrl::parse("https://@example.org").unwrap().has_user);
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(err(":foo"), "parse \":foo\": missing protocol scheme");
        assert_eq!(
            err("https://exa mple.org"),
            "parse \"https://exa mple.org\": invalid character \" \" in host name"
        );
        assert_eq!(
            err("https://example.org:port/x"),
            "parse \"https://example.org:port/x\": invalid port \":port\" after host"
        );
        assert_eq!(
            err("https://example.org/%zz"),
            "parse \"https://example.org/%zz\": invalid URL escape \"%zz\""
        );
        assert_eq!(
            err("https://example.org\n"),
            "parse \"https://example.org\\n\": net/url: invalid control character in URL"
        );
        assert_eq!(
            err("1a:b/c"),
            "parse \"1a:b/c\": first path segment in URL cannot contain colon"
        );
        assert_eq!(
            err("https://[::1/x"),
            "parse \"https://[::1/x\": missing ']' in host"
        );
    }
}
