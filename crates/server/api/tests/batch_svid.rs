//! SVID.BatchNewX509SVID for agents: the CVE-2021-27098 regression (security SPI-01-004),
//! authorization of the entry, and per-item failures from the bad-input catalogue (§5).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rcgen::{CertificateParams, KeyPair, SanType};
use spire_proto::spire::api::server::svid::v1::{
    BatchNewX509svidRequest, NewX509svidParams, batch_new_x509svid_response,
    svid_client::SvidClient,
};
use spire_server_api::svid::ENTRY_NOT_AUTHORIZED;
use spire_server_datastore::AttestedNode;
use support::*;
use tonic::Code;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

const AGENT: &str = "/spire/agent/x509pop/node-1";
const SERIAL: &str = "77";

fn csr(key: &KeyPair, sans: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.serialize_request(key).unwrap().der().to_vec()
}

/// The URI and DNS SANs of a DER certificate.
fn sans(der: &[u8]) -> (Vec<String>, Vec<String>) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let (mut uris, mut names) = (Vec::new(), Vec::new());
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::URI(u) => uris.push((*u).to_owned()),
                    GeneralName::DNSName(d) => names.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
    }
    (uris, names)
}

async fn setup() -> Harness {
    with_nodes(Harness::start().await).await
}

async fn with_nodes(h: Harness) -> Harness {
    for (path, serial) in [(AGENT, SERIAL), ("/spire/agent/x509pop/node-2", "78")] {
        let node = AttestedNode {
            spiffe_id: id(path),
            attestation_type: "x509pop".into(),
            cert_serial_number: serial.into(),
            cert_not_after: h.now() + 3600,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            can_reattest: false,
            selectors: spire_id::SelectorSet::new(),
        };
        h.ds.create_attested_node(node).await.unwrap();
    }
    h
}

async fn batch(
    h: &Harness,
    params: Vec<NewX509svidParams>,
) -> Vec<batch_new_x509svid_response::Result> {
    let request = as_peer(
        &id(AGENT).to_string(),
        SERIAL,
        BatchNewX509svidRequest { params },
    );
    SvidClient::new(h.tcp_channel.clone())
        .batch_new_x509svid(request)
        .await
        .unwrap()
        .into_inner()
        .results
}

fn params(entry_id: &str, csr: Vec<u8>) -> NewX509svidParams {
    NewX509svidParams {
        entry_id: entry_id.to_owned(),
        csr,
    }
}

fn code(result: &batch_new_x509svid_response::Result) -> (Code, String) {
    let status = result.status.as_ref().unwrap();
    (Code::from(status.code), status.message.clone())
}

#[tokio::test]
async fn csr_claiming_the_server_id_gets_the_entry_id_and_dns_names() {
    let h = setup().await;
    let mut entry = domain_entry("/web", AGENT, "unix:uid:1000");
    entry.dns_names = vec!["web.example.org".into()];
    entry.x509_svid_ttl = 600;
    entry.hint = "web".into();
    let entry = h.add_entry(entry).await;
    h.refresh_entries().await;

    let key = KeyPair::generate().unwrap();
    let evil = csr(
        &key,
        vec![
            SanType::URI("spiffe://example.org/spire/server".try_into().unwrap()),
            SanType::DnsName("evil.example.com".try_into().unwrap()),
        ],
    );
    let results = batch(&h, vec![params(&entry.id, evil)]).await;
    assert_eq!(results.len(), 1);
    assert_eq!(code(&results[0]), (Code::Ok, "OK".to_owned()));
    let svid = results[0].svid.as_ref().unwrap();
    let (uris, names) = sans(&svid.cert_chain[0]);
    assert_eq!(uris, ["spiffe://example.org/web"]);
    assert_eq!(names, ["web.example.org"]);
    assert_eq!(svid.id, Some(pid(TD, "/web")));
    assert_eq!(svid.hint, "web");
    let (_, leaf) = X509Certificate::from_der(&svid.cert_chain[0]).unwrap();
    assert_eq!(svid.expires_at, leaf.validity().not_after.timestamp());
    assert_eq!(
        leaf.validity().not_after.timestamp() - h.now(),
        600,
        "TTL from the entry"
    );
    // The key is the CSR's.
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
}

#[tokio::test]
async fn entries_of_other_agents_are_not_found() {
    let h = setup().await;
    let theirs = h
        .add_entry(domain_entry(
            "/theirs",
            "/spire/agent/x509pop/node-2",
            "unix:uid:1",
        ))
        .await;
    h.refresh_entries().await;
    let key = KeyPair::generate().unwrap();
    let results = batch(
        &h,
        vec![
            params(&theirs.id, csr(&key, vec![])),
            params("no-such-entry", csr(&key, vec![])),
        ],
    )
    .await;
    for result in &results {
        assert_eq!(
            code(result),
            (Code::NotFound, ENTRY_NOT_AUTHORIZED.to_owned())
        );
        assert!(result.svid.is_none());
    }
}

#[tokio::test]
async fn a_bad_item_fails_alone() {
    let h = setup().await;
    let entry = h.add_entry(domain_entry("/web", AGENT, "unix:uid:1")).await;
    h.refresh_entries().await;
    let key = KeyPair::generate().unwrap();
    let good = csr(&key, vec![]);
    let mut bad_signature = good.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 0x01;

    let results = batch(
        &h,
        vec![
            params(&entry.id, good.clone()),
            params("", good.clone()),
            params(&entry.id, Vec::new()),
            params(&entry.id, b"not a CSR".to_vec()),
            params(&entry.id, bad_signature),
            params(&entry.id, good),
        ],
    )
    .await;
    let codes: Vec<(Code, String)> = results.iter().map(code).collect();
    assert_eq!(codes[0], (Code::Ok, "OK".into()));
    assert_eq!(codes[1], (Code::InvalidArgument, "missing entry ID".into()));
    assert_eq!(codes[2], (Code::InvalidArgument, "missing CSR".into()));
    assert_eq!(codes[3].0, Code::InvalidArgument);
    assert!(codes[3].1.starts_with("malformed CSR"), "{}", codes[3].1);
    assert_eq!(codes[4].0, Code::InvalidArgument);
    assert!(
        codes[4].1.starts_with("failed to verify CSR signature"),
        "{}",
        codes[4].1
    );
    assert_eq!(codes[5], (Code::Ok, "OK".into()));
    assert!(results[0].svid.is_some() && results[5].svid.is_some());
    assert!(results[1..5].iter().all(|r| r.svid.is_none()));
}

#[tokio::test]
async fn only_agents_may_call() {
    let h = setup().await;
    let status = SvidClient::new(h.channel.clone())
        .batch_new_x509svid(BatchNewX509svidRequest { params: Vec::new() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

/// The fields of every audit record logged while it is installed (this thread only).
#[derive(Clone, Default)]
struct AuditCapture(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct FieldText<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == spire_cli::RUNTIME_FIELDS {
            for (key, value) in spire_cli::RuntimeFields::pairs(value) {
                self.0.insert(key.to_owned(), value.to_owned());
            }
            return;
        }
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for AuditCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "spire_server_api::audit" {
            let mut fields = BTreeMap::new();
            event.record(&mut FieldText(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

#[tokio::test]
async fn each_item_is_audited_with_its_status_csr_hash_and_spiffe_id() {
    let capture = AuditCapture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let h = with_nodes(Harness::start_with(|ctx| ctx.audit_log = true).await).await;
    let entry = h.add_entry(domain_entry("/web", AGENT, "unix:uid:1")).await;
    h.refresh_entries().await;
    let key = KeyPair::generate().unwrap();
    let good = csr(&key, vec![]);
    let results = batch(
        &h,
        vec![
            params(&entry.id, good.clone()),
            params("unknown", good.clone()),
        ],
    )
    .await;
    assert_eq!(results.len(), 2);
    let records: Vec<_> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.get("method").map(String::as_str) == Some("BatchNewX509SVID"))
        .cloned()
        .collect();
    assert_eq!(records.len(), 2, "{records:#?}");
    let hash = spire_server_api::audit::hash_bytes(&good);
    assert_eq!(hash.len(), 64);
    for record in &records {
        assert_eq!(record["type"], "audit");
        assert_eq!(record["message"], "API accessed");
        assert_eq!(record["service"], "spire.api.server.svid.v1.SVID");
        assert_eq!(record["csr"], hash);
        // The harness serves its "TCP" routes on a Unix socket: the caller is a local
        // process here (the TCP form is covered by the audit module's unit tests).
        assert!(record.contains_key("caller_uid"), "{record:?}");
        assert_eq!(record["request_id"], records[0]["request_id"]);
    }
    assert_eq!(records[0]["status"], "success");
    assert_eq!(records[0]["entry_id"], entry.id);
    assert_eq!(records[0]["spiffe_id"], "spiffe://example.org/web");
    assert_eq!(
        records[0]["expires_at"],
        results[0].svid.as_ref().unwrap().expires_at.to_string()
    );
    assert_eq!(records[1]["status"], "error");
    assert_eq!(records[1]["status_code"], "NotFound");
    assert_eq!(records[1]["status_message"], ENTRY_NOT_AUTHORIZED);
    assert_eq!(records[1]["entry_id"], "unknown");
    assert_eq!(records[1]["spiffe_id"], "");
    assert!(!records[1].contains_key("expires_at"));
}
