//! The LocalAuthority operations of the CA manager: prepare → activate → taint → revoke for
//! X.509 CAs and JWT keys, every refusal with SPIRE's code and message, and SPIRE's authority
//! IDs (hex of the CA's subject key identifier: SHA-1 of the key bits).
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::sync::Arc;

use spire_server_ca::{CaManager, Plugins, Refusal, RefusalCode};
use spire_server_plugin::keymanager::MemoryKeyManager;
use spire_server_plugin::upstreamauthority::{DiskUpstreamAuthority, DiskUpstreamConfig};
use support::*;
use x509_parser::extensions::ParsedExtension;

async fn manager(fx: &Fixture) -> CaManager {
    fx.manager(Arc::new(MemoryKeyManager::new())).await
}

fn refusal(code: RefusalCode, message: &str) -> Refusal {
    Refusal {
        code,
        message: message.to_owned(),
    }
}

fn invalid(message: &str) -> Refusal {
    refusal(RefusalCode::InvalidArgument, message)
}

fn ski_hex(der: &[u8]) -> String {
    let cert = parse(der);
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(hex::encode(k.0)),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn authority_id_is_the_hex_sha1_subject_key_id_of_the_ca() {
    let fx = Fixture::new().await;
    let m = manager(&fx).await;
    let (_, ca) = m.current().await.unwrap();
    let cert = parse(ca.certificate());
    // RFC 5280 method 1: SHA-1 over the subjectPublicKey bits.
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &cert.public_key().subject_public_key.data,
    );
    let expected = hex::encode(digest.as_ref());
    assert_eq!(ca.authority_id(), expected);
    assert_eq!(ski_hex(ca.certificate()), expected);
    assert_eq!(expected.len(), 40);
    let states = m.x509_authority_states().await.unwrap();
    assert_eq!(states.active.unwrap().authority_id, expected);
    assert!(states.prepared.is_none() && states.old.is_none());
}

#[tokio::test]
async fn x509_prepare_activate_taint_revoke() {
    let fx = Fixture::new().await;
    let m = manager(&fx).await;
    let first = m.x509_authority_states().await.unwrap().active.unwrap();
    assert!(first.upstream_authority_subject_key_id.is_empty());

    // Nothing prepared yet: nothing to activate, taint or revoke.
    assert_eq!(
        m.activate_x509_authority("").await.unwrap_err(),
        invalid("no authority ID provided")
    );
    assert_eq!(
        m.activate_x509_authority("abc").await.unwrap_err(),
        invalid("unexpected authority ID")
    );
    assert_eq!(
        m.taint_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        invalid("unable to taint current local authority")
    );
    assert_eq!(
        m.revoke_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        invalid("invalid authority ID: unable to use current authority")
    );

    let prepared = m.prepare_x509_authority().await.unwrap();
    assert_ne!(prepared.authority_id, first.authority_id);
    assert!(fx.bundle_roots().await.len() == 2, "published before use");
    let states = m.x509_authority_states().await.unwrap();
    assert_eq!(states.prepared.as_ref(), Some(&prepared));
    assert!(states.old.is_none());

    // A prepared authority can be neither tainted nor revoked.
    assert_eq!(
        m.taint_x509_authority(&prepared.authority_id)
            .await
            .unwrap_err(),
        invalid(
            "only Old local authorities can be tainted: unsupported local authority status: PREPARED"
        )
    );
    assert_eq!(
        m.revoke_x509_authority(&prepared.authority_id)
            .await
            .unwrap_err(),
        invalid("invalid authority ID: only Old local authority can be revoked")
    );
    assert_eq!(
        m.taint_x509_authority("").await.unwrap_err(),
        invalid("no authority ID provided")
    );
    assert_eq!(
        m.revoke_x509_authority("").await.unwrap_err(),
        invalid("invalid authority ID: no authority ID provided")
    );

    let activated = m
        .activate_x509_authority(&prepared.authority_id)
        .await
        .unwrap();
    assert_eq!(activated, prepared);
    let states = m.x509_authority_states().await.unwrap();
    assert_eq!(states.active.as_ref(), Some(&prepared));
    assert_eq!(states.old.as_ref(), Some(&first));
    assert!(states.prepared.is_none());
    // The new CA signs from now on.
    let svid = mint(&m, &fx.id("/w"), secs(600));
    assert_eq!(
        verify_chain(&svid, &fx.bundle_roots().await, fx.now()),
        Ok(())
    );

    // Activating the old one again is refused (Internal, as SPIRE).
    assert_eq!(
        m.activate_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "only Prepared authorities can be activated: unsupported local authority status: OLD"
        )
    );
    // Revoking before tainting.
    assert_eq!(
        m.revoke_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to revoke X.509 authority: it is not possible to revoke an untainted root CA"
        )
    );
    assert_eq!(
        m.taint_x509_authority("0123").await.unwrap_err(),
        invalid("unexpected authority ID")
    );

    let tainted = m.taint_x509_authority(&first.authority_id).await.unwrap();
    assert_eq!(tainted, first);
    let bundle = fx.datastore.fetch_bundle(fx.td()).await.unwrap().unwrap();
    let flags: Vec<(String, bool)> = bundle
        .x509_authorities
        .iter()
        .map(|a| (ski_hex(&a.asn1), a.tainted))
        .collect();
    assert_eq!(
        flags,
        vec![
            (first.authority_id.clone(), true),
            (prepared.authority_id.clone(), false)
        ]
    );
    assert_eq!(
        m.taint_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to taint X.509 authority: root CA is already tainted"
        )
    );

    let revoked = m.revoke_x509_authority(&first.authority_id).await.unwrap();
    assert_eq!(revoked.authority_id, first.authority_id);
    assert_eq!(revoked.expires_at, 0);
    let roots = fx.bundle_roots().await;
    assert_eq!(roots.len(), 1);
    assert_eq!(ski_hex(&roots[0]), prepared.authority_id);
    assert!(
        bundle.sequence_number
            < fx.datastore
                .fetch_bundle(fx.td())
                .await
                .unwrap()
                .unwrap()
                .sequence_number
    );
    assert_eq!(
        m.revoke_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to revoke X.509 authority: no root CA found with provided subject key ID"
        )
    );
    assert_eq!(
        m.taint_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to taint X.509 authority: no ca found with provided subject key ID"
        )
    );

    // Upstream methods need an upstream authority.
    let upstream = refusal(
        RefusalCode::FailedPrecondition,
        "upstream authority is not configured",
    );
    assert_eq!(
        m.taint_x509_upstream_authority("ab").await.unwrap_err(),
        upstream
    );
    assert_eq!(
        m.revoke_x509_upstream_authority("ab").await.unwrap_err(),
        upstream
    );

    // A new preparation reuses the old slot.
    let again = m.prepare_x509_authority().await.unwrap();
    let states = m.x509_authority_states().await.unwrap();
    assert_eq!(states.prepared, Some(again));
    assert!(states.old.is_none());
}

#[tokio::test]
async fn the_old_authority_survives_a_restart() {
    let fx = Fixture::new().await;
    let km = Arc::new(MemoryKeyManager::new());
    let m = fx.manager(km.clone()).await;
    let first = m.x509_authority_states().await.unwrap().active.unwrap();
    let next = m.prepare_x509_authority().await.unwrap();
    m.activate_x509_authority(&next.authority_id).await.unwrap();
    drop(m);
    let restarted = fx.manager(km).await;
    let states = restarted.x509_authority_states().await.unwrap();
    assert_eq!(states.active, Some(next));
    assert_eq!(states.old, Some(first.clone()));
    restarted
        .taint_x509_authority(&first.authority_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn jwt_prepare_activate_taint_revoke() {
    let fx = Fixture::new().await;
    let m = manager(&fx).await;
    let first = m.jwt_authority_states().await.unwrap().active.unwrap();
    assert_eq!(first.authority_id.len(), 32);

    assert_eq!(
        m.taint_jwt_authority(&first.authority_id)
            .await
            .unwrap_err(),
        invalid("unable to taint current local authority")
    );
    assert_eq!(
        m.revoke_jwt_authority(&first.authority_id)
            .await
            .unwrap_err(),
        invalid("invalid authority ID: unable to use current authority")
    );
    assert_eq!(
        m.revoke_jwt_authority("nope").await.unwrap_err(),
        invalid("invalid authority ID: no JWT authority found with provided authority ID")
    );
    assert_eq!(
        m.revoke_jwt_authority("").await.unwrap_err(),
        invalid("invalid authority ID: no authority ID provided")
    );

    let prepared = m.prepare_jwt_authority().await.unwrap();
    assert_eq!(
        m.taint_jwt_authority(&prepared.authority_id)
            .await
            .unwrap_err(),
        invalid(
            "only Old local authorities can be tainted: unsupported local authority status: PREPARED"
        )
    );
    assert_eq!(
        m.revoke_jwt_authority(&prepared.authority_id)
            .await
            .unwrap_err(),
        invalid("invalid authority ID: unable to use a prepared key")
    );
    assert_eq!(
        m.activate_jwt_authority("x").await.unwrap_err(),
        invalid("unexpected authority ID")
    );
    assert_eq!(
        m.activate_jwt_authority(&prepared.authority_id)
            .await
            .unwrap(),
        prepared
    );
    assert_eq!(
        m.activate_jwt_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "only Prepared authorities can be activated: unsupported local authority status: OLD"
        )
    );
    let states = m.jwt_authority_states().await.unwrap();
    assert_eq!(states.old, Some(first.clone()));
    assert_eq!(
        m.revoke_jwt_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to revoke JWT authority: it is not possible to revoke an untainted key"
        )
    );
    let tainted = m.taint_jwt_authority(&first.authority_id).await.unwrap();
    assert_eq!(tainted.authority_id, first.authority_id);
    assert_eq!(
        m.taint_jwt_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to taint JWT authority: key is already tainted"
        )
    );
    let bundle = fx.datastore.fetch_bundle(fx.td()).await.unwrap().unwrap();
    assert!(
        bundle
            .jwt_authorities
            .iter()
            .any(|k| k.key_id == first.authority_id && k.tainted)
    );
    m.revoke_jwt_authority(&first.authority_id).await.unwrap();
    let bundle = fx.datastore.fetch_bundle(fx.td()).await.unwrap().unwrap();
    let kids: Vec<_> = bundle
        .jwt_authorities
        .iter()
        .map(|k| k.key_id.clone())
        .collect();
    assert_eq!(kids, vec![prepared.authority_id.clone()]);
    // Still the old slot, so it passes the ID check and the datastore answers.
    assert_eq!(
        m.revoke_jwt_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::Internal,
            "failed to revoke JWT authority: no JWT Key found with provided key ID"
        )
    );
}

#[tokio::test]
async fn jwt_methods_refuse_when_jwt_svids_are_disabled() {
    let mut fx = Fixture::new().await;
    fx.config.disable_jwt_svids = true;
    let m = manager(&fx).await;
    let disabled = refusal(RefusalCode::Unimplemented, "JWT functionality is disabled");
    assert_eq!(m.jwt_authority_states().await.unwrap_err(), disabled);
    assert_eq!(m.prepare_jwt_authority().await.unwrap_err(), disabled);
    assert_eq!(m.activate_jwt_authority("a").await.unwrap_err(), disabled);
    assert_eq!(m.taint_jwt_authority("a").await.unwrap_err(), disabled);
    assert_eq!(m.revoke_jwt_authority("a").await.unwrap_err(), disabled);
}

fn write_upstream(dir: &std::path::Path, now: std::time::SystemTime) -> DiskUpstreamConfig {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Upstream");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now: time::OffsetDateTime = now.into();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("upstream.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("upstream.key"), key.serialize_pem()).unwrap();
    DiskUpstreamConfig {
        cert_file_path: dir.join("upstream.crt"),
        key_file_path: dir.join("upstream.key"),
        bundle_file_path: None,
    }
}

#[tokio::test]
async fn with_an_upstream_authority_only_the_upstream_methods_apply() {
    let fx = Fixture::new().await;
    let config = write_upstream(fx.dir.path(), fx.now());
    let upstream = DiskUpstreamAuthority::load(&config, fx.shared_clock()).unwrap();
    let m = CaManager::new(
        fx.config.clone(),
        fx.shared_clock(),
        Plugins {
            key_manager: Arc::new(MemoryKeyManager::new()),
            upstream_authority: Some(Arc::new(upstream)),
        },
        fx.datastore.clone(),
    )
    .await
    .unwrap();
    let first = m.x509_authority_states().await.unwrap().active.unwrap();
    let root = fx.bundle_roots().await;
    assert_eq!(first.upstream_authority_subject_key_id, ski_hex(&root[0]));

    assert_eq!(
        m.taint_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::FailedPrecondition,
            "local authority can't be tainted if there is an upstream authority"
        )
    );
    assert_eq!(
        m.revoke_x509_authority(&first.authority_id)
            .await
            .unwrap_err(),
        refusal(
            RefusalCode::FailedPrecondition,
            "local authority can't be revoked if there is an upstream authority"
        )
    );
    assert_eq!(
        m.taint_x509_upstream_authority("").await.unwrap_err(),
        invalid("provided subject key id is not valid: no subject key ID provided")
    );
    // The same upstream root signs the current CA: it cannot be tainted (SPIRE's wording).
    let upper = first.upstream_authority_subject_key_id.to_uppercase();
    assert_eq!(
        m.taint_x509_upstream_authority(&upper).await.unwrap_err(),
        invalid(
            "provided subject key id is not valid: unable to use upstream authority singing current authority"
        )
    );
    assert_eq!(
        m.revoke_x509_upstream_authority("00ff").await.unwrap_err(),
        invalid("invalid subject key ID: upstream authority didn't sign the old local authority")
    );
}
