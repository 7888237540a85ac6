#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;

use spire_time::ManualClock;
use tonic::Code;

use super::*;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn setup(attestation: bool, signing: bool) -> (ManualClock, RateLimits) {
    let clock = ManualClock::at_fixed_instant();
    let limits = RateLimits::new(Arc::new(clock.clone()), attestation, signing);
    (clock, limits)
}

/// Polls `fut` exactly once: its output if it is ready now, `None` if it would wait.
async fn poll_once<F: Future>(fut: Pin<&mut F>) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = std::future::ready(()) => None,
    }
}

fn from_tcp<T>(message: T, ip: IpAddr) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(SocketAddr::new(ip, 40_000)),
    });
    request
}

fn from_unix<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(UdsConnectInfo {
        peer_addr: None,
        peer_cred: None,
    });
    request
}

#[tokio::test]
async fn a_second_attestation_waits_for_the_clock_while_another_address_proceeds() {
    let (clock, limits) = setup(true, true);
    limits
        .admit(Limited::AttestAgent, &from_tcp((), A), 1)
        .await
        .unwrap();

    let request = from_tcp((), A);
    let mut second = pin!(limits.admit(Limited::AttestAgent, &request, 1));
    assert!(poll_once(second.as_mut()).await.is_none(), "did not wait");

    let other = from_tcp((), B);
    let proceeded = poll_once(pin!(limits.admit(Limited::AttestAgent, &other, 1))).await;
    assert!(matches!(proceeded, Some(Ok(()))), "{proceeded:?}");

    clock.advance(Duration::from_millis(999));
    limits.wake();
    assert!(
        poll_once(second.as_mut()).await.is_none(),
        "999 ms are not 1 s"
    );

    clock.advance(Duration::from_millis(1));
    limits.wake();
    let done = poll_once(second.as_mut()).await;
    assert!(matches!(done, Some(Ok(()))), "{done:?}");
}

#[tokio::test]
async fn more_csrs_than_the_burst_fail_with_spires_message() {
    let (_clock, limits) = setup(true, true);
    let err = limits
        .admit(Limited::BatchNewX509Svid, &from_tcp((), A), 501)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        "rejecting request due to certificate signing rate limiting: \
         rate (501) exceeds burst size (500)"
    );
    // Exactly the burst is fine, and the refused call took no tokens.
    limits
        .admit(Limited::BatchNewX509Svid, &from_tcp((), A), 500)
        .await
        .unwrap();
    let err = limits
        .admit(Limited::AttestAgent, &from_tcp((), A), 2)
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "rejecting request due to attest agent rate limiting: rate (2) exceeds burst size (1)"
    );
    let err = limits
        .admit_ip(Limited::NewJwtSvid, A, 501, None)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "rate (501) exceeds burst size (500)");
}

#[tokio::test]
async fn csrs_are_counted_per_item_and_each_signing_method_has_its_own_bucket() {
    let (clock, limits) = setup(true, true);
    let call = |method, n| limits.admit_ip(method, A, n, None);
    assert!(
        poll_once(pin!(call(Limited::BatchNewX509Svid, 300)))
            .await
            .is_some()
    );
    assert!(
        poll_once(pin!(call(Limited::BatchNewX509Svid, 200)))
            .await
            .is_some()
    );
    assert!(
        poll_once(pin!(call(Limited::NewJwtSvid, 500)))
            .await
            .is_some()
    );
    assert!(
        poll_once(pin!(call(Limited::RenewAgent, 1)))
            .await
            .is_some()
    );
    let mut next = pin!(call(Limited::BatchNewX509Svid, 50));
    assert!(poll_once(next.as_mut()).await.is_none());
    // 50 CSRs at 500/s: 100 ms.
    clock.advance(Duration::from_millis(100));
    limits.wake();
    assert!(matches!(poll_once(next.as_mut()).await, Some(Ok(()))));
}

#[tokio::test]
async fn the_unix_socket_is_never_limited() {
    let (_clock, limits) = setup(true, true);
    for _ in 0..10 {
        let ready = poll_once(pin!(limits.admit(Limited::AttestAgent, &from_unix(()), 1))).await;
        assert!(matches!(ready, Some(Ok(()))), "{ready:?}");
    }
    let request = from_unix(());
    let big = poll_once(pin!(limits.admit(
        Limited::BatchNewX509Svid,
        &request,
        5000
    )))
    .await;
    assert!(matches!(big, Some(Ok(()))), "{big:?}");
    // A transport that classified the caller as local is exempt as well.
    let mut request = from_tcp((), A);
    request.extensions_mut().insert(Caller::Local);
    for _ in 0..3 {
        limits
            .admit(Limited::AttestAgent, &request, 1)
            .await
            .unwrap();
    }
    assert_eq!(limits.tracked(), 0);
}

#[tokio::test]
async fn signing_false_disables_only_the_signing_limit() {
    let (_clock, limits) = setup(true, false);
    for method in [
        Limited::BatchNewX509Svid,
        Limited::NewJwtSvid,
        Limited::RenewAgent,
    ] {
        for _ in 0..3 {
            let ready = poll_once(pin!(limits.admit_ip(method, A, 501, None))).await;
            assert!(matches!(ready, Some(Ok(()))), "{method:?}: {ready:?}");
        }
    }
    limits
        .admit_ip(Limited::AttestAgent, A, 1, None)
        .await
        .unwrap();
    assert!(
        poll_once(pin!(limits.admit_ip(Limited::AttestAgent, A, 1, None)))
            .await
            .is_none()
    );

    let (_clock, limits) = setup(false, true);
    for _ in 0..3 {
        let ready = poll_once(pin!(limits.admit_ip(Limited::AttestAgent, A, 1, None))).await;
        assert!(matches!(ready, Some(Ok(()))), "{ready:?}");
    }
}

#[tokio::test]
async fn a_wait_past_the_deadline_fails_at_once() {
    let (clock, limits) = setup(true, true);
    limits
        .admit_ip(Limited::AttestAgent, A, 1, None)
        .await
        .unwrap();
    let mut request = from_tcp((), A);
    request
        .metadata_mut()
        .insert("grpc-timeout", "500m".parse().unwrap());
    let err = limits
        .admit(Limited::AttestAgent, &request, 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        "rejecting request due to attest agent rate limiting: \
         rate: Wait(n=1) would exceed context deadline"
    );
    // The refused call gave its token back: the next one waits 1 s, not 2 s.
    let mut request = from_tcp((), A);
    request
        .metadata_mut()
        .insert("grpc-timeout", "2S".parse().unwrap());
    let mut next = pin!(limits.admit(Limited::AttestAgent, &request, 1));
    assert!(poll_once(next.as_mut()).await.is_none());
    clock.advance(Duration::from_secs(1));
    limits.wake();
    assert!(matches!(poll_once(next.as_mut()).await, Some(Ok(()))));
}

#[tokio::test]
async fn a_caller_that_goes_away_while_waiting_gives_its_tokens_back() {
    let (clock, limits) = setup(true, true);
    limits
        .admit_ip(Limited::AttestAgent, A, 1, None)
        .await
        .unwrap();
    {
        let abandoned = pin!(limits.admit_ip(Limited::AttestAgent, A, 1, None));
        assert!(poll_once(abandoned).await.is_none());
    }
    let mut next = pin!(limits.admit_ip(Limited::AttestAgent, A, 1, None));
    assert!(poll_once(next.as_mut()).await.is_none());
    clock.advance(Duration::from_secs(1));
    limits.wake();
    assert!(matches!(poll_once(next.as_mut()).await, Some(Ok(()))));
}

#[tokio::test]
async fn idle_buckets_are_dropped() {
    let (clock, limits) = setup(true, true);
    for i in 0..200u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 0, i));
        limits
            .admit_ip(Limited::BatchNewX509Svid, ip, 10, None)
            .await
            .unwrap();
    }
    assert_eq!(limits.tracked(), 200);
    clock.advance(Duration::from_secs(61));
    limits
        .admit_ip(Limited::AttestAgent, A, 1, None)
        .await
        .unwrap();
    assert_eq!(limits.tracked(), 1);
}

#[test]
fn grpc_timeouts_parse() {
    assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
    assert_eq!(
        parse_grpc_timeout("1500m"),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_grpc_timeout("3H"), Some(Duration::from_secs(10_800)));
    assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
    for bad in ["", "S", "123456789S", "1x", "-1S", "1é"] {
        assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
    }
}
