//! JWT test support: a JWT authority the test holds, a fake JWT-SVID source that signs with
//! it, tokens signed field by field, and raw Workload API calls with the security header.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::PublicKeyData as _;
use serde_json::{Value, json};
use spire_agent_cache::{Entry, JwtSvid, JwtSvidError, JwtSvidSource};
use spire_agent_workload::SECURITY_HEADER;
use spire_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use spire_svid::jwt::{JwtClaims, JwtSigner};
use spire_svid::{JwtAuthority, KeyType};
use spire_time::SharedClock;
use tonic::transport::Channel;

use super::Served;

/// Lifetime of the fake source's tokens.
pub const JWT_TTL_SECONDS: i64 = 300;

/// An ES256 JWT authority.
pub struct JwtKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
}

impl JwtKey {
    pub fn new(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: key.serialize_der(),
            spki: key.subject_public_key_info(),
        }
    }

    /// The key as a bundle's JWT authority.
    pub fn authority(&self) -> JwtAuthority {
        JwtAuthority {
            key_id: self.kid.clone(),
            public_key: self.spki.clone(),
            expires_at: 0,
            tainted: false,
        }
    }

    pub fn signer(&self) -> JwtSigner {
        JwtSigner::from_pkcs8(&self.kid, KeyType::EcP256, &self.pkcs8).unwrap()
    }

    /// A compact JWS of exactly this header and payload, signed ES256 with this key.
    pub fn sign_raw(&self, header: &Value, payload: &Value) -> String {
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let input = format!("{}.{}", encode(header), encode(payload));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8).unwrap();
        let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// A token with SPIRE's header (`alg`, `kid`, `typ`) and `payload`.
    pub fn sign(&self, payload: &Value) -> String {
        self.sign_raw(
            &json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            payload,
        )
    }
}

/// Signs a JWT-SVID for each request with [`JwtKey`], valid [`JWT_TTL_SECONDS`] from the
/// clock's now; or fails with the message given to [`FakeSource::fail`].
#[derive(Debug)]
pub struct FakeSource {
    signer: JwtSigner,
    clock: SharedClock,
    failing: Mutex<Option<String>>,
    /// (entry ID, audience) per request.
    calls: Mutex<Vec<(String, Vec<String>)>>,
}

impl FakeSource {
    pub fn new(key: &JwtKey, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            signer: key.signer(),
            clock,
            failing: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
        })
    }

    pub fn fail(&self, message: Option<&str>) {
        *self.failing.lock().unwrap() = message.map(str::to_owned);
    }

    pub fn calls(&self) -> Vec<(String, Vec<String>)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl JwtSvidSource for FakeSource {
    async fn fetch_jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
    ) -> Result<Arc<JwtSvid>, JwtSvidError> {
        self.calls
            .lock()
            .unwrap()
            .push((entry.id.clone(), audience.to_vec()));
        if let Some(message) = self.failing.lock().unwrap().clone() {
            return Err(JwtSvidError::Mint(message));
        }
        let now = self.clock.unix_seconds();
        let token = self
            .signer
            .sign(&JwtClaims {
                subject: entry.spiffe_id.clone(),
                audience: audience.to_vec(),
                expires_at: now + JWT_TTL_SECONDS,
                issued_at: now,
                issuer: None,
            })
            .unwrap();
        Ok(Arc::new(JwtSvid {
            token,
            spiffe_id: entry.spiffe_id.clone(),
            issued_at: spire_time::from_unix_seconds(now),
            expires_at: spire_time::from_unix_seconds(now + JWT_TTL_SECONDS),
        }))
    }
}

/// A raw Workload API client.
pub type WorkloadClient = SpiffeWorkloadApiClient<Channel>;

/// A raw Workload API client on `served` (requests need [`with_header`]).
pub async fn raw_client(served: &Served) -> WorkloadClient {
    let channel = tonic::transport::Endpoint::try_from(served.uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    SpiffeWorkloadApiClient::new(channel)
}

/// `message` with the `workload.spiffe.io: true` header.
pub fn with_header<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(SECURITY_HEADER, "true".parse().unwrap());
    request
}
