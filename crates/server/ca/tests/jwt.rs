//! JWT keys on an injected clock: prepared and activated with the X.509 CA, published before
//! use, trusted until pruned, resumed after a restart; JWT-SVID claims, algorithms and TTL cap.
#![allow(clippy::unwrap_used)] // test code: a failed step should abort the test

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use spire_server_ca::{CaManager, JwtKey, KID_LEN, SlotId};
use spire_server_plugin::keymanager::{DiskKeyManager, KeyManager, MemoryKeyManager};
use spire_svid::jwt::{JwtAlgorithm, JwtError, validate_jwt_svid};
use spire_svid::{Bundle, KeyType};
use spire_time::{Clock as _, to_unix_seconds};
use support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn bundle(fx: &Fixture) -> Bundle {
    fx.datastore.fetch_bundle(fx.td()).await.unwrap().unwrap()
}

fn kids(bundle: &Bundle) -> Vec<String> {
    bundle
        .jwt_authorities
        .iter()
        .map(|a| a.key_id.clone())
        .collect()
}

fn aud(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// The decoded header and payload of a compact JWS.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let bytes = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    (next(), next())
}

fn validate(token: &str, audience: &str, now: i64, bundle: &Bundle) -> Result<String, JwtError> {
    validate_jwt_svid(token, &aud(&[audience]), now, |_| Some(bundle))
        .map(|v| v.spiffe_id.to_string())
}

/// ½ and ⅚ of a JWT key's lifetime, as the rotation policy measures it.
fn thresholds(key: &JwtKey) -> (SystemTime, SystemTime) {
    let lifetime = key.not_after().duration_since(key.issued_at()).unwrap();
    (
        key.issued_at() + lifetime / 2,
        key.issued_at() + lifetime * 5 / 6,
    )
}

fn assert_kid_format(kid: &str) {
    assert_eq!(kid.len(), KID_LEN, "{kid}");
    assert!(kid.bytes().all(|c| c.is_ascii_alphanumeric()), "{kid}");
}

async fn jwt_key_rotates_with_the_x509_ca(key_manager: Arc<dyn KeyManager>) {
    let fx = Fixture::new().await;
    let manager = fx.manager(key_manager).await;
    let (slot, first) = manager.current_jwt_key().await.unwrap();
    assert_eq!(slot, SlotId::A);
    assert_kid_format(first.kid());
    assert_eq!(first.not_after(), first.issued_at() + fx.config.ca_ttl);
    assert!(manager.next_jwt_key().await.is_none());
    assert_eq!(
        kids(&bundle(&fx).await),
        [first.kid()],
        "published at start"
    );
    let (half, five_sixths) = thresholds(&first);

    fx.clock.set(half - secs(1));
    manager.rotate().await.unwrap();
    assert!(manager.next_jwt_key().await.is_none(), "nothing before ½");

    fx.clock.set(half);
    manager.rotate().await.unwrap();
    let (next_slot, second) = manager.next_jwt_key().await.expect("prepared at ½");
    assert_eq!(next_slot, SlotId::B);
    assert_kid_format(second.kid());
    assert_ne!(second.kid(), first.kid());
    assert!(
        manager.next().await.is_some(),
        "the X.509 CA is prepared by the same tick"
    );
    assert_eq!(
        kids(&bundle(&fx).await),
        [first.kid(), second.kid()],
        "published before use"
    );
    let published = &bundle(&fx).await.jwt_authorities[1];
    assert_eq!(published.public_key, second.public_key_der());
    assert_eq!(published.expires_at, to_unix_seconds(second.not_after()));

    // Still signing with the first key; a token that outlives the activation.
    fx.clock.set(five_sixths - secs(1));
    manager.rotate().await.unwrap();
    let id = fx.id("/w");
    let old = manager
        .ca()
        .sign_workload_jwt_svid(&id, &aud(&["svc"]), secs(3600))
        .unwrap();
    assert_eq!(decode(&old.token).0["kid"], first.kid());

    fx.clock.set(five_sixths);
    manager.rotate().await.unwrap();
    let (slot, active) = manager.current_jwt_key().await.unwrap();
    assert_eq!((slot, active.kid()), (SlotId::B, second.kid()));
    assert!(manager.next_jwt_key().await.is_none());
    assert_eq!(
        manager.current().await.unwrap().0,
        SlotId::B,
        "the X.509 CA is activated by the same tick"
    );
    let new = manager
        .ca()
        .sign_workload_jwt_svid(&id, &aud(&["svc"]), secs(60))
        .unwrap();
    assert_eq!(decode(&new.token).0["kid"], second.kid());

    // Both validate against the stored bundle: the old key stays until it is pruned.
    let now = fx.clock.unix_seconds();
    let stored = bundle(&fx).await;
    assert_eq!(
        validate(&old.token, "svc", now, &stored).unwrap(),
        id.to_string()
    );
    assert_eq!(
        validate(&new.token, "svc", now, &stored).unwrap(),
        id.to_string()
    );

    // The next cycle reuses slot A with a new kid.
    let (second_half, _) = thresholds(&second);
    fx.clock.set(second_half);
    manager.rotate().await.unwrap();
    let (slot, third) = manager.next_jwt_key().await.unwrap();
    assert_eq!(slot, SlotId::A);
    assert!(![first.kid(), second.kid()].contains(&third.kid()));

    // A day after the first key expired it leaves the bundle, and its tokens stop validating
    // (checked at their issue time, so that only the missing key can fail them).
    fx.clock.set(first.not_after() + DAY + secs(1));
    manager.rotate().await.unwrap();
    let stored = bundle(&fx).await;
    assert!(!kids(&stored).contains(&first.kid().to_owned()));
    assert!(kids(&stored).contains(&second.kid().to_owned()));
    assert_eq!(
        validate(&old.token, "svc", old.issued_at, &stored),
        Err(JwtError::KeyNotFound {
            kid: first.kid().to_owned(),
            trust_domain: "example.org".into()
        })
    );
    assert!(validate(&new.token, "svc", new.issued_at, &stored).is_ok());
}

#[tokio::test]
async fn jwt_rotation_with_memory_key_manager() {
    jwt_key_rotates_with_the_x509_ca(Arc::new(MemoryKeyManager::new())).await;
}

#[tokio::test]
async fn jwt_rotation_with_disk_key_manager() {
    let dir = tempfile::tempdir().unwrap();
    let km = DiskKeyManager::open(dir.path().join("keys.json")).unwrap();
    jwt_key_rotates_with_the_x509_ca(Arc::new(km)).await;
}

#[tokio::test]
async fn tokens_carry_spire_claims_and_header() {
    let mut fx = Fixture::new().await;
    fx.config.jwt_issuer = Some("https://oidc.example.org".into());
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, key) = manager.current_jwt_key().await.unwrap();
    assert_eq!(key.algorithm(), JwtAlgorithm::Es256);
    let id = fx.id("/ns/default/sa/web");
    let svid = manager
        .ca()
        .sign_workload_jwt_svid(&id, &aud(&["a", "b"]), secs(0))
        .unwrap();
    let now = fx.clock.unix_seconds();
    assert_eq!(svid.issued_at, now);
    assert_eq!(svid.expires_at, now + 300, "default_jwt_svid_ttl is 5m");
    let (header, payload) = decode(&svid.token);
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": key.kid(), "typ": "JWT"})
    );
    assert_eq!(
        payload,
        json!({
            "aud": ["a", "b"],
            "exp": now + 300,
            "iat": now,
            "iss": "https://oidc.example.org",
            "sub": "spiffe://example.org/ns/default/sa/web",
        })
    );
    let stored = bundle(&fx).await;
    assert!(validate(&svid.token, "b", now, &stored).is_ok());

    // Without jwt_issuer there is no `iss`; a single audience is still a list.
    fx.config.jwt_issuer = None;
    let plain = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let svid = plain
        .ca()
        .sign_workload_jwt_svid(&id, &aud(&["only"]), secs(90))
        .unwrap();
    let (_, payload) = decode(&svid.token);
    assert_eq!(payload.get("iss"), None);
    assert_eq!(payload["aud"], json!(["only"]));
    assert_eq!(svid.expires_at, now + 90);
}

#[tokio::test]
async fn ttl_is_capped_at_the_key_expiry() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, key) = manager.current_jwt_key().await.unwrap();
    // No rotation tick runs, so the same key is still active a minute before it expires.
    fx.clock.set(key.not_after() - secs(60));
    let svid = manager
        .ca()
        .sign_workload_jwt_svid(&fx.id("/w"), &aud(&["svc"]), secs(3600))
        .unwrap();
    assert_eq!(svid.expires_at, to_unix_seconds(key.not_after()));
    assert_eq!(svid.expires_at - svid.issued_at, 60);
}

#[tokio::test]
async fn algorithm_follows_the_jwt_key_type() {
    // jwt_key_type defaults to ca_key_type.
    let mut fx = Fixture::new().await;
    fx.config.ca_key_type = KeyType::Rsa2048;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, key) = manager.current_jwt_key().await.unwrap();
    assert_eq!(
        (key.key_type(), key.algorithm()),
        (KeyType::Rsa2048, JwtAlgorithm::Rs256)
    );
    let svid = manager
        .ca()
        .sign_workload_jwt_svid(&fx.id("/w"), &aud(&["svc"]), secs(0))
        .unwrap();
    assert_eq!(decode(&svid.token).0["alg"], "RS256");
    let stored = bundle(&fx).await;
    assert!(validate(&svid.token, "svc", fx.clock.unix_seconds(), &stored).is_ok());

    // An explicit jwt_key_type wins.
    fx.config.jwt_key_type = Some(KeyType::EcP256);
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, key) = manager.current_jwt_key().await.unwrap();
    assert_eq!(
        (key.key_type(), key.algorithm()),
        (KeyType::EcP256, JwtAlgorithm::Es256)
    );
    assert_eq!(
        manager.current().await.unwrap().1.key().key_type(),
        KeyType::Rsa2048
    );
}

#[tokio::test]
async fn disk_key_manager_restart_resumes_the_same_jwt_keys() {
    let fx = Fixture::new().await;
    let keys = fx.dir.path().join("keys.json");
    let first = fx
        .manager(Arc::new(DiskKeyManager::open(&keys).unwrap()))
        .await;
    let (_, before) = first.current_jwt_key().await.unwrap();
    fx.clock.set(thresholds(&before).0);
    first.rotate().await.unwrap();
    let (_, prepared) = first.next_jwt_key().await.unwrap();
    let token = first
        .ca()
        .sign_workload_jwt_svid(&fx.id("/w"), &aud(&["svc"]), secs(60))
        .unwrap();
    drop(first);

    let restarted = CaManager::new(
        fx.config.clone(),
        fx.shared_clock(),
        spire_server_ca::Plugins {
            key_manager: Arc::new(DiskKeyManager::open(&keys).unwrap()),
            upstream_authority: None,
        },
        open_store(&fx.dir).await,
    )
    .await
    .unwrap();
    let (slot, after) = restarted.current_jwt_key().await.unwrap();
    assert_eq!((slot, after.kid()), (SlotId::A, before.kid()));
    assert_eq!(after.public_key_der(), before.public_key_der());
    assert_eq!(after.not_after(), before.not_after());
    let (slot, next) = restarted.next_jwt_key().await.unwrap();
    assert_eq!((slot, next.kid()), (SlotId::B, prepared.kid()));
    assert_eq!(kids(&bundle(&fx).await).len(), 2, "no new key was made");

    // The resumed key signs tokens with the same kid, valid with the same bundle.
    let again = restarted
        .ca()
        .sign_workload_jwt_svid(&fx.id("/w"), &aud(&["svc"]), secs(60))
        .unwrap();
    assert_eq!(decode(&again.token).0["kid"], decode(&token.token).0["kid"]);
    let stored = bundle(&fx).await;
    assert!(validate(&again.token, "svc", fx.clock.unix_seconds(), &stored).is_ok());
}

#[tokio::test]
async fn memory_key_manager_restart_makes_a_new_jwt_key_and_keeps_the_old_one_published() {
    let fx = Fixture::new().await;
    let first = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, old) = first.current_jwt_key().await.unwrap();
    drop(first);
    fx.clock.advance(secs(60));
    let restarted = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let (_, new) = restarted.current_jwt_key().await.unwrap();
    assert_ne!(new.kid(), old.kid());
    assert_eq!(
        kids(&bundle(&fx).await),
        [old.kid(), new.kid()],
        "old key kept until it expires"
    );
}

#[tokio::test]
async fn disabled_jwt_svids_make_no_keys_and_sign_nothing() {
    let mut fx = Fixture::new().await;
    fx.config.disable_jwt_svids = true;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    assert!(manager.ca().jwt_svids_disabled());
    assert!(manager.current_jwt_key().await.is_none());
    assert!(bundle(&fx).await.jwt_authorities.is_empty());
    let err = manager
        .ca()
        .sign_workload_jwt_svid(&fx.id("/w"), &aud(&["svc"]), secs(0))
        .unwrap_err();
    assert_eq!(err.to_string(), "JWT key is not available for signing");

    // Rotation still runs for the X.509 CA and still makes no JWT key.
    let (_, ca) = manager.current().await.unwrap();
    fx.clock
        .set(ca.not_before() + ca.not_after().duration_since(ca.not_before()).unwrap() / 2);
    manager.rotate().await.unwrap();
    assert!(manager.next().await.is_some());
    assert!(manager.next_jwt_key().await.is_none());
    assert!(bundle(&fx).await.jwt_authorities.is_empty());
}

#[tokio::test]
async fn no_audience_is_refused() {
    let fx = Fixture::new().await;
    let manager = fx.manager(Arc::new(MemoryKeyManager::new())).await;
    let err = manager
        .ca()
        .sign_workload_jwt_svid(&fx.id("/w"), &[], secs(0))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("at least one audience is required"),
        "{err}"
    );
}
