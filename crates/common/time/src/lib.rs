//! Wall time read through an injected [`Clock`], and the one rotation-time policy.
//!
//! Nothing in spire-rs calls `SystemTime::now` directly (`.clippy.toml` forbids it): certificate
//! lifetimes, CA rotation and expiry checks all read a `Clock`, so tests move time by hand.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall time.
    fn now(&self) -> SystemTime;

    /// The current wall time as whole seconds since the Unix epoch (how SPIRE stores times).
    fn unix_seconds(&self) -> i64 {
        to_unix_seconds(self.now())
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// A clock that stands still until a test moves it.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

// === impl SystemClock ===

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place wall time enters the program
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

// === impl ManualClock ===

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock frozen at a fixed, whole-second instant (2026-01-01T00:00:00Z) so that tests
    /// are repeatable.
    pub fn at_fixed_instant() -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock to `to` (forwards or backwards).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whole seconds since the Unix epoch; times before the epoch count as negative.
pub fn to_unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The instant `secs` seconds after the Unix epoch.
pub fn from_unix_seconds(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// When a credential valid over `[not_before, not_after]` should be replaced: at
/// `fraction` of its lifetime (SPIRE uses ½ for SVIDs, ½ to prepare and ⅚ to activate a CA),
/// but no later than `cap` before expiry when a cap is given.
pub fn refresh_at(
    not_before: SystemTime,
    not_after: SystemTime,
    fraction: (u32, u32),
    cap_before_expiry: Option<Duration>,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let (num, den) = fraction;
    let remaining_at_refresh = lifetime.saturating_sub(lifetime * num / den.max(1));
    let remaining = match cap_before_expiry {
        Some(cap) => remaining_at_refresh.min(cap),
        None => remaining_at_refresh,
    };
    not_after - remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_fixed_instant();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(90));
        assert_eq!(
            clock.now().duration_since(t0).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(clock.unix_seconds(), 1_767_225_690);
    }

    #[test]
    fn unix_seconds_round_trip_on_both_sides_of_the_epoch() {
        for s in [-86_400, -1, 0, 1, 1_767_225_600] {
            assert_eq!(to_unix_seconds(from_unix_seconds(s)), s);
        }
    }

    #[test]
    fn refresh_at_uses_the_fraction_and_the_cap() {
        let nb = from_unix_seconds(0);
        let day = Duration::from_secs(86_400);
        let na = nb + day;
        // ½ of 24h: 12h before expiry.
        assert_eq!(refresh_at(nb, na, (1, 2), None), nb + day / 2);
        // ⅚ of 24h: 4h before expiry.
        assert_eq!(refresh_at(nb, na, (5, 6), None), nb + day * 5 / 6);
        // SPIRE caps preparation at 30 days before expiry for long-lived CAs.
        let year = day * 365;
        let cap = day * 30;
        assert_eq!(
            refresh_at(nb, nb + year, (1, 2), Some(cap)),
            nb + year - cap
        );
    }
}
