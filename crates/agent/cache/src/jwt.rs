//! The agent's JWT-SVID cache (`jwt_svid_cache_max_size`): tokens the server minted for
//! workloads, keyed by SPIFFE ID and audience set.
//!
//! A cached token is handed out while more than half of its lifetime is left; after that a new
//! one is minted, and the old one is still served (until it expires) when minting fails, e.g.
//! while the server is unreachable. At most `max_size` tokens are kept, the least recently used
//! going first. The cache decides and remembers; minting is a [`JwtSvidMinter`] (the agent
//! manager, through `SVID.NewJWTSVID`). The Workload API sees the whole as a [`JwtSvidSource`].
//!
//! Choices: the refresh point is exactly half of the lifetime (SPIRE adds a ±10 % jitter,
//! which only spreads background rotations; tokens here are minted on demand); concurrent
//! requests for the same key that miss may each mint (as in SPIRE).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use spire_id::SpiffeId;
use spire_time::SharedClock;

use crate::Entry;

/// SPIRE's default `jwt_svid_cache_max_size`.
pub const DEFAULT_JWT_SVID_CACHE_MAX_SIZE: usize = 1000;

/// A JWT-SVID the server minted.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSvid {
    /// The compact JWS.
    pub token: String,
    /// Its subject (`sub`).
    pub spiffe_id: SpiffeId,
    /// `iat`.
    pub issued_at: SystemTime,
    /// `exp`.
    pub expires_at: SystemTime,
}

/// What a cached token is found under: a SPIFFE ID and its audiences, sorted and without
/// duplicates (a request for `[b, a, a]` shares the token of `[a, b]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JwtSvidKey {
    spiffe_id: SpiffeId,
    audience: Vec<String>,
}

/// Why no JWT-SVID could be handed out. The Workload API sends `could not fetch JWT-SVID: `
/// followed by this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidError {
    /// Minting failed and nothing usable is cached.
    #[error("{0}")]
    Mint(String),
    /// Minting failed and the cached token has expired (SPIRE's wording).
    #[error("unable to renew JWT for \"{spiffe_id}\" (err={reason})")]
    Expired {
        /// The token's subject.
        spiffe_id: SpiffeId,
        /// Why minting failed.
        reason: String,
    },
    /// This agent has no way to mint JWT-SVIDs.
    #[error("JWT-SVIDs are not available on this agent")]
    Unavailable,
}

/// Mints JWT-SVIDs: the agent manager asks its server; tests fake it.
#[async_trait]
pub trait JwtSvidMinter: Send + Sync + fmt::Debug {
    /// A new JWT-SVID for `entry` (minted by entry ID) with `audience`. `cached` is true when
    /// an unexpired token for the same key is held, so a failure is not fatal (SPIRE gives the
    /// call a shorter timeout then, `experimental.jwt_svid_cache_hit_timeout`).
    async fn mint_jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
        cached: bool,
    ) -> Result<JwtSvid, JwtSvidError>;
}

/// Where the Workload API gets JWT-SVIDs from.
#[async_trait]
pub trait JwtSvidSource: Send + Sync + fmt::Debug {
    /// A JWT-SVID for `entry` with `audience` (non-empty), cached or newly minted.
    async fn fetch_jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
    ) -> Result<Arc<JwtSvid>, JwtSvidError>;
}

/// The cache in front of a [`JwtSvidMinter`]; see the module documentation.
#[derive(Debug)]
pub struct JwtSvidCache {
    minter: Arc<dyn JwtSvidMinter>,
    clock: SharedClock,
    lru: Mutex<Lru>,
}

/// Tokens by key with their last use, and keys by last use (oldest first).
#[derive(Debug)]
struct Lru {
    max_size: usize,
    tick: u64,
    slots: HashMap<JwtSvidKey, (Arc<JwtSvid>, u64)>,
    by_use: BTreeMap<u64, JwtSvidKey>,
}

// === impl JwtSvid ===

impl JwtSvid {
    /// Due for replacement at `now`: expired, or at most half of its lifetime left.
    pub fn expires_soon(&self, now: SystemTime) -> bool {
        let Ok(remaining) = self.expires_at.duration_since(now) else {
            return true;
        };
        let lifetime = self
            .expires_at
            .duration_since(self.issued_at)
            .unwrap_or_default();
        remaining <= lifetime / 2
    }

    /// Expired at `now` (`exp` reached).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for JwtSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential: never in logs.
        f.debug_struct("JwtSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

// === impl JwtSvidKey ===

impl JwtSvidKey {
    /// The key of `spiffe_id` with `audience` in any order, duplicates allowed.
    pub fn new(spiffe_id: SpiffeId, audience: &[String]) -> Self {
        let mut audience = audience.to_vec();
        audience.sort_unstable();
        audience.dedup();
        Self {
            spiffe_id,
            audience,
        }
    }

    /// The SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The audiences, sorted and deduplicated.
    pub fn audience(&self) -> &[String] {
        &self.audience
    }
}

// === impl JwtSvidCache ===

impl JwtSvidCache {
    /// An empty cache of at most `max_size` tokens (at least one), minting through `minter`
    /// and reading time from `clock`.
    pub fn new(max_size: usize, minter: Arc<dyn JwtSvidMinter>, clock: SharedClock) -> Self {
        Self {
            minter,
            clock,
            lru: Mutex::new(Lru {
                max_size: max_size.max(1),
                tick: 0,
                slots: HashMap::new(),
                by_use: BTreeMap::new(),
            }),
        }
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// True when no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached token whose `kid` is in `tainted` (signed by a tainted JWT key), so
    /// the next fetch mints a new one; returns how many were dropped.
    pub fn drop_tainted(&self, tainted: &std::collections::HashSet<String>) -> usize {
        if tainted.is_empty() {
            return 0;
        }
        let mut lru = self.lock();
        let doomed: Vec<JwtSvidKey> = lru
            .slots
            .iter()
            .filter(|(_, (svid, _))| token_kid(&svid.token).is_some_and(|k| tainted.contains(&k)))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &doomed {
            if let Some((_, used)) = lru.slots.remove(key) {
                lru.by_use.remove(&used);
            }
        }
        doomed.len()
    }

    /// The cached token of `key`, if any, whatever its age (counts as a use).
    pub fn get(&self, key: &JwtSvidKey) -> Option<Arc<JwtSvid>> {
        self.lock().get(key)
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl JwtSvidSource for JwtSvidCache {
    async fn fetch_jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
    ) -> Result<Arc<JwtSvid>, JwtSvidError> {
        let key = JwtSvidKey::new(entry.spiffe_id.clone(), audience);
        let now = self.clock.now();
        let cached = self.get(&key);
        if let Some(svid) = cached.as_ref().filter(|s| !s.expires_soon(now)) {
            return Ok(Arc::clone(svid));
        }
        let usable = cached.as_ref().is_some_and(|s| !s.is_expired(now));
        match self.minter.mint_jwt_svid(entry, audience, usable).await {
            Ok(svid) => {
                let svid = Arc::new(svid);
                self.lock().insert(key, Arc::clone(&svid));
                Ok(svid)
            }
            Err(error) => match cached {
                None => Err(error),
                Some(svid) if !usable => Err(JwtSvidError::Expired {
                    spiffe_id: svid.spiffe_id.clone(),
                    reason: error.to_string(),
                }),
                Some(svid) => {
                    tracing::warn!(
                        spiffe_id = %svid.spiffe_id,
                        %error,
                        "Unable to renew JWT; returning cached copy"
                    );
                    Ok(svid)
                }
            },
        }
    }
}

/// The `kid` of a compact JWS header, if it has one.
fn token_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let json = base64url_decode(header)?;
    let text = std::str::from_utf8(&json).ok()?;
    // The header is small and ours: find `"kid":"…"` without a JSON dependency.
    let rest = &text[text.find("\"kid\"")? + 5..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

// === impl Lru ===

impl Lru {
    fn get(&mut self, key: &JwtSvidKey) -> Option<Arc<JwtSvid>> {
        self.tick += 1;
        let tick = self.tick;
        let (svid, used) = self.slots.get_mut(key)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, key.clone());
        Some(Arc::clone(svid))
    }

    fn insert(&mut self, key: JwtSvidKey, svid: Arc<JwtSvid>) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, used)) = self.slots.insert(key.clone(), (svid, tick)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(tick, key);
        while self.slots.len() > self.max_size {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.slots.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests;
