//! The check schedule on tokio's paused clock: 1 s until every subsystem passed, then 60 s;
//! timeouts; publication per result; shutdown. No real time passes.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use spire_health::{Checker, Health};
use support::Fake;
use tokio::sync::oneshot;

fn gaps(fake: &Fake) -> Vec<u64> {
    fake.times()
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect()
}

fn start(
    checkers: Vec<Arc<dyn Checker>>,
    health: impl FnOnce(Health) -> Health,
) -> oneshot::Sender<()> {
    let health = health(Health::new(checkers).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(health.run(async move {
        let _ = stopped.await;
    }));
    stop
}

#[tokio::test(start_paused = true)]
async fn every_second_until_all_pass_then_every_minute_even_when_failing_again() {
    // Fails 3 times, passes twice, fails twice, then passes.
    let fake = Arc::new(Fake::scripted(
        "a",
        &[false, false, false, true, true, false, false],
        true,
    ));
    let _stop = start(vec![fake.clone()], |h| h);
    fake.wait_calls(9).await;
    assert_eq!(
        gaps(&fake),
        [1_000, 1_000, 1_000, 60_000, 60_000, 60_000, 60_000, 60_000],
        "1 s while never all-passing; 60 s from the first all-passing round on (SPIRE keeps \
         the steady interval after a later failure)"
    );
}

#[tokio::test(start_paused = true)]
async fn steady_only_once_every_subsystem_passed_in_one_round() {
    let a = Arc::new(Fake::new("a", true));
    let b = Arc::new(Fake::scripted("b", &[false, false], true));
    let _stop = start(vec![a.clone(), b.clone()], |h| h);
    a.wait_calls(5).await;
    b.wait_calls(5).await;
    assert_eq!(gaps(&a), [1_000, 1_000, 60_000, 60_000]);
    assert_eq!(gaps(&b), [1_000, 1_000, 60_000, 60_000]);
}

#[tokio::test(start_paused = true)]
async fn the_first_round_runs_at_once_and_publishes_each_result_as_it_arrives() {
    let fast = Arc::new(Fake::new("fast", true));
    let slow = Arc::new(Fake::gated("slow"));
    let health = Health::new(vec![fast.clone(), slow.clone()]).unwrap();
    let mut reports = health.subscribe();
    let before = reports.borrow_and_update().clone();
    assert!(before.state("fast").is_none() && before.state("slow").is_none());
    assert!(
        before.live() && !before.ready(),
        "unchecked: live, not ready"
    );
    let started = tokio::time::Instant::now();
    tokio::spawn(health.run(std::future::pending()));

    let report = reports
        .wait_for(|r| r.state("fast").is_some())
        .await
        .unwrap()
        .clone();
    assert_eq!(fast.times(), [started], "the first check runs at once");
    assert!(report.state("slow").is_none(), "slow is still running");
    assert!(!report.ready());

    slow.release();
    let report = reports.wait_for(|r| r.checked()).await.unwrap().clone();
    assert!(report.ready() && report.passing());
}

#[tokio::test(start_paused = true)]
async fn a_check_that_never_answers_is_failed_after_the_timeout() {
    let stuck = Arc::new(Fake::hanging("stuck"));
    let health = Health::new(vec![stuck.clone()])
        .unwrap()
        .with_check_timeout(Duration::from_secs(5));
    let mut reports = health.subscribe();
    let started = tokio::time::Instant::now();
    tokio::spawn(health.run(std::future::pending()));
    let report = reports.wait_for(|r| r.checked()).await.unwrap().clone();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let state = report.state("stuck").unwrap();
    assert!(!state.live && !state.ready);
    assert_eq!(
        state.ready_details["check_err"],
        "check did not finish within 5s"
    );
    assert!(!report.live());
    // The next round starts 1 s after the timed-out one.
    stuck.wait_calls(2).await;
    assert_eq!(gaps(&stuck), [6_000]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_runner_and_no_check_runs_after_it() {
    let fake = Arc::new(Fake::new("a", false));
    let health = Health::new(vec![fake.clone()]).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(health.run(async move {
        let _ = stopped.await;
    }));
    fake.wait_calls(3).await;
    stop.send(()).unwrap();
    runner.await.unwrap();
    let calls = fake.calls();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.calls(), calls);
}

#[tokio::test]
async fn duplicate_names_are_refused_with_spire_s_message() {
    let error = Health::new(vec![
        Arc::new(Fake::new("server.ca", true)),
        Arc::new(Fake::new("server.ca", true)),
    ])
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "check \"server.ca\" has already been added"
    );
}
