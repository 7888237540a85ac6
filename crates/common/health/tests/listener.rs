//! The HTTP listener over real TCP: status codes, bodies and headers as SPIRE's, the cache
//! (probes never run checks), and the bounds a flood runs into.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spire_health::{Checker, Error, Health, HealthConfig, HealthLimits, HealthListener, Report};
use support::Fake;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// Guards against a hang only; no assertion depends on it.
const HANG_GUARD: Duration = Duration::from_secs(30);

struct Running {
    addr: SocketAddr,
    reports: watch::Receiver<Arc<Report>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn checked(&mut self) {
        self.reports.wait_for(|r| r.checked()).await.unwrap();
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap();
    }
}

fn config(limits: HealthLimits) -> HealthConfig {
    HealthConfig {
        listener_enabled: true,
        bind_address: "127.0.0.1".into(),
        bind_port: 0,
        limits,
        ..HealthConfig::default()
    }
}

/// Serves `checkers` on a free port; checks run once (the next round is an hour away).
async fn start(checkers: Vec<Arc<dyn Checker>>, limits: HealthLimits) -> Running {
    let listener = HealthListener::bind(&config(limits)).await.unwrap();
    let addr = listener.local_addr();
    let health = Health::new(checkers)
        .unwrap()
        .with_intervals(Duration::from_secs(3600), Duration::from_secs(3600));
    let reports = health.subscribe();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(health.serve(Some(listener), async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        reports,
        stop: Some(stop),
        task,
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` as is and reads until the server closes the connection. A reset (the
/// server closed without reading what was sent) reads as whatever arrived before it.
async fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    if let Err(error) = tcp.write_all(request).await {
        assert!(is_reset(&error), "{error}");
        return Vec::new();
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    if let Err(error) = read {
        assert!(is_reset(&error), "{error}");
    }
    out
}

fn is_reset(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

fn parse(bytes: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// What kubelet's HTTP prober sends.
async fn probe(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    parse(&raw(addr, request.as_bytes()).await)
}

#[tokio::test]
async fn healthy_subsystems_get_200_with_a_json_object_per_subsystem() {
    let mut running = start(
        vec![
            Arc::new(Fake::new("server.ca", true)),
            Arc::new(Fake::new("catalog.datastore", true)),
        ],
        HealthLimits::default(),
    )
    .await;
    running.checked().await;
    for path in ["/live", "/ready", "/ready?verbose=1"] {
        let answer = probe(running.addr, "GET", path).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.body, "{\"catalog.datastore\":{},\"server.ca\":{}}\n");
        let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert!(json.is_object());
    }
    running.stop().await;
}

#[tokio::test]
async fn one_failing_subsystem_gets_500_and_its_details() {
    let mut running = start(
        vec![
            Arc::new(Fake::new("good", true)),
            Arc::new(Fake::new("bad", false)),
        ],
        HealthLimits::default(),
    )
    .await;
    running.checked().await;
    for path in ["/live", "/ready"] {
        let answer = probe(running.addr, "GET", path).await;
        assert_eq!(answer.status, 500, "{path}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.body,
            "{\"bad\":{\"fake_err\":\"bad is broken\"},\"good\":{}}\n"
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn before_the_first_check_completes_live_is_200_and_ready_500() {
    let slow = Arc::new(Fake::gated("agent"));
    let mut running = start(vec![slow.clone()], HealthLimits::default()).await;
    let live = probe(running.addr, "GET", "/live").await;
    assert_eq!(
        (live.status, live.body.as_str()),
        (200, "{\"agent\":null}\n")
    );
    let ready = probe(running.addr, "GET", "/ready").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (500, "{\"agent\":null}\n")
    );

    slow.release();
    running.checked().await;
    assert_eq!(probe(running.addr, "GET", "/ready").await.status, 200);
    running.stop().await;
}

#[tokio::test]
async fn other_paths_get_go_s_404_and_any_method_is_answered() {
    let mut running = start(
        vec![Arc::new(Fake::new("a", true))],
        HealthLimits::default(),
    )
    .await;
    running.checked().await;
    for path in ["/", "/live/", "/readyz", "/metrics"] {
        let answer = probe(running.addr, "GET", path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.body, "404 page not found\n");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let post = probe(running.addr, "POST", "/ready").await;
    assert_eq!((post.status, post.body.as_str()), (200, "{\"a\":{}}\n"));
    running.stop().await;
}

#[tokio::test]
async fn probes_read_the_cache_and_never_run_a_check() {
    let fake = Arc::new(Fake::new("a", true));
    let mut running = start(vec![fake.clone()], HealthLimits::default()).await;
    running.checked().await;
    assert_eq!(fake.calls(), 1);
    // 200 probes, 32 at a time (below the connection limit).
    for batch in 0..200 / 32 + 1 {
        let probes: Vec<_> = (0..32)
            .map(|i| {
                let addr = running.addr;
                let path = if (batch + i) % 2 == 0 {
                    "/live"
                } else {
                    "/ready"
                };
                tokio::spawn(async move { probe(addr, "GET", path).await })
            })
            .collect();
        for probe in probes {
            assert_eq!(probe.await.unwrap().status, 200);
        }
    }
    assert_eq!(fake.calls(), 1, "200 probes ran no check");
    running.stop().await;
}

#[tokio::test]
async fn oversized_or_too_many_headers_get_431_and_the_listener_keeps_answering() {
    let mut running = start(
        vec![Arc::new(Fake::new("a", true))],
        HealthLimits::default(),
    )
    .await;
    running.checked().await;

    let big = format!(
        "GET /live HTTP/1.1\r\nHost: x\r\nX-Flood: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw(running.addr, big.as_bytes()).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(80)])
    );

    let mut many = String::from("GET /live HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(running.addr, many.as_bytes()).await;
    assert!(answer.starts_with(b"HTTP/1.1 431 "));

    assert_eq!(probe(running.addr, "GET", "/live").await.status, 200);
    running.stop().await;
}

#[tokio::test]
async fn http2_is_not_spoken_so_an_h2_flood_gets_an_http1_error_and_a_close() {
    let mut running = start(
        vec![Arc::new(Fake::new("a", true))],
        HealthLimits::default(),
    )
    .await;
    running.checked().await;
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A SETTINGS frame, then HEADERS frames with junk header blocks.
    flood.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    for stream in (1u32..200).step_by(2) {
        flood.extend_from_slice(&[0, 0, 16, 1, 4]);
        flood.extend_from_slice(&stream.to_be_bytes());
        flood.extend_from_slice(&[0x40; 16]);
    }
    let answer = raw(running.addr, &flood).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4") || answer.starts_with(b"HTTP/1.1 5"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(probe(running.addr, "GET", "/ready").await.status, 200);
    running.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once_and_slots_come_back() {
    let limits = HealthLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(600),
        connection_timeout: Duration::from_secs(600),
        ..HealthLimits::default()
    };
    let mut running = start(vec![Arc::new(Fake::new("a", true))], limits).await;
    running.checked().await;

    // Four slow clients hold every slot with an unfinished request head.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut tcp = TcpStream::connect(running.addr).await.unwrap();
        tcp.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(tcp);
    }
    // The fifth is accepted after them (accept order) and closed unanswered.
    for _ in 0..3 {
        let answer = raw(
            running.addr,
            b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }

    // One slow client leaves: its slot comes back once the server sees it go.
    drop(held.pop());
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let answer = raw(
                running.addr,
                b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            if !answer.is_empty() {
                assert!(answer.starts_with(b"HTTP/1.1 200 "));
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a slot is freed");
    running.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let limits = HealthLimits {
        header_read_timeout: Duration::from_millis(200),
        ..HealthLimits::default()
    };
    let mut running = start(vec![Arc::new(Fake::new("a", true))], limits).await;
    running.checked().await;
    let mut tcp = TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(b"GET /live HTTP/1.1\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes a connection that never finishes its request head")
        .ok();
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    running.stop().await;
}

#[tokio::test]
async fn a_connection_is_closed_at_its_time_limit_whatever_it_does() {
    let limits = HealthLimits {
        connection_timeout: Duration::from_millis(200),
        header_read_timeout: Duration::from_secs(600),
        ..HealthLimits::default()
    };
    let mut running = start(vec![Arc::new(Fake::new("a", true))], limits).await;
    running.checked().await;
    let mut tcp = TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(b"GET /live HTTP/1.1\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut out))
        .await
        .expect("the server closes the connection at its time limit")
        .ok();
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    running.stop().await;
}

#[tokio::test]
async fn stopping_closes_the_port() {
    let mut running = start(
        vec![Arc::new(Fake::new("a", true))],
        HealthLimits::default(),
    )
    .await;
    running.checked().await;
    let addr = running.addr;
    running.stop().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn the_convenience_serve_runs_checks_without_a_listener_when_disabled() {
    let fake = Arc::new(Fake::new("a", true));
    let (stop, stopped) = oneshot::channel::<()>();
    let config = HealthConfig::default(); // listener_enabled = false, port 80 never bound
    let checkers: Vec<Arc<dyn Checker>> = vec![fake.clone()];
    let task = tokio::spawn(async move {
        spire_health::serve(&config, checkers, async move {
            let _ = stopped.await;
        })
        .await
    });
    fake.wait_calls(1).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn binding_errors_are_reported() {
    let same = HealthConfig {
        ready_path: "/live".into(),
        ..config(HealthLimits::default())
    };
    assert!(matches!(
        HealthListener::bind(&same).await.unwrap_err(),
        Error::SamePath(p) if p == "/live"
    ));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = HealthConfig {
        bind_port: taken.local_addr().unwrap().port(),
        ..config(HealthLimits::default())
    };
    let error = HealthListener::bind(&busy).await.unwrap_err();
    assert!(matches!(error, Error::Bind { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("binding the health checks listener on 127.0.0.1:")
    );
}

#[tokio::test]
async fn localhost_binds_an_ipv4_loopback_address() {
    let config = HealthConfig {
        bind_address: "localhost".into(),
        ..config(HealthLimits::default())
    };
    let listener = HealthListener::bind(&config).await.unwrap();
    assert!(listener.local_addr().ip().is_loopback());
    assert!(listener.local_addr().is_ipv4());
}
