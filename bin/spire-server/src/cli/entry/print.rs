//! The pretty entry block of SPIRE ≥ 1.15 (24-character label column), the `Found N entries`
//! listing, and the order SPIRE sorts entries and selectors in before printing.

use std::cmp::Ordering;
use std::fmt::Display;
use std::io::{self, Write};

use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use crate::cli::common::{code_name, go_quote, id_to_string, pluralize};
use spire_cli::go_utc_time;

/// Width of the label column (SPIRE 1.15 widened it from 17 for `DisableX509SvidPrefetch`).
const LABEL_WIDTH: usize = 24;

fn line(w: &mut dyn Write, label: &str, value: impl Display) -> io::Result<()> {
    writeln!(w, "{label:<LABEL_WIDTH$}: {value}")
}

/// Writes one entry block, followed by a blank line.
pub(crate) fn write_entry(w: &mut dyn Write, e: &Entry) -> io::Result<()> {
    line(
        w,
        "Entry ID",
        if e.id.is_empty() { "(none)" } else { &e.id },
    )?;
    line(w, "SPIFFE ID", id_to_string(e.spiffe_id.as_ref()))?;
    line(w, "Parent ID", id_to_string(e.parent_id.as_ref()))?;
    line(w, "Revision", e.revision_number)?;
    if e.downstream {
        line(w, "Downstream", true)?;
    }
    match e.x509_svid_ttl {
        0 => line(w, "X509-SVID TTL", "default")?,
        ttl => line(w, "X509-SVID TTL", ttl)?,
    }
    match e.jwt_svid_ttl {
        0 => line(w, "JWT-SVID TTL", "default")?,
        ttl => line(w, "JWT-SVID TTL", ttl)?,
    }
    if e.expires_at != 0 {
        line(w, "Expiration time", go_utc_time(e.expires_at))?;
    }
    for s in &e.selectors {
        line(w, "Selector", format_args!("{}:{}", s.r#type, s.value))?;
    }
    for td in &e.federates_with {
        line(w, "FederatesWith", td)?;
    }
    for dns in &e.dns_names {
        line(w, "DNS name", dns)?;
    }
    if e.admin {
        line(w, "Admin", true)?;
    }
    if e.store_svid {
        line(w, "StoreSvid", true)?;
    }
    if !e.hint.is_empty() {
        line(w, "Hint", &e.hint)?;
    }
    // `DisableX509SvidPrefetch` / `JwtSvidIncludeJti` lines belong here once the Entry API
    // carries additional attributes; our `spire.api.types.Entry` (spire-api-sdk 1.15.2
    // field set) has none.
    writeln!(w)
}

/// `Found N entries` (or `Found 1 entry`) and each block.
pub(crate) fn write_entries(w: &mut dyn Write, entries: &[Entry]) -> io::Result<()> {
    let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    writeln!(w, "Found {}", pluralize(count, "entry", "entries"))?;
    for e in entries {
        write_entry(w, e)?;
    }
    Ok(())
}

/// The stderr block for an entry the server refused, as SPIRE prints it.
pub(crate) fn write_failed_entry(
    w: &mut dyn Write,
    verb: &str,
    code: i32,
    message: &str,
    e: &Entry,
) -> io::Result<()> {
    writeln!(
        w,
        "Failed to {verb} the following entry (code: {}, msg: {}):",
        code_name(code),
        go_quote(message)
    )?;
    write_entry(w, e)
}

/// Sorts each entry's selectors, then the entries, as SPIRE does before `entry show` prints:
/// by SPIFFE ID (trust domain, path), parent ID, X509-SVID TTL, JWT-SVID TTL, then selectors
/// (fewer first, then element-wise by type and value).
pub(crate) fn sort_entries(entries: &mut [Entry]) {
    for e in entries.iter_mut() {
        e.selectors.sort_by(compare_selector);
    }
    entries.sort_by(compare_entries);
}

fn compare_id(a: Option<&Spiffeid>, b: Option<&Spiffeid>) -> Ordering {
    let key = |id: Option<&Spiffeid>| {
        id.map(|id| (id.trust_domain.clone(), id.path.clone()))
            .unwrap_or_default()
    };
    key(a).cmp(&key(b))
}

fn compare_selector(a: &Selector, b: &Selector) -> Ordering {
    a.r#type.cmp(&b.r#type).then_with(|| a.value.cmp(&b.value))
}

fn compare_entries(a: &Entry, b: &Entry) -> Ordering {
    compare_id(a.spiffe_id.as_ref(), b.spiffe_id.as_ref())
        .then_with(|| compare_id(a.parent_id.as_ref(), b.parent_id.as_ref()))
        .then_with(|| a.x509_svid_ttl.cmp(&b.x509_svid_ttl))
        .then_with(|| a.jwt_svid_ttl.cmp(&b.jwt_svid_ttl))
        .then_with(|| a.selectors.len().cmp(&b.selectors.len()))
        .then_with(|| {
            a.selectors
                .iter()
                .zip(&b.selectors)
                .map(|(x, y)| compare_selector(x, y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(td: &str, path: &str) -> Option<Spiffeid> {
        Some(Spiffeid {
            trust_domain: td.into(),
            path: path.into(),
        })
    }

    fn sel(t: &str, v: &str) -> Selector {
        Selector {
            r#type: t.into(),
            value: v.into(),
        }
    }

    fn render(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn block_with_every_optional_line() {
        let e = Entry {
            id: "00000000-0000-0000-0000-000000000001".into(),
            spiffe_id: id("example.org", "/ns/default/sa/sleep"),
            parent_id: id("example.org", "/spire/server"),
            revision_number: 3,
            downstream: true,
            x509_svid_ttl: 3600,
            jwt_svid_ttl: 300,
            expires_at: 1_767_225_600, // 2026-01-01T00:00:00Z
            selectors: vec![sel("k8s", "ns:default"), sel("k8s", "sa:sleep")],
            federates_with: vec!["spiffe://other.org".into()],
            dns_names: vec!["b.example".into(), "a.example".into()],
            admin: true,
            store_svid: true,
            hint: "external".into(),
            ..Entry::default()
        };
        let expected = "\
Entry ID                : 00000000-0000-0000-0000-000000000001
SPIFFE ID               : spiffe://example.org/ns/default/sa/sleep
Parent ID               : spiffe://example.org/spire/server
Revision                : 3
Downstream              : true
X509-SVID TTL           : 3600
JWT-SVID TTL            : 300
Expiration time         : 2026-01-01 00:00:00 +0000 UTC
Selector                : k8s:ns:default
Selector                : k8s:sa:sleep
FederatesWith           : spiffe://other.org
DNS name                : b.example
DNS name                : a.example
Admin                   : true
StoreSvid               : true
Hint                    : external

";
        assert_eq!(render(|w| write_entry(w, &e)), expected);
    }

    #[test]
    fn minimal_block_and_found_header() {
        let e = Entry {
            spiffe_id: id("example.org", "/w"),
            parent_id: id("example.org", "/spire/server"),
            selectors: vec![sel("unix", "uid:1")],
            ..Entry::default()
        };
        let one = render(|w| write_entries(w, std::slice::from_ref(&e)));
        assert_eq!(
            one,
            "\
Found 1 entry
Entry ID                : (none)
SPIFFE ID               : spiffe://example.org/w
Parent ID               : spiffe://example.org/spire/server
Revision                : 0
X509-SVID TTL           : default
JWT-SVID TTL            : default
Selector                : unix:uid:1

"
        );
        assert!(
            render(|w| write_entries(w, &[e.clone(), e.clone()])).starts_with("Found 2 entries\n")
        );
        assert_eq!(render(|w| write_entries(w, &[])), "Found 0 entries\n");
    }

    #[test]
    fn failure_header_quotes_like_go() {
        let e = Entry::default();
        let text = render(|w| write_failed_entry(w, "create", 6, "similar entry \"x\"", &e));
        assert!(text.starts_with(
            "Failed to create the following entry (code: AlreadyExists, msg: \"similar entry \\\"x\\\"\"):\nEntry ID                : (none)\n"
        ));
    }

    #[test]
    fn sorting_matches_spire() {
        let mk = |sid: &str, pid: &str, ttl: i32, sels: Vec<Selector>| Entry {
            spiffe_id: id("td", sid),
            parent_id: id("td", pid),
            x509_svid_ttl: ttl,
            selectors: sels,
            ..Entry::default()
        };
        let mut entries = vec![
            mk("/x", "/x", 90, vec![sel("a", "c"), sel("a", "a")]),
            mk("/x", "/x", 90, vec![sel("x", "b")]),
            mk("/x", "/x", 10, vec![sel("x", "x")]),
            mk("/x", "/b", 90, vec![sel("x", "x")]),
            mk("/b", "/x", 90, vec![sel("x", "x")]),
            mk("/x", "/x", 90, vec![sel("a", "x")]),
        ];
        sort_entries(&mut entries);
        let keys: Vec<String> = entries
            .iter()
            .map(|e| {
                let s: Vec<String> = e
                    .selectors
                    .iter()
                    .map(|s| format!("{}:{}", s.r#type, s.value))
                    .collect();
                format!(
                    "{}|{}|{}|{}",
                    id_to_string(e.spiffe_id.as_ref()),
                    id_to_string(e.parent_id.as_ref()),
                    e.x509_svid_ttl,
                    s.join(",")
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "spiffe://td/b|spiffe://td/x|90|x:x",
                "spiffe://td/x|spiffe://td/b|90|x:x",
                "spiffe://td/x|spiffe://td/x|10|x:x",
                "spiffe://td/x|spiffe://td/x|90|a:x",
                "spiffe://td/x|spiffe://td/x|90|x:b",
                "spiffe://td/x|spiffe://td/x|90|a:a,a:c",
            ]
        );
    }
}
