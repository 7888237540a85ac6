//! SPIRE's bad-input catalogue for BatchCreateEntry: exact code and message per
//! row, every row in one batch so each also proves a failed item never drops the others.
#![allow(clippy::unwrap_used)]

mod support;

use spire_proto::spire::api::server::entry::v1::{
    BatchCreateEntryRequest, BatchUpdateEntryRequest, entry_client::EntryClient,
};
use spire_proto::spire::api::types;
use support::{Harness, TD, pid, proto_entry, sel};
use tonic::Code;

const INVALID: Code = Code::InvalidArgument;
const CONVERT: &str = "failed to convert entry: ";
const VALIDATION: &str =
    "failed to create entry: datastore-validation: invalid registration entry: ";
const TD_CHARS: &str = "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores";

type Row = (&'static str, Box<dyn Fn(&mut types::Entry)>, Code, String);

fn row(name: &'static str, f: impl Fn(&mut types::Entry) + 'static, code: Code, msg: &str) -> Row {
    (name, Box::new(f), code, msg.to_owned())
}

fn rows() -> Vec<Row> {
    let not_workload = |id: &str, why: &str| {
        format!(
            "{CONVERT}invalid spiffe ID: \"{id}\" is not a workload in trust domain \"{TD}\"; {why}"
        )
    };
    vec![
        row(
            "empty selectors",
            |e| e.selectors.clear(),
            INVALID,
            &format!("{CONVERT}selector list is empty"),
        ),
        row(
            "empty selector type",
            |e| e.selectors = vec![sel("", "v")],
            INVALID,
            &format!("{CONVERT}missing selector type"),
        ),
        row(
            "colon in type",
            |e| e.selectors = vec![sel("a:b", "v")],
            INVALID,
            &format!("{CONVERT}selector type contains ':'"),
        ),
        row(
            "empty selector value",
            |e| e.selectors = vec![sel("unix", "")],
            INVALID,
            &format!("{CONVERT}missing selector value"),
        ),
        row(
            "missing spiffe ID",
            |e| e.spiffe_id = None,
            INVALID,
            &format!("{CONVERT}invalid spiffe ID: request must specify SPIFFE ID"),
        ),
        row(
            "empty path",
            |e| e.spiffe_id = Some(pid(TD, "")),
            INVALID,
            &not_workload("spiffe://example.org", "path is empty"),
        ),
        row(
            "reserved path",
            |e| e.spiffe_id = Some(pid(TD, "/spire/x")),
            INVALID,
            &not_workload(
                "spiffe://example.org/spire/x",
                "path is in the reserved namespace",
            ),
        ),
        row(
            "foreign trust domain",
            |e| e.spiffe_id = Some(pid("other.org", "/w")),
            INVALID,
            &format!(
                "{CONVERT}invalid spiffe ID: \"spiffe://other.org/w\" is not a member of trust domain \"{TD}\""
            ),
        ),
        row(
            "uppercase trust domain",
            |e| e.spiffe_id = Some(pid("Example.org", "/w")),
            INVALID,
            &format!("{CONVERT}invalid spiffe ID: {TD_CHARS}"),
        ),
        row(
            "dot-dot",
            |e| e.spiffe_id = Some(pid(TD, "/a/../b")),
            INVALID,
            &format!("{CONVERT}invalid spiffe ID: path cannot contain dot segments"),
        ),
        row(
            "percent-encoded dot",
            |e| e.spiffe_id = Some(pid(TD, "/%2e")),
            INVALID,
            &format!(
                "{CONVERT}invalid spiffe ID: path segment characters are limited to letters, numbers, dots, dashes, and underscores"
            ),
        ),
        row(
            "no leading slash",
            |e| e.spiffe_id = Some(pid(TD, "w")),
            INVALID,
            &format!("{CONVERT}invalid spiffe ID: path must have a leading slash"),
        ),
        row(
            "parent outside trust domain",
            |e| e.parent_id = Some(pid("other.org", "/a")),
            INVALID,
            &format!(
                "{CONVERT}invalid parent ID: \"spiffe://other.org/a\" is not a member of trust domain \"{TD}\""
            ),
        ),
        row(
            "malformed parent",
            |e| e.parent_id = Some(pid(TD, "/a//b")),
            INVALID,
            &format!("{CONVERT}invalid parent ID: path cannot contain empty segments"),
        ),
        row(
            "parent is the trust domain",
            |e| e.parent_id = Some(pid(TD, "")),
            INVALID,
            &format!(
                "{CONVERT}invalid parent ID: \"spiffe://example.org\" is not a member of trust domain \"{TD}\"; path is empty"
            ),
        ),
        row(
            "dns empty",
            |e| e.dns_names = vec![String::new()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: empty or only whitespace"),
        ),
        row(
            "dns blank",
            |e| e.dns_names = vec![" ".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: empty or only whitespace"),
        ),
        row(
            "dns dot",
            |e| e.dns_names = vec![".".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: domain ends with dot"),
        ),
        row(
            "dns trailing dot",
            |e| e.dns_names = vec!["example.com.".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: domain ends with dot"),
        ),
        row(
            "dns two wildcards",
            |e| e.dns_names = vec!["*.foo.*.bar".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: too many wildcards"),
        ),
        row(
            "dns inner wildcard",
            |e| e.dns_names = vec!["foo.*.bar".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: wildcard must be first label"),
        ),
        row(
            "dns emoji label",
            |e| e.dns_names = vec!["💩.com".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: name must be ascii"),
        ),
        row(
            "dns emoji tld",
            |e| e.dns_names = vec!["example.💩".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: name must be ascii"),
        ),
        row(
            "dns leading hyphen",
            |e| e.dns_names = vec!["-hello.com".into()],
            INVALID,
            &format!("{CONVERT}invalid DNS name: idna error\nidna: invalid label \"-hello.com\""),
        ),
        row(
            "dns label too long",
            |e| e.dns_names = vec![format!("{}.com", "a".repeat(64))],
            INVALID,
            &format!(
                "{CONVERT}invalid DNS name: idna error\nidna: invalid label \"{}.com\"",
                "a".repeat(64)
            ),
        ),
        row(
            "x509 ttl < 0",
            |e| e.x509_svid_ttl = -1,
            INVALID,
            &format!("{VALIDATION}X509SvidTtl is not set"),
        ),
        row(
            "jwt ttl < 0",
            |e| e.jwt_svid_ttl = -1,
            INVALID,
            &format!("{VALIDATION}JwtSvidTtl is not set"),
        ),
        row(
            "hint too long",
            |e| e.hint = "h".repeat(1025),
            INVALID,
            &format!("{CONVERT}hint is too long, max length is 1024 characters"),
        ),
        row(
            "entry ID too long",
            |e| e.id = "e".repeat(256),
            INVALID,
            &format!("{VALIDATION}entry ID too long"),
        ),
        row(
            "entry ID characters",
            |e| e.id = "éntry😊".into(),
            INVALID,
            &format!("{VALIDATION}entry ID contains invalid characters"),
        ),
        row(
            "store SVID mixed types",
            |e| {
                e.store_svid = true;
                e.selectors = vec![sel("a", "1"), sel("b", "2")];
            },
            INVALID,
            &format!("{VALIDATION}selector types must be the same when store SVID is enabled"),
        ),
        row(
            "federates with unknown bundle",
            |e| e.federates_with = vec!["other.org".into()],
            Code::Internal,
            "failed to create entry: unable to find federated bundle \"spiffe://other.org\"",
        ),
        row(
            "federates with malformed name",
            |e| e.federates_with = vec!["Other.org".into()],
            INVALID,
            &format!("{CONVERT}invalid federated trust domain: {TD_CHARS}"),
        ),
    ]
}

#[tokio::test]
async fn every_catalogue_row_fails_alone_with_spire_code_and_message() {
    let h = Harness::start().await;
    let rows = rows();
    let mut entries = Vec::new();
    for (i, (_, mutate, _, _)) in rows.iter().enumerate() {
        let mut e = proto_entry(&format!("/row{i}"));
        mutate(&mut e);
        entries.push(e);
        // A good entry after each bad one.
        entries.push(proto_entry(&format!("/good{i}")));
    }
    let results = EntryClient::new(h.channel.clone())
        .batch_create_entry(BatchCreateEntryRequest {
            entries,
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), rows.len() * 2);
    for (i, (name, _, code, message)) in rows.iter().enumerate() {
        let bad = results[2 * i].status.as_ref().unwrap();
        assert_eq!(
            (Code::from(bad.code), bad.message.as_str()),
            (*code, message.as_str()),
            "{name}"
        );
        assert!(results[2 * i].entry.is_none(), "{name}");
        let good = results[2 * i + 1].status.as_ref().unwrap();
        assert_eq!(good.code, 0, "the good item after {name}: {}", good.message);
    }
}

#[tokio::test]
async fn accepted_shapes_from_the_catalogue() {
    let h = Harness::start().await;
    let mut valid_dns = proto_entry("/dns");
    valid_dns.dns_names = ["com", "*.example.com", "xn--ls8h.org", "a-hello.com"]
        .map(String::from)
        .to_vec();
    let mut self_parent = proto_entry("/self");
    self_parent.parent_id = Some(pid(TD, "/self"));
    let mut a = proto_entry("/cycle-a");
    a.parent_id = Some(pid(TD, "/cycle-b"));
    let mut b = proto_entry("/cycle-b");
    b.parent_id = Some(pid(TD, "/cycle-a"));
    let mut max_hint = proto_entry("/hint");
    max_hint.hint = "h".repeat(1024);
    let mut chosen_id = proto_entry("/chosen");
    chosen_id.id = format!("{}-._", "A1".repeat(126));
    let results = EntryClient::new(h.channel.clone())
        .batch_create_entry(BatchCreateEntryRequest {
            entries: vec![valid_dns, self_parent, a, b, max_hint, chosen_id],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    for r in &results {
        let s = r.status.as_ref().unwrap();
        assert_eq!((s.code, s.message.as_str()), (0, "OK"));
    }
    assert_eq!(results[5].entry.as_ref().unwrap().id.len(), 255);
}

#[tokio::test]
async fn update_validates_only_masked_fields_and_reports_per_item() {
    let h = Harness::start().await;
    let mut client = EntryClient::new(h.channel.clone());
    let created = client
        .batch_create_entry(BatchCreateEntryRequest {
            entries: vec![proto_entry("/u")],
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .results[0]
        .entry
        .clone()
        .unwrap();
    let mut bad = created.clone();
    bad.x509_svid_ttl = -5;
    let mut missing = created.clone();
    missing.id = "does-not-exist".into();
    let mut good = created.clone();
    good.hint = "new".into();
    let results = client
        .batch_update_entry(BatchUpdateEntryRequest {
            entries: vec![bad, missing, good],
            input_mask: None,
            output_mask: Some(types::EntryMask {
                hint: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let status = |i: usize| {
        let s = results[i].status.as_ref().unwrap();
        (Code::from(s.code), s.message.clone())
    };
    assert_eq!(
        status(0),
        (
            INVALID,
            "failed to update entry: datastore-validation: invalid registration entry: X509SvidTtl is not set".into()
        )
    );
    assert_eq!(status(1), (Code::NotFound, "failed to update entry".into()));
    assert_eq!(status(2), (Code::Ok, "OK".into()));
    let updated = results[2].entry.as_ref().unwrap();
    assert_eq!(updated.hint, "new");
    assert!(updated.spiffe_id.is_none(), "output mask applies");
}
