//! When a cached SVID is due for rotation: SPIRE's half-life rule with a ±10 % jitter that is
//! fixed per SVID and derived from its leaf certificate (deterministic, no RNG).

use std::time::SystemTime;

use crate::IssuedSvid;

/// Jitter range in per-mille of the half lifetime: ±10 %.
const JITTER_PERMILLE: u64 = 100;

/// The rotation deadline of `svid`: `remaining ≤ half · (1 + j)` with `j` in [-0.1, 0.1], i.e.
/// between 45 % and 55 % of the lifetime after `not_before`.
pub(crate) fn deadline(svid: &IssuedSvid) -> SystemTime {
    let leaf = svid.chain.first().map(Vec::as_slice).unwrap_or_default();
    deadline_with_jitter(svid.not_before, svid.not_after, jitter_permille(leaf))
}

/// A jitter in per-mille of the half lifetime, in `-100..=100`, from a stable hash of `leaf`.
pub(crate) fn jitter_permille(leaf: &[u8]) -> i64 {
    let span = 2 * JITTER_PERMILLE + 1;
    // The cast cannot truncate: the value is below 201.
    (fnv1a(leaf) % span) as i64 - JITTER_PERMILLE as i64
}

/// Rotation at `(1000 − permille) / 2000` of the lifetime: `permille = 100` rotates when 55 %
/// of the half-life remains above half, i.e. at 45 % of the lifetime.
pub(crate) fn deadline_with_jitter(
    not_before: SystemTime,
    not_after: SystemTime,
    permille: i64,
) -> SystemTime {
    let permille = permille.clamp(-(JITTER_PERMILLE as i64), JITTER_PERMILLE as i64);
    // In 900..=1100 after the clamp.
    let num = u32::try_from(1000 - permille).unwrap_or(1000);
    if not_after <= not_before {
        return not_after;
    }
    spire_time::refresh_at(not_before, not_after, (num, 2000), None)
}

/// FNV-1a (64 bit): stable across builds and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn deadline_stays_within_45_to_55_percent() {
        let nb = spire_time::from_unix_seconds(1_767_225_600);
        let life = Duration::from_secs(3600);
        let na = nb + life;
        for p in [-100, -37, 0, 42, 100] {
            let at = deadline_with_jitter(nb, na, p).duration_since(nb).unwrap();
            assert!(
                at >= life * 45 / 100 && at <= life * 55 / 100,
                "{p}: {at:?}"
            );
        }
        assert_eq!(deadline_with_jitter(nb, na, 0), nb + life / 2);
        assert_eq!(deadline_with_jitter(nb, na, 100), nb + life * 45 / 100);
        assert_eq!(deadline_with_jitter(nb, na, -100), nb + life * 55 / 100);
    }

    #[test]
    fn jitter_is_deterministic_and_spread() {
        assert_eq!(jitter_permille(b"leaf"), jitter_permille(b"leaf"));
        let values: std::collections::BTreeSet<i64> = (0u32..200)
            .map(|i| jitter_permille(&i.to_be_bytes()))
            .collect();
        assert!(values.iter().all(|v| (-100..=100).contains(v)));
        assert!(values.len() > 50, "jitter barely varies: {values:?}");
    }

    #[test]
    fn inverted_validity_rotates_at_expiry() {
        let nb = spire_time::from_unix_seconds(100);
        let na = spire_time::from_unix_seconds(50);
        assert_eq!(deadline_with_jitter(nb, na, 0), na);
    }
}
