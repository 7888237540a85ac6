//! Unit tests of `doctor`'s rules and output shape (the end-to-end runs are
//! `tests/doctor.rs`).

use super::*;

fn svid(td: &str, not_before: i64, not_after: i64) -> Svid {
    Svid {
        chain: Vec::new(),
        spiffe_id: format!("spiffe://{td}/ns/default/sa/sleep"),
        trust_domain: td.to_owned(),
        not_before,
        not_after,
    }
}

#[test]
fn trust_domain_rule() {
    let s = svid("example.org", 0, 1);
    assert!(trust_domain_check("td", &s, None).ok());
    assert!(trust_domain_check("td", &s, Some("spiffe://example.org")).ok());
    let wrong = trust_domain_check("td", &s, Some("cluster.local"));
    assert!(!wrong.ok());
    assert!(
        matches!(&wrong.outcome, Outcome::Fail { fix, .. } if fix.contains("meshConfig.trustDomain"))
    );
}

#[test]
fn time_left_rule() {
    let now = SystemClock.unix_seconds();
    assert!(ttl_check("ttl", &svid("t", now - 1800, now + 1800)).ok());
    assert!(!ttl_check("ttl", &svid("t", now - 3500, now + 100)).ok());
    assert!(!ttl_check("ttl", &svid("t", now - 3600, now - 1)).ok());
}

#[test]
fn json_shape() {
    let checks = [
        Check::pass("a", "fine"),
        Check::fail("b", "broken", "do this"),
        Check::skipped("c", "b"),
    ];
    let json: Vec<String> = checks.iter().map(|c| encode(&c.json())).collect();
    assert_eq!(
        json[0],
        r#"{"name":"a","ok":true,"detail":"fine","fix":""}"#
    );
    assert_eq!(
        json[1],
        r#"{"name":"b","ok":false,"detail":"broken","fix":"do this"}"#
    );
    assert!(json[2].contains(r#""ok":false,"detail":"skipped: depends on \"b\""#));
}

#[test]
fn names() {
    assert_eq!(td_name("spiffe://other.td"), "other.td");
    assert_eq!(td_name("other.td"), "other.td");
    assert_eq!(federated_name("spiffe://x.y/"), "federated bundle for x.y");
}
