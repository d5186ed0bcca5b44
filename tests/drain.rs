//! Graceful drain of the real binary (docs/operations.md, issue 5 point 7): on SIGTERM or SIGINT `/readyz`
//! turns 503, the listeners stop accepting, an open tunnel may finish within `timeouts.drain` and
//! the process then exits 0; a tunnel still open at the deadline is closed and logged.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DRAIN: Duration = Duration::from_secs(3);

/// A gateway with `timeouts.drain: 3s` and one open, working tunnel; the config directory is
/// returned so that it outlives the process.
async fn start() -> (ConfigDir, Gateway, TcpStream) {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml("timeouts: {drain: 3s}\n"));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    let gateway = Gateway::start(&config);
    let mut tunnel = open_tunnel(APP1, gateway.addr("connect"), "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"before the signal")
        .await
        .expect("echo");
    (config, gateway, tunnel)
}

/// Polls (bounded) until `/readyz` answers 503.
fn wait_not_ready(gateway: &Gateway) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((503, _)) = gateway.try_admin_get("/readyz") {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls (bounded) until a TCP connect to `addr` is refused.
async fn wait_refused(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(addr).await {
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => return,
            // Queued in the backlog as the listener closed: reset. Try again.
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(err) => panic!("connecting to {addr}: {err}"),
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "{addr} kept accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The tenant finishes its tunnel during the drain: the process exits 0 right after.
async fn finishing_tunnel_then_exit_0(signal: &str) {
    let (_config, mut gateway, mut tunnel) = start().await;
    let connect = gateway.addr("connect");
    let src = tunnel.local_addr().expect("addr").to_string();
    let signalled = Instant::now();
    gateway.signal(signal);
    tokio::task::block_in_place(|| wait_not_ready(&gateway));
    wait_refused(connect).await;
    for round in 0..3 {
        echo_roundtrip(&mut tunnel, format!("draining {round}").as_bytes())
            .await
            .expect("the open tunnel still works while draining");
    }
    assert!(
        signalled.elapsed() < DRAIN,
        "the checks outlasted the drain"
    );
    tunnel.shutdown().await.expect("shutdown");
    let (_, closed) = read_until_closed(&mut tunnel, WAIT).await;
    assert!(closed);
    let finished = Instant::now();
    let code = tokio::task::block_in_place(|| gateway.wait_exit(WAIT));
    assert_eq!(code, Some(0), "{:#?}", gateway.logs());
    let exit_after = finished.elapsed();
    assert!(
        exit_after < Duration::from_secs(1),
        "exited {exit_after:?} after the last tunnel closed"
    );
    assert!(signalled.elapsed() < DRAIN, "exit waited for the deadline");
    let line = gateway.wait_access_log(|l| l["src"] == src.as_str());
    assert_eq!(line["decision"], "allow");
}

/// A tunnel still open at the deadline is reset by the gateway, logged, and the process exits 0.
async fn tunnel_open_at_the_deadline_is_closed(signal: &str) {
    let (_config, mut gateway, mut tunnel) = start().await;
    let src = tunnel.local_addr().expect("addr").to_string();
    let signalled = Instant::now();
    gateway.signal(signal);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DRAIN + WAIT, tunnel.read(&mut buf))
        .await
        .expect("the tunnel is cut at the deadline");
    let cut = signalled.elapsed();
    assert_eq!(
        read.map_err(|err| err.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "a tunnel cut at the deadline is reset, so the tenant cannot take it for a finished one"
    );
    assert!(
        cut >= DRAIN - Duration::from_millis(200) && cut < DRAIN + Duration::from_secs(2),
        "closed {cut:?} after {signal}, drain is {DRAIN:?}"
    );
    let line = gateway.wait_access_log(|l| l["src"] == src.as_str());
    assert_eq!(line["namespace"], "app1");
    assert!(line["duration_ms"].as_u64().expect("duration") >= 2800);
    let code = tokio::task::block_in_place(|| gateway.wait_exit(WAIT));
    assert_eq!(code, Some(0), "{:#?}", gateway.logs());
    assert!(signalled.elapsed() < DRAIN + Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_tunnel_finish_then_exits_0() {
    finishing_tunnel_then_exit_0("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_lets_an_open_tunnel_finish_then_exits_0() {
    finishing_tunnel_then_exit_0("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_a_tunnel_still_open_at_the_drain_deadline() {
    tunnel_open_at_the_deadline_is_closed("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_closes_a_tunnel_still_open_at_the_drain_deadline() {
    tunnel_open_at_the_deadline_is_closed("INT").await;
}
