//! The bad-input catalogue (`test/bad-input/*.tsv`), one table test per server API surface,
//! each against one real server (SQLite store, CA, gRPC over Unix sockets): every row's input
//! becomes a request, the answer must be the row's exact code and message, and the datastore
//! revision read before and after must have moved only by the batch's good items.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;
mod table;

mod agent;
mod bundle;
mod entry;
mod logger;
mod svid;
mod trust_domain;

use spire_proto::spire::api::types;
use support::Harness;
use table::{Input, Outcome};

/// The datastore's newest revision.
async fn revision(h: &Harness) -> i64 {
    h.ds.latest_revision().await.unwrap()
}

/// A `[trust_domain, path]` pair (or `null`) as a proto SPIFFE ID.
fn proto_id(input: &mut Input, key: &str) -> Option<Option<types::Spiffeid>> {
    input.take(key).map(|v| match v {
        serde_json::Value::Null => None,
        serde_json::Value::Array(parts) if parts.len() == 2 => Some(types::Spiffeid {
            trust_domain: table::string(&parts[0]),
            path: table::string(&parts[1]),
        }),
        other => panic!("{key}: expected [trust_domain, path] or null, got {other}"),
    })
}

/// Checks the revision moved by `expected` while the row ran.
fn check_revision(outcome: &mut Outcome, before: i64, after: i64, expected: i64) {
    outcome.check(
        after - before == expected,
        format!(
            "datastore revision moved by {} (expected {expected})",
            after - before
        ),
    );
}
