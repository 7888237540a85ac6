//! SPIRE's server rate limits (`ratelimit { attestation, signing }`): a token bucket per
//! method and source IP for callers on the TCP (mTLS) listener; the admin Unix socket is
//! never limited.
//!
//! | Method | Rate = burst | Counted in |
//! |---|---|---|
//! | `AttestAgent` (`attestation`) | 1/s | calls |
//! | `RenewAgent`, `NewJWTSVID` (`signing`) | 500/s | calls |
//! | `BatchNewX509SVID` (`signing`) | 500/s | CSRs |
//!
//! A call over the rate waits for its tokens instead of failing. It fails with
//! `ResourceExhausted` only when it asks for more than the burst (`rate (501) exceeds burst
//! size (500)`) or when the wait would pass its deadline (`grpc-timeout`):
//! `rate: Wait(n=1) would exceed context deadline`.
//!
//! Time is read from the injected [`SharedClock`]: a waiting call sleeps for the time the
//! clock says it needs and re-checks the clock whenever it wakes, or when [`RateLimits::wake`]
//! is called (tests that move a manual clock call it, so nothing sleeps in a test). A bucket
//! that has been idle long enough to be full again is indistinguishable from a new one, so
//! such buckets are dropped from time to time: memory follows the callers of the last minute,
//! not every address ever seen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use spire_time::SharedClock;
use tokio::sync::Notify;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};
use tonic::{Request, Status};

use crate::authz::Caller;
use crate::status::make_err;

/// Node attestations per second per IP (SPIRE's default), also the burst.
pub const ATTESTATION_PER_SECOND: u32 = 1;
/// Signing operations (CSRs, JWT-SVIDs, agent renewals) per second per IP, also the burst.
pub const SIGNING_PER_SECOND: u32 = 500;

/// How often idle buckets are looked for (clock time).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A rate-limited method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limited {
    /// `Agent.AttestAgent` (the `attestation` limit).
    AttestAgent,
    /// `Agent.RenewAgent` (the `signing` limit).
    RenewAgent,
    /// `SVID.BatchNewX509SVID`, counted in CSRs (the `signing` limit).
    BatchNewX509Svid,
    /// `SVID.NewJWTSVID` (the `signing` limit).
    NewJwtSvid,
}

/// The server's rate limiters. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RateLimits {
    attestation: bool,
    signing: bool,
    clock: SharedClock,
    state: Mutex<State>,
    moved: Notify,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<(Limited, IpAddr), Bucket>,
    last_sweep: SystemTime,
}

/// Tokens as of `at`; negative when calls are waiting for tokens already promised to them.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: SystemTime,
}

/// Tokens taken for a call that is still waiting: given back if the call goes away first.
struct Reservation<'a> {
    limits: &'a RateLimits,
    key: (Limited, IpAddr),
    count: u32,
    done: bool,
}

// === impl Limited ===

impl Limited {
    /// Tokens per second, which is also the burst.
    pub fn rate(self) -> u32 {
        match self {
            Self::AttestAgent => ATTESTATION_PER_SECOND,
            Self::RenewAgent | Self::BatchNewX509Svid | Self::NewJwtSvid => SIGNING_PER_SECOND,
        }
    }

    /// What SPIRE's handler says before the limiter's reason when it refuses a call.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::AttestAgent => "rejecting request due to attest agent rate limiting",
            Self::RenewAgent => "rejecting request due to renew agent rate limiting",
            Self::BatchNewX509Svid => "rejecting request due to certificate signing rate limiting",
            Self::NewJwtSvid => "rejecting request due to JWT signing request rate limiting",
        }
    }
}

// === impl Bucket ===

impl Bucket {
    /// Refills for the time since `at` (a clock that went back refills nothing).
    fn refill(&mut self, now: SystemTime, rate: f64) {
        if let Ok(elapsed) = now.duration_since(self.at) {
            self.tokens = (self.tokens + elapsed.as_secs_f64() * rate).min(rate);
            self.at = now;
        }
    }
}

// === impl RateLimits ===

impl RateLimits {
    /// Limits reading `clock`; `attestation` and `signing` as in `ratelimit { }`.
    pub fn new(clock: SharedClock, attestation: bool, signing: bool) -> Self {
        let now = clock.now();
        Self {
            attestation,
            signing,
            clock,
            state: Mutex::new(State {
                buckets: HashMap::new(),
                last_sweep: now,
            }),
            moved: Notify::new(),
        }
    }

    /// Whether `method` is limited at all.
    pub fn enabled(&self, method: Limited) -> bool {
        match method {
            Limited::AttestAgent => self.attestation,
            _ => self.signing,
        }
    }

    /// Waits until `request`'s caller may make `count` operations of `method`. Callers on
    /// the Unix socket (or without a TCP peer address) pass at once. A refusal carries
    /// SPIRE's message: the method's [`Limited::refusal`], `: `, the limiter's reason.
    pub async fn admit<T>(
        &self,
        method: Limited,
        request: &Request<T>,
        count: usize,
    ) -> Result<(), Status> {
        if !self.enabled(method) {
            return Ok(());
        }
        let Some(ip) = tcp_peer(request) else {
            return Ok(());
        };
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        self.admit_ip(method, ip, count, deadline)
            .await
            .map_err(|e| make_err(e.code(), method.refusal(), Some(&e.message())))
    }

    /// Waits until `ip` may make `count` operations of `method`, failing when `count` exceeds
    /// the burst or the wait would be longer than `deadline` (the time the call has left).
    pub async fn admit_ip(
        &self,
        method: Limited,
        ip: IpAddr,
        count: usize,
        deadline: Option<Duration>,
    ) -> Result<(), Status> {
        if !self.enabled(method) || count == 0 {
            return Ok(());
        }
        let burst = method.rate();
        let count = match u32::try_from(count) {
            Ok(n) if n <= burst => n,
            _ => {
                return Err(Status::resource_exhausted(format!(
                    "rate ({count}) exceeds burst size ({burst})"
                )));
            }
        };
        let now = self.clock.now();
        let wait = self.reserve(method, ip, count, now);
        if wait.is_zero() {
            return Ok(());
        }
        let mut reservation = Reservation {
            limits: self,
            key: (method, ip),
            count,
            done: false,
        };
        if deadline.is_some_and(|d| wait > d) {
            return Err(Status::resource_exhausted(format!(
                "rate: Wait(n={count}) would exceed context deadline"
            )));
        }
        let ready_at = now + wait;
        loop {
            // Registered before the clock is read, so a wake between the two is not lost.
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let now = self.clock.now();
            let Ok(left) = ready_at.duration_since(now) else {
                break;
            };
            if left.is_zero() {
                break;
            }
            tokio::select! {
                () = moved => {}
                () = tokio::time::sleep(left) => {}
            }
        }
        reservation.done = true;
        Ok(())
    }

    /// Wakes every waiting call to look at the clock again (after a manual clock moved).
    pub fn wake(&self) {
        self.moved.notify_waiters();
    }

    /// How many per-IP buckets are kept now.
    pub fn tracked(&self) -> usize {
        self.lock().buckets.len()
    }

    /// Takes `count` tokens (possibly going into debt) and says how long the caller must wait
    /// for them.
    fn reserve(&self, method: Limited, ip: IpAddr, count: u32, now: SystemTime) -> Duration {
        let rate = f64::from(method.rate());
        let mut state = self.lock();
        state.sweep(now);
        let bucket = state.buckets.entry((method, ip)).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        bucket.refill(now, rate);
        bucket.tokens -= f64::from(count);
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }

    fn release(&self, key: (Limited, IpAddr), count: u32) {
        let rate = f64::from(key.0.rate());
        if let Some(bucket) = self.lock().buckets.get_mut(&key) {
            bucket.tokens = (bucket.tokens + f64::from(count)).min(rate);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl State ===

impl State {
    /// Drops the buckets that are full again at `now` (at most once per [`SWEEP_EVERY`]).
    fn sweep(&mut self, now: SystemTime) {
        if now.duration_since(self.last_sweep).unwrap_or_default() < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.buckets.retain(|(method, _), bucket| {
            let rate = f64::from(method.rate());
            let mut refilled = *bucket;
            refilled.refill(now, rate);
            refilled.tokens < rate
        });
    }
}

// === impl Reservation ===

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limits.release(self.key, self.count);
        }
    }
}

/// The caller's IP when it came over TCP; `None` on the Unix socket.
fn tcp_peer<T>(request: &Request<T>) -> Option<IpAddr> {
    let extensions = request.extensions();
    if extensions.get::<UdsConnectInfo>().is_some()
        || matches!(extensions.get::<Caller>(), Some(Caller::Local))
    {
        return None;
    }
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|tls| tls.get_ref().remote_addr())
        .or_else(|| {
            extensions
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
        })
        .map(|addr| addr.ip().to_canonical())
}

/// gRPC's `grpc-timeout`: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
