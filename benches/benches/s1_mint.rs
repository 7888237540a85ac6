//! S1: X509-SVID mint from a CSR, in process (parse + proof-of-possession verify + build +
//! sign), beside the raw P-256 sign and verify floors measured in the same run.
//!
//! `cargo bench -p spire-benches --bench s1_mint`
#![allow(clippy::unwrap_used)] // a harness: a failed set-up should abort loudly

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spire_id::{SpiffeId, TrustDomain};
use spire_server_ca::{CaConfig, CaManager, Plugins, X509SvidParams};
use spire_server_datastore_sql::{SqlConfig, SqlStore};
use spire_server_plugin::keymanager::MemoryKeyManager;
use spire_time::SystemClock;

fn s1(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manager = runtime.block_on(async {
        let store = SqlStore::open(&SqlConfig {
            database_type: "sqlite3".into(),
            connection_string: dir.path().join("ds.sqlite3").display().to_string(),
        })
        .await
        .unwrap();
        let td = TrustDomain::new("example.org").unwrap();
        CaManager::new(
            CaConfig::new(td),
            Arc::new(SystemClock),
            Plugins {
                key_manager: Arc::new(MemoryKeyManager::new()),
                upstream_authority: None,
            },
            Arc::new(store),
        )
        .await
        .unwrap()
    });
    let ca = manager.ca();
    let id = SpiffeId::parse("spiffe://example.org/ns/default/sa/bookinfo-productpage").unwrap();
    let params = X509SvidParams {
        spiffe_id: &id,
        dns_names: &[],
        ttl: std::time::Duration::ZERO,
    };
    let workload = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&workload);
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&workload)
        .unwrap()
        .der()
        .to_vec();

    // Floors: one raw ECDSA P-256 signature and one verification over a leaf-sized message.
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let raw = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .unwrap();
    let message = vec![0x5au8; 480];
    let sig = raw.sign(&rng, &message).unwrap();
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        raw.public_key().as_ref().to_vec(),
    );

    let mut group = c.benchmark_group("s1");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor_p256_sign", |b| {
        b.iter(|| raw.sign(&rng, black_box(&message)).unwrap())
    });
    group.bench_function("floor_p256_verify", |b| {
        b.iter(|| public.verify(black_box(&message), sig.as_ref()).unwrap())
    });
    group.bench_function("mint_from_public_key", |b| {
        b.iter(|| {
            ca.sign_workload_x509_svid(black_box(&spki), params)
                .unwrap()
        })
    });
    group.bench_function("mint_from_csr", |b| {
        b.iter(|| {
            ca.sign_workload_x509_svid_from_csr(black_box(&csr), params)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = s1
}
criterion_main!(benches);
