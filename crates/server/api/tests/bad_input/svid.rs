//! `svid.tsv`: BatchNewX509SVID and NewJWTSVID as an attested agent, MintX509SVID and
//! MintJWTSVID as a local admin. Batch rows send the bad item beside a good one.

use rcgen::{CertificateParams, KeyPair, SanType};
use serde_json::Value;
use spire_proto::spire::api::server::svid::v1::{
    BatchNewX509svidRequest, MintJwtsvidRequest, MintX509svidRequest, NewJwtsvidRequest,
    NewX509svidParams, svid_client::SvidClient,
};
use spire_server_datastore::AttestedNode;
use tonic::Code;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::support::{Harness, as_peer, domain_entry, id};
use crate::table::{self, Input, Outcome, Row, Tally};
use crate::{check_revision, proto_id, revision};

const AGENT: &str = "/spire/agent/x509pop/node-1";
const OTHER_AGENT: &str = "/spire/agent/x509pop/node-2";
const SERIAL: &str = "77";

/// One server with the two agents and their entries.
struct Server {
    h: Harness,
    /// The entry `AGENT` may obtain (`/web`, DNS name `web.example.org`).
    mine: String,
    /// An entry of `OTHER_AGENT`.
    theirs: String,
}

impl Server {
    async fn start(h: Harness) -> Self {
        for (path, serial) in [(AGENT, SERIAL), (OTHER_AGENT, "78")] {
            h.ds.create_attested_node(AttestedNode {
                spiffe_id: id(path),
                attestation_type: "x509pop".into(),
                cert_serial_number: serial.into(),
                cert_not_after: h.now() + 3600,
                new_cert_serial_number: String::new(),
                new_cert_not_after: 0,
                can_reattest: false,
                selectors: spire_id::SelectorSet::new(),
            })
            .await
            .unwrap();
        }
        let mut web = domain_entry("/web", AGENT, "unix:uid:1000");
        web.dns_names = vec!["web.example.org".into()];
        let mine = h.add_entry(web).await.id;
        let theirs = h
            .add_entry(domain_entry("/theirs", OTHER_AGENT, "unix:uid:1"))
            .await
            .id;
        h.refresh_entries().await;
        Self { h, mine, theirs }
    }

    fn entry(&self, input: &mut Input) -> String {
        match input.string("entry").as_deref() {
            Some("mine") | None => self.mine.clone(),
            Some("theirs") => self.theirs.clone(),
            Some(other) => other.to_owned(),
        }
    }
}

fn csr_with(key: &KeyPair, uris: &[String], dns: &[String]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI(u.as_str().try_into().unwrap()))
        .chain(
            dns.iter()
                .map(|d| SanType::DnsName(d.as_str().try_into().unwrap())),
        )
        .collect();
    params.serialize_request(key).unwrap().der().to_vec()
}

/// `"valid"`, `"empty"`, `"garbage"`, `"bad-signature"` or `{"uris": [...], "dns": [...]}`.
fn csr(input: &mut Input) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    match input.take("csr") {
        None => csr_with(&key, &[], &[]),
        Some(Value::String(kind)) => match kind.as_str() {
            "valid" => csr_with(&key, &[], &[]),
            "empty" => Vec::new(),
            "garbage" => b"not a CSR".to_vec(),
            "bad-signature" => {
                let mut der = csr_with(&key, &[], &[]);
                let last = der.len() - 1;
                der[last] ^= 0x01;
                der
            }
            other => panic!("unknown csr {other:?}"),
        },
        Some(Value::Object(sans)) => {
            let list = |k: &str| -> Vec<String> {
                sans.get(k)
                    .map(|v| v.as_array().unwrap().iter().map(table::string).collect())
                    .unwrap_or_default()
            };
            csr_with(&key, &list("uris"), &list("dns"))
        }
        Some(other) => panic!("csr: {other}"),
    }
}

fn audience(input: &mut Input) -> Vec<String> {
    input
        .strings("audience")
        .unwrap_or_else(|| vec!["a".into()])
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

fn agent<T>(message: T) -> tonic::Request<T> {
    as_peer(&id(AGENT).to_string(), SERIAL, message)
}

async fn run(server: &Server, row: &Row) -> Result<Outcome, String> {
    let h = &server.h;
    let mut input = Input::new(row);
    let mut admin = SvidClient::new(h.channel.clone());
    let mut tcp = SvidClient::new(h.tcp_channel.clone());
    let before = revision(h).await;
    let mut outcome = match row.surface.as_str() {
        "BatchNewX509SVID" => {
            let bad = NewX509svidParams {
                entry_id: server.entry(&mut input),
                csr: csr(&mut input),
            };
            input.done()?;
            let good = NewX509svidParams {
                entry_id: server.mine.clone(),
                csr: csr_with(&KeyPair::generate().unwrap(), &[], &[]),
            };
            let results = tcp
                .batch_new_x509svid(agent(BatchNewX509svidRequest {
                    params: vec![bad, good],
                }))
                .await
                .map_err(|s| format!("the batch failed: {s:?}"))?
                .into_inner()
                .results;
            let mut outcome = Outcome::item(results[0].status.as_ref());
            outcome.check(
                results[1].status.as_ref().is_some_and(|s| s.code == 0),
                "the good item beside it was not signed",
            );
            if outcome.code == Code::Ok {
                // Whatever the CSR asked for, the certificate names the entry (CVE-2021-27098).
                let svid = results[0].svid.as_ref().unwrap();
                let got = sans(&svid.cert_chain[0]);
                outcome.check(
                    got == (
                        vec!["spiffe://example.org/web".to_owned()],
                        vec!["web.example.org".to_owned()],
                    ),
                    format!("the certificate's SANs are {got:?}, not the entry's"),
                );
            }
            outcome
        }
        "NewJWTSVID" => {
            let request = NewJwtsvidRequest {
                entry_id: server.entry(&mut input),
                audience: audience(&mut input),
            };
            input.done()?;
            Outcome::of(&tcp.new_jwtsvid(agent(request)).await)
        }
        "MintX509SVID" => {
            let request = MintX509svidRequest {
                csr: csr(&mut input),
                ttl: 0,
            };
            input.done()?;
            Outcome::of(&admin.mint_x509svid(request).await)
        }
        "MintJWTSVID" => {
            let request = MintJwtsvidRequest {
                id: proto_id(&mut input, "id")
                    .unwrap_or_else(|| Some(crate::support::pid(crate::support::TD, "/w"))),
                audience: audience(&mut input),
                ttl: 0,
            };
            input.done()?;
            Outcome::of(&admin.mint_jwtsvid(request).await)
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    check_revision(&mut outcome, before, revision(h).await, 0);
    Ok(outcome)
}

#[tokio::test]
async fn svid_catalogue() {
    let server = Server::start(Harness::start().await).await;
    // Rows with `"server": "jwt-disabled"` run against a server whose CA makes no JWT key.
    let mut disabled = None;
    let mut tally = Tally::new("svid.tsv");
    for row in table::load("svid.tsv") {
        let mut row = row;
        let target = match row.input.remove("server") {
            None => &server,
            Some(Value::String(s)) if s == "jwt-disabled" => {
                if disabled.is_none() {
                    let h = Harness::start_with_ca(|ca| ca.disable_jwt_svids = true).await;
                    disabled = Some(Server::start(h).await);
                }
                disabled.as_ref().unwrap()
            }
            Some(other) => panic!("unknown server {other}"),
        };
        let outcome = run(target, &row).await;
        tally.record(&row, outcome);
    }
    tally.finish();
}
