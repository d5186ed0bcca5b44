//! The plaintext CONNECT listener end to end, against the real binary on loopback: allowed
//! tunnels carry data intact both ways (4 MiB each way, half-close), a reset on either side reaches
//! the other as a reset, and curl works through it.
//! Every deny reason is in `connect_denies.rs`; the ClientHello SNI check inside tunnels to TLS
//! ports is in `connect_sni.rs`.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin, DNS server and
//! black hole is a local socket on 127.0.0.1. Waits are on events (accepts, access-log lines,
//! metric values polled with a deadline), each bounded by `common::WAIT`.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::tunnel::{open_tunnel, round_trip};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const MIB4: usize = 4 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn allowed_tunnel_carries_4_mib_each_way_intact() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    let tunnel = open_tunnel(&gw, APP1, "allowed.test:9000").await;
    let (mut read, mut write) = tunnel.into_split();
    let sent = pattern(MIB4);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&to_send).await.expect("write 4 MiB");
        write.shutdown().await.expect("shutdown");
    });
    let mut received = Vec::with_capacity(MIB4);
    timeout(WAIT, read.read_to_end(&mut received))
        .await
        .expect("4 MiB back in time")
        .expect("read");
    writer.await.expect("writer");
    assert_eq!(received.len(), MIB4);
    assert!(
        received == sent,
        "the echoed bytes differ from the sent bytes"
    );

    let line = gw.wait_access_log(|v| v["host"] == "allowed.test");
    assert_eq!(line["decision"], "allow", "{line}");
    assert_eq!(line["reason"], "none", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["listener"], "connect", "{line}");
    assert_eq!(line["port"], 9000, "{line}");
    assert_eq!(line["service_entry"], "app1/echo", "{line}");
    assert_eq!(line["upstream"], echo.to_string(), "{line}");
    assert_eq!(line["bytes_egress"], MIB4 as u64, "{line}");
    assert_eq!(line["bytes_ingress"], MIB4 as u64, "{line}");
    assert_eq!(
        line["src"].as_str().map(|s| s.starts_with(APP1)),
        Some(true)
    );
    assert!(
        line["ts"].is_string() && line["duration_ms"].is_u64(),
        "{line}"
    );

    assert_eq!(gw.connections("app1", "allow", "none"), Some(1.0));
    for direction in ["egress", "ingress"] {
        let bytes = gw.metric(
            "egress_bytes_total",
            &[
                ("namespace", "app1"),
                ("service_entry", "app1/echo"),
                ("direction", direction),
            ],
        );
        assert_eq!(bytes, Some(MIB4 as f64), "{direction}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_close_reaches_upstream_and_the_answer_still_comes_back() {
    // An origin that reads the whole request (to EOF) before it answers.
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin_addr = origin.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, _) = origin.accept().await.expect("accept");
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.expect("read to EOF");
        let mut answer = b"answer to: ".to_vec();
        answer.extend_from_slice(&request);
        stream.write_all(&answer).await.expect("answer");
        stream.shutdown().await.expect("shutdown");
    });
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/origin.yaml",
        &static_entry("origin", "half.test", 7000, "TCP", origin_addr),
    );
    let gw = Gateway::start(&config);

    let mut tunnel = open_tunnel(&gw, APP1, "half.test:7000").await;
    let answer = round_trip(&mut tunnel, b"the request").await;
    assert_eq!(answer, b"answer to: the request");
    let line = gw.wait_access_log(|v| v["host"] == "half.test");
    assert_eq!(line["bytes_egress"], 11, "{line}");
    assert_eq!(line["bytes_ingress"], 22, "{line}");
}

/// The next thing the watching origin saw, within [`WAIT`].
async fn next_seen(seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
    timeout(WAIT, seen.recv())
        .await
        .expect("the origin reports in time")
        .expect("the origin is running")
}

/// Starts a gateway that allows `reset.test:7000` → `origin` for app1, opens a tunnel there and
/// sends `ping` through it. The config directory must outlive the gateway, which watches it.
async fn ping_through_a_tunnel_to(
    origin: SocketAddr,
) -> (ConfigDir, Gateway, tokio::net::TcpStream) {
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/origin.yaml",
        &static_entry("origin", "reset.test", 7000, "TCP", origin),
    );
    let gw = Gateway::start(&config);
    let mut tunnel = open_tunnel(&gw, APP1, "reset.test:7000").await;
    tunnel.write_all(b"ping").await.expect("write");
    (config, gw, tunnel)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_reset_reaches_upstream_as_a_reset() {
    let (origin, mut seen) = watching_server().await;
    let (_config, gw, tunnel) = ping_through_a_tunnel_to(origin).await;
    assert_eq!(next_seen(&mut seen).await, Seen::Data(b"ping".to_vec()));
    tunnel.set_zero_linger().expect("SO_LINGER");
    drop(tunnel);
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::End(Ending::Reset),
        "a clean EOF would tell the origin the client finished normally"
    );
    let line = gw.wait_access_log(|v| v["host"] == "reset.test");
    assert_eq!(line["bytes_egress"], 4, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_reset_reaches_the_client_as_a_reset() {
    let origin = resetting_server().await;
    let (_config, gw, mut tunnel) = ping_through_a_tunnel_to(origin).await;
    let mut buf = [0u8; 16];
    let read = timeout(WAIT, tunnel.read(&mut buf))
        .await
        .expect("the tunnel ends in time");
    assert_eq!(
        read.map_err(|err| err.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "a clean EOF would pass a cut-off response for a complete one"
    );
    gw.wait_access_log(|v| v["host"] == "reset.test");
}

/// Runs curl through the proxy from 127.0.0.2; returns (success, stdout, stderr).
async fn curl(proxy: SocketAddr, url: String) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("curl")
            .args(["-sS", "-p", "--max-time", "10", "--interface", APP1, "-x"])
            .arg(format!("http://{proxy}"))
            .arg(&url)
            .output()
            .expect("curl must be installed to run this test (apt-get install curl)");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("curl task")
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_through_the_proxy() {
    let origin = http_origin("hello from the origin\n").await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/origin.yaml",
        &static_entry("origin", "allowed.test", origin.port(), "HTTP", origin),
    );
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");

    let (ok, stdout, stderr) = curl(proxy, format!("http://allowed.test:{}/", origin.port())).await;
    assert!(ok, "curl failed: {stderr}");
    assert_eq!(stdout, "hello from the origin\n");
    let line = gw.wait_access_log(|v| v["host"] == "allowed.test");
    assert_eq!(line["decision"], "allow", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");

    let (ok, stdout, stderr) = curl(proxy, format!("http://denied.test:{}/", origin.port())).await;
    assert!(!ok, "curl through a denied host succeeded: {stdout}");
    assert!(
        stderr.contains("403"),
        "curl's message should name the 403: {stderr}"
    );
    gw.wait_access_log(|v| v["host"] == "denied.test" && v["reason"] == "not_allowlisted");
}
