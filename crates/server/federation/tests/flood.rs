//! GHSA-m7vp-hqwv-7m5x class: floods against the bundle endpoint leave the process's memory
//! bounded. One test in its own binary, so no other test shares the measured process. The
//! assertion is a resource bound (growth of VmRSS), not a timing.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use rustls_pki_types::ServerName;
use spire_server_federation::{BundleEndpoint, EndpointConfig, ServingIdentity};
use spire_task::Shutdown;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::watch;

use support::{Ca, CaptureServerCert, any_server, bundle, request, vm_rss_kib};

/// Connections the flood opens at once (fewer if the open-file limit is low).
const FLOOD_CONNECTIONS: usize = 2000;
/// HTTP/2 connections that each open and immediately reset streams.
const RESET_CONNECTIONS: usize = 32;
const STREAMS_PER_CONNECTION: usize = 2000;
/// Allowed RSS growth. The endpoint's limits keep it far below; unbounded HTTP/2 state
/// grows past it within the flood.
const MAX_GROWTH_KIB: u64 = 96 * 1024;

/// The soft open-file limit of this process.
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// A TCP connection that starts a TLS record announcing 16 KiB, sends half, and stalls.
async fn stalled_handshake(addr: SocketAddr) -> Option<TcpStream> {
    let connect = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr));
    let mut tcp = connect.await.ok()?.ok()?;
    let mut partial = vec![0x16, 0x03, 0x01, 0x40, 0x00];
    partial.extend(std::iter::repeat_n(0x01, 8 * 1024));
    tcp.write_all(&partial).await.ok()?;
    Some(tcp)
}

/// Opens streams over one HTTP/2 connection and resets each at once ("rapid reset"), with
/// padded headers; stops when the server refuses or closes. Returns the streams sent.
async fn rapid_reset(addr: SocketAddr) -> usize {
    let config = any_server(Arc::new(CaptureServerCert::default()), &[b"h2"]);
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return 0;
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let Ok(tls) = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    else {
        return 0;
    };
    let Ok((mut client, connection)) = h2::client::handshake(tls).await else {
        return 0;
    };
    let driver = tokio::spawn(connection);
    let padding = "a".repeat(1024);
    let mut sent = 0;
    for _ in 0..STREAMS_PER_CONNECTION {
        client = match client.ready().await {
            Ok(client) => client,
            Err(_) => break,
        };
        let request = http::Request::get("https://localhost/")
            .header("x-padding-1", padding.as_str())
            .header("x-padding-2", padding.as_str())
            .body(())
            .unwrap();
        match client.send_request(request, false) {
            Ok((_response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                sent += 1;
            }
            Err(_) => break,
        }
    }
    driver.abort();
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_leave_memory_bounded() {
    let ca = Ca::new(Some("example.org"));
    let (_, svid) = watch::channel(Arc::new(ca.svid("spiffe://example.org/spire/server")));
    let (_, bundles) = watch::channel(Arc::new(bundle("example.org", &[&ca])));
    let mut config = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    config.limits.tls_handshake_timeout = Duration::from_secs(2);
    let endpoint = BundleEndpoint::bind(config, ServingIdentity::Svid(svid), bundles)
        .await
        .unwrap();
    let addr = endpoint.local_addr();
    let stop = Shutdown::new();
    let server = tokio::spawn(endpoint.serve(stop.clone()));

    // Warm up allocators and lazily built state on both sides.
    for h2 in [false, true, false, true] {
        assert_eq!(
            request(addr, Method::GET, "/", h2).await.status,
            StatusCode::OK
        );
    }
    let baseline = vm_rss_kib();

    // 1. Many connections stalling in the TLS handshake, held open together.
    let flood = FLOOD_CONNECTIONS.min(open_file_limit().saturating_sub(256) / 2);
    let attempts = (0..flood).map(|_| tokio::spawn(stalled_handshake(addr)));
    let mut held = Vec::new();
    for attempt in attempts {
        held.extend(attempt.await.unwrap());
    }
    let during_connection_flood = vm_rss_kib();
    drop(held);

    // 2. HTTP/2 rapid reset with padded headers over many connections.
    let resets: Vec<_> = (0..RESET_CONNECTIONS)
        .map(|_| tokio::spawn(rapid_reset(addr)))
        .collect();
    let mut streams = 0;
    for reset in resets {
        streams += reset.await.unwrap();
    }
    let after_reset_flood = vm_rss_kib();

    println!(
        "baseline {baseline} KiB; {flood} stalled connections: {during_connection_flood} KiB; \
         {streams} reset streams: {after_reset_flood} KiB"
    );
    assert!(
        during_connection_flood.saturating_sub(baseline) < MAX_GROWTH_KIB,
        "connection flood grew RSS from {baseline} to {during_connection_flood} KiB"
    );
    assert!(
        after_reset_flood.saturating_sub(baseline) < MAX_GROWTH_KIB,
        "reset flood grew RSS from {baseline} to {after_reset_flood} KiB"
    );

    // Still serving.
    assert_eq!(
        request(addr, Method::GET, "/", true).await.status,
        StatusCode::OK
    );
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap();
}
