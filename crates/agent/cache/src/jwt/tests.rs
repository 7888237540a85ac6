use std::sync::Mutex;
use std::time::Duration;

use spire_id::SelectorSet;
use spire_time::{Clock as _, ManualClock};

use super::*;

const TTL: Duration = Duration::from_secs(300);

/// Mints `token-N` valid for [`TTL`] from the clock's now, or fails while told to.
#[derive(Debug)]
struct FakeMinter {
    clock: ManualClock,
    failing: Mutex<bool>,
    /// (entry ID, audience as asked, `cached` flag) per call.
    calls: Mutex<Vec<(String, Vec<String>, bool)>>,
}

impl FakeMinter {
    fn new(clock: &ManualClock) -> Arc<Self> {
        Arc::new(Self {
            clock: clock.clone(),
            failing: Mutex::new(false),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    fn calls(&self) -> Vec<(String, Vec<String>, bool)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl JwtSvidMinter for FakeMinter {
    async fn mint_jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
        cached: bool,
    ) -> Result<JwtSvid, JwtSvidError> {
        let mut calls = self.calls.lock().unwrap();
        calls.push((entry.id.clone(), audience.to_vec(), cached));
        if *self.failing.lock().unwrap() {
            return Err(JwtSvidError::Mint("server unreachable".into()));
        }
        let now = self.clock.now();
        Ok(JwtSvid {
            token: format!("token-{}", calls.len()),
            spiffe_id: entry.spiffe_id.clone(),
            issued_at: now,
            expires_at: now + TTL,
        })
    }
}

fn entry(id: &str) -> Entry {
    Entry {
        id: id.to_owned(),
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/w/{id}")).unwrap(),
        parent_id: SpiffeId::parse("spiffe://example.org/spire/agent/x").unwrap(),
        selectors: SelectorSet::default(),
        federates_with: Vec::new(),
        dns_names: Vec::new(),
        hint: String::new(),
        revision_number: 1,
        created_at: 1_767_225_600,
        x509_svid_ttl: 0,
        store_svid: false,
        admin: false,
        downstream: false,
    }
}

fn aud(list: &[&str]) -> Vec<String> {
    list.iter().map(|&a| a.to_owned()).collect()
}

fn setup(max: usize) -> (ManualClock, Arc<FakeMinter>, JwtSvidCache) {
    let clock = ManualClock::at_fixed_instant();
    let minter = FakeMinter::new(&clock);
    let cache = JwtSvidCache::new(max, minter.clone(), Arc::new(clock.clone()));
    (clock, minter, cache)
}

async fn token(cache: &JwtSvidCache, entry: &Entry, audience: &[&str]) -> String {
    cache
        .fetch_jwt_svid(entry, &aud(audience))
        .await
        .unwrap()
        .token
        .clone()
}

#[test]
fn keys_ignore_audience_order_and_duplicates() {
    let id = SpiffeId::parse("spiffe://example.org/w").unwrap();
    let key = JwtSvidKey::new(id.clone(), &aud(&["b", "a", "a"]));
    assert_eq!(key, JwtSvidKey::new(id.clone(), &aud(&["a", "b"])));
    assert_eq!(key.audience(), ["a", "b"]);
    assert_eq!(key.spiffe_id(), &id);
    // No concatenation ambiguity: ["ab"] is not ["a", "b"].
    assert_ne!(key, JwtSvidKey::new(id.clone(), &aud(&["ab"])));
    assert_ne!(key, JwtSvidKey::new(id, &aud(&["a"])));
    let other = SpiffeId::parse("spiffe://example.org/other").unwrap();
    assert_ne!(key, JwtSvidKey::new(other, &aud(&["a", "b"])));
}

#[tokio::test]
async fn one_token_serves_every_order_of_the_same_audiences() {
    let (_, minter, cache) = setup(10);
    let e = entry("e1");
    let first = token(&cache, &e, &["b", "a", "a"]).await;
    assert_eq!(token(&cache, &e, &["a", "b"]).await, first);
    assert_eq!(token(&cache, &e, &["b", "a"]).await, first);
    // The server is asked with the audiences as the workload sent them.
    assert_eq!(
        minter.calls(),
        [("e1".to_owned(), aud(&["b", "a", "a"]), false)]
    );
    // Another audience set, or another identity, is another token.
    assert_ne!(token(&cache, &e, &["a"]).await, first);
    assert_ne!(token(&cache, &entry("e2"), &["a", "b"]).await, first);
    assert_eq!(minter.calls().len(), 3);
    assert_eq!(cache.len(), 3);
}

#[tokio::test]
async fn a_token_is_reminted_once_half_of_its_lifetime_is_gone() {
    let (clock, minter, cache) = setup(10);
    let e = entry("e1");
    let first = token(&cache, &e, &["a"]).await;
    clock.advance(TTL / 2 - Duration::from_secs(1));
    assert_eq!(
        token(&cache, &e, &["a"]).await,
        first,
        "more than half left"
    );
    assert_eq!(minter.calls().len(), 1);

    clock.advance(Duration::from_secs(1));
    let second = token(&cache, &e, &["a"]).await;
    assert_ne!(second, first, "exactly half left: minted again");
    // The old token was still valid, so the minter was told a cached copy exists.
    assert!(minter.calls()[1].2);
    assert_eq!(
        token(&cache, &e, &["a"]).await,
        second,
        "the new one is cached"
    );
    assert_eq!(minter.calls().len(), 2);
}

#[tokio::test]
async fn the_cached_token_is_served_while_the_server_fails_until_it_expires() {
    let (clock, minter, cache) = setup(10);
    let e = entry("e1");
    let first = token(&cache, &e, &["a"]).await;

    minter.fail(true);
    clock.advance(TTL * 3 / 4);
    assert_eq!(token(&cache, &e, &["a"]).await, first, "stale but valid");
    clock.advance(TTL / 4 - Duration::from_secs(1));
    assert_eq!(token(&cache, &e, &["a"]).await, first, "one second left");
    assert_eq!(
        minter.calls().len(),
        3,
        "each request still tried the server"
    );

    clock.advance(Duration::from_secs(1));
    let error = cache.fetch_jwt_svid(&e, &aud(&["a"])).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "unable to renew JWT for \"spiffe://example.org/w/e1\" (err=server unreachable)"
    );
    assert!(!minter.calls().last().unwrap().2, "nothing usable cached");

    // Without any cached token the minter's error is passed on as is.
    let error = cache
        .fetch_jwt_svid(&entry("e2"), &aud(&["a"]))
        .await
        .unwrap_err();
    assert_eq!(error, JwtSvidError::Mint("server unreachable".into()));

    // Once the server is back a fresh token replaces the expired one.
    minter.fail(false);
    let fresh = token(&cache, &e, &["a"]).await;
    assert_ne!(fresh, first);
}

#[tokio::test]
async fn the_least_recently_used_token_is_evicted_beyond_the_bound() {
    let (_, minter, cache) = setup(2);
    let (a, b, c) = (entry("a"), entry("b"), entry("c"));
    let token_a = token(&cache, &a, &["x"]).await;
    token(&cache, &b, &["x"]).await;
    // `a` is used again, so `b` is now the least recently used.
    assert_eq!(token(&cache, &a, &["x"]).await, token_a);
    token(&cache, &c, &["x"]).await;
    assert_eq!(cache.len(), 2);
    assert!(
        cache
            .get(&JwtSvidKey::new(b.spiffe_id.clone(), &aud(&["x"])))
            .is_none()
    );
    assert_eq!(token(&cache, &a, &["x"]).await, token_a, "a stayed cached");
    assert_eq!(minter.calls().len(), 3);

    // `b` is minted again on demand, evicting `c` (used before `a`).
    token(&cache, &b, &["x"]).await;
    assert_eq!(minter.calls().len(), 4);
    assert_eq!(cache.len(), 2);
    assert!(
        cache
            .get(&JwtSvidKey::new(c.spiffe_id.clone(), &aud(&["x"])))
            .is_none()
    );
}

#[test]
fn expiry_and_half_life_boundaries() {
    let t0 = spire_time::from_unix_seconds(1_767_225_600);
    let svid = JwtSvid {
        token: "t".into(),
        spiffe_id: SpiffeId::parse("spiffe://example.org/w").unwrap(),
        issued_at: t0,
        expires_at: t0 + Duration::from_secs(100),
    };
    assert!(!svid.expires_soon(t0 + Duration::from_secs(49)));
    assert!(svid.expires_soon(t0 + Duration::from_secs(50)));
    assert!(!svid.is_expired(t0 + Duration::from_secs(99)));
    assert!(svid.is_expired(t0 + Duration::from_secs(100)));
    assert!(svid.expires_soon(t0 + Duration::from_secs(200)));
    assert!(
        !format!("{svid:?}").contains("\"t\""),
        "the token stays out of Debug"
    );
}

#[test]
fn the_kid_of_a_token_header_is_read() {
    // {"alg":"ES256","kid":"k1","typ":"JWT"}
    let token = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.e30.sig";
    assert_eq!(super::token_kid(token).as_deref(), Some("k1"));
    assert_eq!(super::token_kid("e30.e30.sig"), None);
    assert_eq!(super::token_kid("!!"), None);
}
