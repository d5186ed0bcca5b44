//! Slow and idle clients against the real binary (docs/configuration.md `timeouts`, issue 5 point 6): 1000
//! connections trickling one byte per second into the `connect`, `sni` and `http` listeners are
//! all closed at `timeouts.sniff` while a well-behaved tenant is served without delay, and the
//! process's file descriptors and threads return to their baseline; idle tunnels close at
//! `timeouts.idle`.
//!
//! The test process holds 1000+ sockets at once: if its soft `RLIMIT_NOFILE` is low, it is
//! raised to the hard limit with `prlimit` before the gateway (which inherits it) starts.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRICKLERS: usize = 1000;
const SNIFF: Duration = Duration::from_secs(2);

/// Raises this process's soft open-files limit to its hard limit when it is below `need`.
fn ensure_open_files(need: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    if soft.parse::<u64>().is_ok_and(|soft| soft >= need) {
        return;
    }
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .expect("prlimit");
    assert!(status.success(), "cannot raise RLIMIT_NOFILE to {hard}");
}

/// Sends `payload` one byte per second until the gateway closes the connection; returns how
/// long after connecting that happened (`None`: still open after 12 s).
async fn trickle(
    to: SocketAddr,
    payload: Vec<u8>,
    connected: Arc<AtomicUsize>,
) -> Option<Duration> {
    let mut stream = connect_from(APP1, to).await;
    let start = Instant::now();
    connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 1024];
    for byte in payload.iter().take(12) {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            return Some(start.elapsed());
        }
        let next = Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(next.into(), stream.read(&mut buf)).await {
                Err(_) => break,                                    // a second passed: next byte
                Ok(Ok(0) | Err(_)) => return Some(start.elapsed()), // closed (or reset)
                Ok(Ok(_)) => {} // an error answer (408); EOF follows
            }
        }
    }
    None
}

/// What each open descriptor of `pid` points at (for a failure message).
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|t| t.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_trickling_clients_are_cut_at_the_sniff_timeout() {
    ensure_open_files(4 * TRICKLERS as u64);
    let echo = echo_server().await;
    let config = ConfigDir::new(&transparent_gateway_yaml(
        &[],
        "timeouts: {sniff: 2s, idle: 1h}\n",
    ));
    config.entry(
        "app2/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    let gateway = Arc::new(Gateway::start(&config));
    gateway.wait_watching(); // the watcher's thread and descriptors are part of the baseline
    let proxy = gateway.addr("connect");

    // Baseline, after one served tunnel has warmed everything up.
    let mut warm = open_tunnel(APP2, proxy, "web.test:8000").await;
    echo_roundtrip(&mut warm, b"warm up").await.expect("echo");
    drop(warm);
    gateway.wait_access_logs(1, |l| l["decision"] == "allow");
    let fds_before = gateway.open_fds();
    eprintln!("baseline fds: {:?}", fd_targets(gateway.pid()));
    let threads_before = gateway.threads();

    let payloads = [
        (
            "connect",
            b"CONNECT web.test:8000 HTTP/1.1\r\nHost: web.test:8000\r\n\r\n".to_vec(),
        ),
        ("sni", rustls_client_hello("web.test")),
        (
            "http",
            b"GET / HTTP/1.1\r\nHost: web.test:8000\r\n\r\n".to_vec(),
        ),
    ];
    let connected = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tricklers = Vec::new();
    for n in 0..TRICKLERS {
        let (listener, payload) = &payloads[n % payloads.len()];
        let to = gateway.addr(listener);
        let task = tokio::spawn(trickle(to, payload.clone(), connected.clone()));
        tricklers.push((*listener, task));
    }
    let deadline = Instant::now() + WAIT;
    while connected.load(Ordering::Relaxed) < TRICKLERS {
        assert!(Instant::now() < deadline, "the tricklers could not connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_connected = started.elapsed();

    // While they trickle: a well-behaved tenant is served promptly, and the gateway really holds
    // the 1000 connections.
    let payload = vec![7u8; 16 * 1024];
    let mut slowest = Duration::ZERO;
    let mut served = 0;
    let mut fds_peak = 0;
    let mut threads_peak = 0;
    while started.elapsed() < SNIFF - Duration::from_millis(300) || served < 3 {
        let begun = Instant::now();
        let mut tunnel = open_tunnel(APP2, proxy, "web.test:8000").await;
        echo_roundtrip(&mut tunnel, &payload).await.expect("echo");
        slowest = slowest.max(begun.elapsed());
        served += 1;
        drop(tunnel);
        fds_peak = fds_peak.max(gateway.open_fds());
        threads_peak = threads_peak.max(gateway.threads());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a tunnel round trip took {slowest:?} during the trickle"
    );
    assert!(
        fds_peak >= fds_before + TRICKLERS * 9 / 10,
        "the gateway held only {} extra fds (baseline {fds_before})",
        fds_peak.saturating_sub(fds_before)
    );

    let mut cut = Vec::new();
    for (listener, task) in tricklers {
        let closed = task.await.expect("trickler");
        let after = closed.unwrap_or_else(|| panic!("a {listener} trickler was never cut"));
        assert!(
            after >= SNIFF - Duration::from_millis(500) && after < SNIFF + Duration::from_secs(4),
            "a {listener} trickler was cut after {after:?}"
        );
        cut.push(after);
    }
    cut.sort();
    eprintln!(
        "{TRICKLERS} tricklers connected in {all_connected:?}; cut after min {:?} / median {:?} / max {:?}; \
         {served} tunnels served meanwhile, slowest {slowest:?}; fds {fds_before} -> peak {fds_peak}; \
         threads {threads_before} -> peak {threads_peak}",
        cut[0],
        cut[cut.len() / 2],
        cut[cut.len() - 1]
    );

    // Every trickler got its sniff_timeout line, per listener; one line per served tunnel.
    for (listener, _) in &payloads {
        let expected = (0..TRICKLERS)
            .filter(|n| payloads[n % payloads.len()].0 == *listener)
            .count();
        gateway.wait_access_logs(expected, |l| {
            l["listener"] == *listener && l["reason"] == "sniff_timeout"
        });
        // Counted for the tenant when the front end identified it before the deadline (the
        // source address is known at accept), else as `unknown`.
        let counted: f64 = ["app1", "unknown"]
            .iter()
            .filter_map(|ns| gateway.connections_on(listener, ns, "deny", "sniff_timeout"))
            .sum();
        assert_eq!(counted, expected as f64, "{listener}");
    }
    let lines = gateway.access_log();
    assert_eq!(
        lines.len(),
        1 + served + TRICKLERS,
        "one line per connection"
    );

    // Back to the baseline: descriptors (polled, bounded) and threads.
    let deadline = Instant::now() + Duration::from_secs(10);
    let g = gateway.clone();
    let fds_after = tokio::task::spawn_blocking(move || loop {
        let fds = g.open_fds();
        if fds <= fds_before || Instant::now() > deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(50));
    })
    .await
    .expect("join");
    assert!(
        fds_after <= fds_before,
        "fds {fds_before} before, {fds_after} after: {:?}",
        fd_targets(gateway.pid())
    );
    let threads_after = gateway.threads();
    assert!(
        threads_peak <= threads_before + 2 && threads_after <= threads_before + 2,
        "threads {threads_before} before, {threads_peak} peak, {threads_after} after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed_at_the_idle_timeout() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml("timeouts: {idle: 1s}\n"));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    let gateway = Gateway::start(&config);

    // A busy tunnel is not idle: bytes every 300 ms for 2 s keep it open.
    let mut busy = open_tunnel(APP1, gateway.addr("connect"), "web.test:8000").await;
    for n in 0..7 {
        echo_roundtrip(&mut busy, format!("tick {n}").as_bytes())
            .await
            .expect("a tunnel with traffic stays open past the idle timeout");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A silent one is closed.
    let mut idle = open_tunnel(APP1, gateway.addr("connect"), "web.test:8000").await;
    let src = idle.local_addr().expect("addr").to_string();
    let opened = Instant::now();
    let (_, closed) = read_until_closed(&mut idle, WAIT).await;
    let after = opened.elapsed();
    assert!(closed);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "an idle tunnel was closed after {after:?} (idle timeout 1 s)"
    );
    let line = gateway.wait_access_log(|l| l["src"] == src.as_str());
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["bytes_egress"], 0);
    assert!(line["duration_ms"].as_u64().expect("duration") >= 900);
}
