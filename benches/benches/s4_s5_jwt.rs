//! S4 (JWT-SVID mint, in process) and S5 (JWT-SVID validation), each beside the raw ES256
//! sign / verify floor measured in the same run. The over-the-wire half of S4 (FetchJWTSVID
//! with a cold agent cache) is the `s4_fetch_jwt` harness.
//!
//! `cargo bench -p spire-benches --bench s4_s5_jwt`
#![allow(clippy::unwrap_used)] // a harness: a failed set-up should abort loudly

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spire_id::{SpiffeId, TrustDomain};
use spire_svid::jwt::{JwtClaims, JwtSigner, validate_jwt_svid};
use spire_svid::{Bundle, JwtAuthority, KeyType};

const NOW: i64 = 1_800_000_000;

fn jwt(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let raw = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .unwrap();
    let kid = "Zk3jfoJ0CpMRrWfVvP2rsmLGgPZCIcx8"; // 32 characters, like the server's
    let signer = JwtSigner::from_pkcs8(kid, KeyType::EcP256, pkcs8.as_ref()).unwrap();
    let spki = rcgen::KeyPair::try_from(pkcs8.as_ref())
        .map(|k| rcgen::PublicKeyData::subject_public_key_info(&k))
        .unwrap();
    let mut bundle = Bundle::new(TrustDomain::new("example.org").unwrap());
    // A bundle as a long-lived trust domain has it: the active key among older ones.
    for i in 0..3 {
        let other = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        bundle.jwt_authorities.push(JwtAuthority {
            key_id: format!("older-key-{i}"),
            public_key: rcgen::KeyPair::try_from(other.as_ref())
                .map(|k| rcgen::PublicKeyData::subject_public_key_info(&k))
                .unwrap(),
            expires_at: 0,
            tainted: false,
        });
    }
    bundle.jwt_authorities.push(JwtAuthority {
        key_id: kid.to_owned(),
        public_key: spki,
        expires_at: 0,
        tainted: false,
    });
    let claims = JwtClaims {
        subject: SpiffeId::parse("spiffe://example.org/ns/default/sa/bookinfo-productpage")
            .unwrap(),
        audience: vec!["spiffe://example.org/ns/default/sa/reviews".into()],
        expires_at: NOW + 300,
        issued_at: NOW,
        issuer: None,
    };
    let token = signer.sign(&claims).unwrap();
    let audience = claims.audience.clone();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap()
    };
    let public = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        raw.public_key().as_ref().to_vec(),
    );

    let mut group = c.benchmark_group("s4_jwt_mint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor_raw_es256_sign", |b| {
        b.iter(|| raw.sign(&rng, black_box(input.as_bytes())).unwrap())
    });
    group.bench_function("jwt_signer_sign", |b| {
        b.iter(|| signer.sign(black_box(&claims)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("s5_jwt_validate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor_raw_es256_verify", |b| {
        b.iter(|| public.verify(black_box(input.as_bytes()), &sig).unwrap())
    });
    group.bench_function("validate_jwt_svid", |b| {
        b.iter(|| {
            validate_jwt_svid(black_box(&token), &audience, NOW, |_: &TrustDomain| {
                Some(&bundle)
            })
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, jwt);
criterion_main!(benches);
