//! DNS names for entries and minted SVIDs, checked as SPIRE checks them: ASCII only, at most one
//! wildcard and only as the whole first label, no trailing dot, and an IDNA (UTS #46, non-STD3)
//! round trip with label and name length limits and hyphen rules.

use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};

/// Why a DNS name was refused; messages are SPIRE's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A byte outside ASCII.
    #[error("name must be ascii")]
    NotAscii,
    /// More than one `*`.
    #[error("too many wildcards")]
    TooManyWildcards,
    /// A `*` anywhere but as the whole first label.
    #[error("wildcard must be first label")]
    WildcardNotFirst,
    /// Nothing but whitespace (after the wildcard label, if any).
    #[error("empty or only whitespace")]
    Empty,
    /// A fully qualified name with its trailing dot.
    #[error("domain ends with dot")]
    EndsWithDot,
    /// A second wildcard label after the first was removed.
    #[error("wildcard not allowed")]
    WildcardNotAllowed,
    /// The IDNA conversion refused the name (empty or over-long label, bad hyphens,
    /// undecodable punycode, …).
    #[error("idna error\nidna: invalid label {0:?}")]
    Idna(String),
    /// The IDNA conversion changed the name, so it is not in canonical ASCII form.
    #[error(
        "input domain name {input:?} does not match idna output {output:?}: label mismatch after idna"
    )]
    Mismatch {
        /// The name as given (lowercased).
        input: String,
        /// What IDNA made of it.
        output: String,
    },
    /// A non-wildcard name covered by a wildcard name in the same list.
    #[error("name {0:?} overlaps with an existing wildcard name in the list: wildcard overlap")]
    WildcardOverlap(String),
}

/// Checks one DNS name (`*.example.org` allowed).
pub fn validate_label(name: &str) -> Result<(), DnsError> {
    if !name.is_ascii() {
        return Err(DnsError::NotAscii);
    }
    match name.bytes().filter(|&b| b == b'*').count() {
        0 => validate_non_wildcard(name),
        1 => match name.strip_prefix("*.") {
            Some(rest) => validate_non_wildcard(rest),
            None => Err(DnsError::WildcardNotFirst),
        },
        _ => Err(DnsError::TooManyWildcards),
    }
}

/// Refuses a list in which a wildcard name covers one of the other names
/// (`*.example.org` with `www.example.org`), comparing case-insensitively.
pub fn check_wildcard_overlap(names: &[String]) -> Result<(), DnsError> {
    let folded: std::collections::HashSet<String> =
        names.iter().map(|n| n.to_ascii_lowercase()).collect();
    for name in names {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with('*') {
            continue;
        }
        let rest = lower.split_once('.').map_or("", |(_, rest)| rest);
        let candidate = if lower.contains('.') {
            format!("*.{rest}")
        } else {
            "*".to_owned()
        };
        if folded.contains(&candidate) {
            return Err(DnsError::WildcardOverlap(name.clone()));
        }
    }
    Ok(())
}

fn validate_non_wildcard(name: &str) -> Result<(), DnsError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DnsError::Empty);
    }
    if name.ends_with('.') {
        return Err(DnsError::EndsWithDot);
    }
    if name.starts_with("*.") {
        return Err(DnsError::WildcardNotAllowed);
    }
    // DNS names are case-insensitive (RFC 4343); the IDNA checks are not.
    let name = name.to_ascii_lowercase();
    let output = Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| DnsError::Idna(name.clone()))?;
    if output != name {
        return Err(DnsError::Mismatch {
            output: output.into_owned(),
            input: name,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spire_catalogue_rejections() {
        let cases: &[(&str, DnsError)] = &[
            ("", DnsError::Empty),
            (" ", DnsError::Empty),
            (".", DnsError::EndsWithDot),
            ("example.com.", DnsError::EndsWithDot),
            ("*.foo.*.bar", DnsError::TooManyWildcards),
            ("foo.*.bar", DnsError::WildcardNotFirst),
            ("💩.com", DnsError::NotAscii),
            ("example.💩", DnsError::NotAscii),
            ("-hello.com", DnsError::Idna("-hello.com".into())),
        ];
        for (name, want) in cases {
            assert_eq!(validate_label(name).as_ref(), Err(want), "{name:?}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(matches!(validate_label(&long), Err(DnsError::Idna(_))));
    }

    #[test]
    fn spire_catalogue_acceptances() {
        for name in [
            "com",
            "*.example.com",
            "xn--ls8h.org",
            "a-hello.com",
            "Example.COM",
            "under_score.org",
            &format!("{}.com", "a".repeat(63)),
        ] {
            assert_eq!(validate_label(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn wildcard_overlap_is_found_case_insensitively() {
        let names = vec!["*.example.org".to_owned(), "WWW.example.org".to_owned()];
        assert_eq!(
            check_wildcard_overlap(&names),
            Err(DnsError::WildcardOverlap("WWW.example.org".into()))
        );
        let names = vec!["*.example.org".to_owned(), "example.org".to_owned()];
        assert_eq!(check_wildcard_overlap(&names), Ok(()));
    }
}
