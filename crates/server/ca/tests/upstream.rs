//! `UpstreamAuthority "disk"`: our CA becomes an intermediate, SVIDs carry the chain and the
//! bundle holds the upstream root.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use spire_server_ca::{CaManager, Plugins};
use spire_server_plugin::keymanager::MemoryKeyManager;
use spire_server_plugin::upstreamauthority::{DiskUpstreamAuthority, DiskUpstreamConfig};
use support::*;
use x509_parser::extensions::GeneralName;

fn write_upstream(
    dir: &Path,
    not_after_days: i64,
    now: std::time::SystemTime,
) -> DiskUpstreamConfig {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Upstream");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now: time::OffsetDateTime = now.into();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(not_after_days);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("upstream.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("upstream.key"), key.serialize_pem()).unwrap();
    DiskUpstreamConfig {
        cert_file_path: dir.join("upstream.crt"),
        key_file_path: dir.join("upstream.key"),
        bundle_file_path: None,
    }
}

async fn manager_with(fx: &Fixture, config: &DiskUpstreamConfig) -> CaManager {
    let upstream = DiskUpstreamAuthority::load(config, fx.shared_clock()).unwrap();
    CaManager::new(
        fx.config.clone(),
        fx.shared_clock(),
        Plugins {
            key_manager: Arc::new(MemoryKeyManager::new()),
            upstream_authority: Some(Arc::new(upstream)),
        },
        fx.datastore.clone(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn svids_carry_the_intermediate_and_the_bundle_holds_the_upstream_root() {
    let fx = Fixture::new().await;
    let config = write_upstream(fx.dir.path(), 365, fx.now());
    let manager = manager_with(&fx, &config).await;
    let (_, ca) = manager.current().await.unwrap();
    let upstream_root = pem::parse(std::fs::read(&config.cert_file_path).unwrap())
        .unwrap()
        .into_contents();

    let intermediate = parse(ca.certificate());
    assert_ne!(
        intermediate.subject(),
        intermediate.issuer(),
        "signed upstream, not self-signed"
    );
    let bc = intermediate.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    let uris: Vec<_> = intermediate
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["spiffe://example.org"]);
    assert_eq!(
        fx.bundle_roots().await,
        std::slice::from_ref(&upstream_root)
    );

    let chain = mint(&manager, &fx.id("/w"), secs(0));
    assert_eq!(chain.len(), 2, "leaf + our intermediate");
    assert_eq!(chain[1], ca.certificate());
    verify_chain(&chain, &[upstream_root], fx.now()).unwrap();
}

#[tokio::test]
async fn ca_lifetime_is_capped_by_the_upstream() {
    let fx = Fixture::new().await;
    let config = write_upstream(fx.dir.path(), 0, fx.now()); // upstream expires now + 0 days
    let manager = manager_with(&fx, &config).await;
    let (_, ca) = manager.current().await.unwrap();
    let upstream = pem::parse(std::fs::read(&config.cert_file_path).unwrap()).unwrap();
    let upstream = parse(upstream.contents());
    assert_eq!(
        spire_time::to_unix_seconds(ca.not_after()),
        upstream.validity().not_after.timestamp()
    );
}

#[tokio::test]
async fn spire_dummy_upstream_ca_signs_our_ca() {
    let Some(dir) = spire_test::shared_testdata("spire-conf") else {
        return;
    };
    let fx = Fixture::new().await;
    let config = DiskUpstreamConfig {
        cert_file_path: dir.join("dummy_upstream_ca.crt"),
        key_file_path: dir.join("dummy_upstream_ca.key"),
        bundle_file_path: None,
    };
    let manager = manager_with(&fx, &config).await;
    let chain = mint(&manager, &fx.id("/w"), secs(0));
    verify_chain(&chain, &fx.bundle_roots().await, fx.now()).unwrap();
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_is_refused() {
    let fx = Fixture::new().await;
    let config = write_upstream(fx.dir.path(), 365, fx.now());
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&config.key_file_path, other.serialize_pem()).unwrap();
    let err = DiskUpstreamAuthority::load(&config, fx.shared_clock()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
