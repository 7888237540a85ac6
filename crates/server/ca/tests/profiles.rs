//! Every field of the CA certificate and of issued X509-SVIDs, checked by parsing the DER.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::sync::Arc;

use spire_server_ca::X509SvidParams;
use spire_server_plugin::keymanager::MemoryKeyManager;
use support::*;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_ORGANIZATION_NAME,
};
use x509_parser::prelude::X509Certificate;

fn attrs(cert: &X509Certificate<'_>, oid: &x509_parser::der_parser::Oid<'_>) -> Vec<String> {
    cert.subject()
        .iter_attributes()
        .filter(|a| a.attr_type() == oid)
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn uris<'a>(cert: &'a X509Certificate<'_>) -> Vec<&'a str> {
    sans(cert)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn dns<'a>(cert: &'a X509Certificate<'_>) -> Vec<&'a str> {
    sans(cert)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn sans<'a>(cert: &'a X509Certificate<'_>) -> Vec<GeneralName<'a>> {
    cert.subject_alternative_name()
        .unwrap()
        .map(|s| s.value.general_names.clone())
        .unwrap_or_default()
}

fn serial_in_range(cert: &X509Certificate<'_>) {
    let serial = cert.tbs_certificate.raw_serial_as_string();
    let bits = cert.serial.bits();
    assert!((1..=128).contains(&bits), "serial {serial} has {bits} bits");
}

#[tokio::test]
async fn ca_certificate_has_spire_profile() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, ca) = manager.current().await.unwrap();
    let cert = parse(ca.certificate());

    assert_eq!(attrs(&cert, &OID_X509_COUNTRY_NAME), ["US"]);
    assert_eq!(attrs(&cert, &OID_X509_ORGANIZATION_NAME), ["SPIFFE"]);
    let serial_number_oid = x509_parser::der_parser::oid!(2.5.4.5);
    let decimal = cert.serial.to_string();
    assert_eq!(attrs(&cert, &serial_number_oid), [decimal]);
    assert_eq!(cert.subject(), cert.issuer(), "self-signed");
    assert_eq!(uris(&cert), ["spiffe://example.org"]);

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint.is_none());
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
    assert!(!ku.value.digital_signature());
    assert!(cert.extended_key_usage().unwrap().is_none());
    let ski = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(hex::encode(k.0)),
            _ => None,
        })
        .unwrap();
    assert_eq!(ski, ca.authority_id());
    serial_in_range(&cert);

    let now = spire_time::to_unix_seconds(fx.now());
    assert_eq!(cert.validity().not_before.timestamp(), now - 10);
    assert_eq!(cert.validity().not_after.timestamp(), now + 24 * 3600);
    assert_eq!(fx.bundle_roots().await, [ca.certificate().to_vec()]);
}

#[tokio::test]
async fn workload_svid_has_spire_profile() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let ca = manager.ca();
    let (_, spki) = workload_key();
    let id = fx.id("/ns/default/sa/sleep");
    let dns_names = vec![
        "sleep-5f4d47c948-njvpk".to_owned(),
        "sleep.default.svc".to_owned(),
    ];
    let chain = ca
        .sign_workload_x509_svid(
            &spki,
            X509SvidParams {
                spiffe_id: &id,
                dns_names: &dns_names,
                ttl: secs(0),
            },
        )
        .unwrap();
    assert_eq!(
        chain.len(),
        1,
        "self-signed CA: the leaf alone, the root is in the bundle"
    );
    let leaf = parse(&chain[0]);

    assert_eq!(attrs(&leaf, &OID_X509_COUNTRY_NAME), ["US"]);
    assert_eq!(attrs(&leaf, &OID_X509_ORGANIZATION_NAME), ["SPIRE"]);
    assert_eq!(
        attrs(&leaf, &OID_X509_COMMON_NAME),
        ["sleep-5f4d47c948-njvpk"]
    );
    assert_eq!(uris(&leaf), ["spiffe://example.org/ns/default/sa/sleep"]);
    assert_eq!(dns(&leaf), ["sleep-5f4d47c948-njvpk", "sleep.default.svc"]);
    assert_eq!(leaf.public_key().raw, spki.as_slice());

    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(
        ku.value.digital_signature() && ku.value.key_encipherment() && ku.value.key_agreement()
    );
    assert!(!ku.value.key_cert_sign() && !ku.value.crl_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca, "CA:false must be explicit");
    serial_in_range(&leaf);

    let aki = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| hex::encode(k.0))
            }
            _ => None,
        })
        .unwrap();
    let (_, active) = manager.current().await.unwrap();
    assert_eq!(aki, active.authority_id());

    let now = spire_time::to_unix_seconds(fx.now());
    assert_eq!(leaf.validity().not_before.timestamp(), now - 10);
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        now + 3600,
        "server default TTL"
    );
    verify_chain(&chain, &fx.bundle_roots().await, fx.now()).unwrap();
}

#[tokio::test]
async fn svid_without_dns_names_has_no_common_name_and_entry_ttl_applies() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let chain = mint(&manager, &fx.id("/workload"), secs(600));
    let leaf = parse(&chain[0]);
    assert!(attrs(&leaf, &OID_X509_COMMON_NAME).is_empty());
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        spire_time::to_unix_seconds(fx.now()) + 600
    );
}

#[tokio::test]
async fn ttl_is_capped_by_the_ca() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let chain = mint(&manager, &fx.id("/workload"), secs(10 * 365 * 86_400));
    let (_, ca) = manager.current().await.unwrap();
    assert_eq!(
        parse(&chain[0]).validity().not_after.timestamp(),
        spire_time::to_unix_seconds(ca.not_after())
    );
}

#[tokio::test]
async fn csr_asking_for_another_id_gets_the_entry_id() {
    // CVE-2021-27098: the CSR's names are ignored; only its key is used.
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (key, spki) = workload_key();
    let csr = csr_asking_for(
        &key,
        "spiffe://example.org/spire/server",
        "evil.example.com",
    );
    let id = fx.id("/ns/default/sa/web");
    let dns_names = vec!["web.default.svc".to_owned()];
    let chain = manager
        .ca()
        .sign_workload_x509_svid_from_csr(
            &csr,
            X509SvidParams {
                spiffe_id: &id,
                dns_names: &dns_names,
                ttl: secs(0),
            },
        )
        .unwrap();
    let leaf = parse(&chain[0]);
    assert_eq!(uris(&leaf), ["spiffe://example.org/ns/default/sa/web"]);
    assert_eq!(dns(&leaf), ["web.default.svc"]);
    assert_eq!(attrs(&leaf, &OID_X509_COMMON_NAME), ["web.default.svc"]);
    assert_eq!(leaf.public_key().raw, spki.as_slice());
}

#[tokio::test]
async fn bad_csrs_get_spire_messages() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let id = fx.id("/w");
    let params = X509SvidParams {
        spiffe_id: &id,
        dns_names: &[],
        ttl: secs(0),
    };
    let ca = manager.ca();
    let err = |csr: &[u8]| {
        ca.sign_workload_x509_svid_from_csr(csr, params)
            .unwrap_err()
            .to_string()
    };

    assert_eq!(err(b""), "missing CSR");
    assert_eq!(err(b"\x30\x03garbage"), "malformed CSR");
    let (key, _) = workload_key();
    let mut csr = csr_asking_for(&key, "spiffe://example.org/w", "w.example.org");
    let last = csr.len() - 1;
    csr[last] ^= 0x01; // flip a bit of the signature
    assert_eq!(err(&csr), "failed to verify CSR signature");
}

#[tokio::test]
async fn agent_and_server_svids_have_no_common_name() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, spki) = workload_key();
    let agent_id = fx.id("/spire/agent/join_token/abc");
    let agent = manager.ca().sign_agent_x509_svid(&spki, &agent_id).unwrap();
    let server = manager.ca().sign_server_x509_svid(&spki).unwrap();
    let agent = parse(&agent[0]);
    let server = parse(&server[0]);
    assert_eq!(
        uris(&agent),
        ["spiffe://example.org/spire/agent/join_token/abc"]
    );
    assert_eq!(uris(&server), ["spiffe://example.org/spire/server"]);
    for cert in [&agent, &server] {
        assert!(attrs(cert, &OID_X509_COMMON_NAME).is_empty());
        assert_eq!(attrs(cert, &OID_X509_ORGANIZATION_NAME), ["SPIRE"]);
        assert!(dns(cert).is_empty());
    }
}

#[tokio::test]
async fn every_ca_key_type_signs_verifiable_svids() {
    for key_type in [spire_svid::KeyType::EcP384, spire_svid::KeyType::Rsa2048] {
        let mut fx = Fixture::new().await;
        fx.config.ca_key_type = key_type;
        let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
        let chain = mint(&manager, &fx.id("/w"), secs(0));
        verify_chain(&chain, &fx.bundle_roots().await, fx.now())
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
    }
}
