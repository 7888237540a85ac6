//! When the refresher polls. SPIRE's schedule: four attempts per refresh hint, the hint
//! being the bundle's `spiffe_refresh_hint`, or a tenth of its shortest X.509 authority
//! lifetime, never under a minute; a minute while no bundle is known. On top of it,
//! spire-rs retries a failed poll sooner (5 s, doubling) but never later than that schedule,
//! so a transient failure heals quickly and a remote that stays down is polled at SPIRE's
//! rate.

use std::time::Duration;

use spire_svid::Bundle;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The smallest refresh hint honoured (SPIRE's `MinimumRefreshHint`).
pub const MINIMUM_REFRESH_HINT: Duration = Duration::from_secs(60);

/// The first retry delay after a failed poll; it doubles with each further failure.
pub const RETRY_BASE: Duration = Duration::from_secs(5);

/// Polls per refresh hint, so a few failures in a row do not miss a rotation.
const ATTEMPTS_PER_REFRESH_HINT: u32 = 4;

/// The shortest X.509 authority lifetime is divided by this for bundles without a hint.
const LIFETIME_FRACTION: u32 = 10;

/// SPIRE's refresh hint for `bundle` (`CalculateRefreshHint`).
pub fn refresh_hint(bundle: &Bundle) -> Duration {
    if bundle.refresh_hint > 0 {
        return Duration::from_secs(bundle.refresh_hint.unsigned_abs()).max(MINIMUM_REFRESH_HINT);
    }
    let shortest = bundle
        .x509_authorities
        .iter()
        .filter_map(|authority| {
            let (_, cert) = X509Certificate::from_der(&authority.asn1).ok()?;
            let validity = cert.validity();
            let seconds = validity.not_after.timestamp() - validity.not_before.timestamp();
            Some(Duration::from_secs(seconds.max(0).unsigned_abs()))
        })
        .min();
    shortest
        .map_or(Duration::ZERO, |lifetime| lifetime / LIFETIME_FRACTION)
        .max(MINIMUM_REFRESH_HINT)
}

/// The delay before the next poll. `freshest` is the bundle known after the last poll (the
/// fetched one, or the stored one when the fetch failed); `failures` counts the polls that
/// failed in a row, 0 when the last one succeeded.
pub fn next_poll(freshest: Option<&Bundle>, failures: u32) -> Duration {
    let regular = match freshest {
        Some(bundle) => refresh_hint(bundle) / ATTEMPTS_PER_REFRESH_HINT,
        // Nothing to go by (e.g. https_spiffe waiting to be bootstrapped): SPIRE retries
        // every minute so a `bundle set` is picked up soon.
        None => MINIMUM_REFRESH_HINT,
    };
    if failures == 0 {
        return regular;
    }
    let doublings = (failures - 1).min(16);
    RETRY_BASE.saturating_mul(1 << doublings).min(regular)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_id::TrustDomain;
    use spire_svid::X509Authority;

    fn bundle(hint: i64, lifetimes: &[u64]) -> Bundle {
        let mut bundle = Bundle::new(TrustDomain::new("example.org").unwrap());
        bundle.refresh_hint = hint;
        for &lifetime in lifetimes {
            let mut params = rcgen::CertificateParams::default();
            params.not_before = rcgen::date_time_ymd(2026, 1, 1);
            params.not_after = params.not_before + Duration::from_secs(lifetime);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            bundle.x509_authorities.push(X509Authority {
                asn1: cert.der().to_vec(),
                tainted: false,
            });
        }
        bundle
    }

    #[test]
    fn the_hint_comes_from_the_document_then_the_shortest_lifetime() {
        assert_eq!(
            refresh_hint(&bundle(300, &[3600])),
            Duration::from_secs(300)
        );
        // Below the minimum: a minute.
        assert_eq!(refresh_hint(&bundle(5, &[])), MINIMUM_REFRESH_HINT);
        // No hint: a tenth of the shortest CA lifetime (1 h of 1 h, 2 h, 3 h).
        assert_eq!(
            refresh_hint(&bundle(0, &[7200, 3600, 10800])),
            Duration::from_secs(360)
        );
        // No hint and no authorities: a minute.
        assert_eq!(refresh_hint(&bundle(0, &[])), MINIMUM_REFRESH_HINT);
    }

    #[test]
    fn polls_four_times_per_hint_and_every_minute_without_a_bundle() {
        assert_eq!(
            next_poll(Some(&bundle(300, &[])), 0),
            Duration::from_secs(75)
        );
        assert_eq!(next_poll(None, 0), MINIMUM_REFRESH_HINT);
    }

    #[test]
    fn failures_retry_sooner_and_back_off_up_to_the_schedule() {
        let known = bundle(300, &[]);
        let delays: Vec<u64> = (1..=7)
            .map(|failures| next_poll(Some(&known), failures).as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 75, 75, 75]);
        assert_eq!(next_poll(None, 1), RETRY_BASE);
        assert_eq!(next_poll(None, u32::MAX), MINIMUM_REFRESH_HINT);
    }
}
