//! The plaintext CONNECT listener end to end, against the real binary on loopback: allowed
//! tunnels carry data intact both ways (4 MiB each way, half-close), every deny reason this
//! listener can reach gets its status, `X-Egress-Deny-Reason`, counter and access-log line, bad
//! input never takes the gateway down, curl works through it, and the ClientHello SNI check inside
//! tunnels to TLS ports (mismatch, missing SNI, audit mode, switched off, TCP ports not sniffed).
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin, DNS server and
//! black hole is a local socket on 127.0.0.1. Waits are on events (accepts, access-log lines,
//! metric values polled with a deadline), each bounded by `common::WAIT`.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const MIB4: usize = 4 * 1024 * 1024;

/// Deterministic, non-repeating test data.
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Reads to EOF within [`WAIT`].
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("EOF in time")
        .expect("read to EOF");
    out
}

/// Writes `data` through an open tunnel, closes the write half and reads the answer to EOF.
async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.expect("write through tunnel");
    stream.shutdown().await.expect("shutdown write");
    read_all(stream).await
}

/// What a denied CONNECT must produce; checked by [`expect_deny`].
struct Deny<'a> {
    from: &'a str,
    authority: &'a str,
    status: u16,
    reason: &'a str,
    namespace: &'a str,
    host: &'a str,
    port: u16,
    /// The counter value expected after this deny (denies of the same reason accumulate).
    count: f64,
}

/// Sends the CONNECT and checks status, header, one-line body, access-log line and counter.
async fn expect_deny(gw: &Gateway, d: Deny<'_>) -> Value {
    let mut answer = connect_request(d.from, gw.addr("connect"), d.authority).await;
    assert_eq!(answer.status, d.status, "{}: {}", d.authority, answer.head);
    assert_eq!(
        answer.deny_reason().as_deref(),
        Some(d.reason),
        "{}",
        answer.head
    );
    let body = read_all(&mut answer.stream).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(body.lines().count(), 1, "one-line body: {body:?}");
    assert!(body.contains(d.reason), "{body:?}");

    let line = gw
        .wait_access_log(|v| v["host"] == d.host && v["port"] == d.port && v["reason"] == d.reason);
    assert_eq!(line["namespace"], d.namespace, "{line}");
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["listener"], "connect", "{line}");
    assert_eq!(line["bytes_egress"], 0, "{line}");
    assert_eq!(
        gw.connections(d.namespace, "deny", d.reason),
        Some(d.count),
        "egress_connections_total{{namespace={},reason={}}}",
        d.namespace,
        d.reason
    );
    line
}

/// Opens a tunnel that must be allowed.
async fn open_tunnel(gw: &Gateway, from: &str, authority: &str) -> TcpStream {
    let answer = connect_request(from, gw.addr("connect"), authority).await;
    assert_eq!(answer.status, 200, "{authority}: {}", answer.head);
    assert_eq!(answer.head, "HTTP/1.1 200 Connection Established\r\n\r\n");
    answer.stream
}

/// Checks that an allowed tunnel to an echo server works.
async fn expect_echo(gw: &Gateway, from: &str, authority: &str) {
    let mut tunnel = open_tunnel(gw, from, authority).await;
    assert_eq!(
        round_trip(&mut tunnel, b"still alive").await,
        b"still alive"
    );
}

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

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tenant_not_allowlisted_and_port_not_allowed() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    expect_deny(
        &gw,
        Deny {
            from: STRANGER,
            authority: "allowed.test:9000",
            status: 403,
            reason: "unknown_tenant",
            namespace: "unknown",
            host: "allowed.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "other.test:9000",
            status: 403,
            reason: "not_allowlisted",
            namespace: "app1",
            host: "other.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "allowed.test:9001",
            status: 403,
            reason: "port_not_allowed",
            namespace: "app1",
            host: "allowed.test",
            port: 9001,
            count: 1.0,
        },
    )
    .await;
    // app1's entry is not exported to app2 (default_export_to ["."]).
    expect_deny(
        &gw,
        Deny {
            from: APP2,
            authority: "allowed.test:9000",
            status: 403,
            reason: "not_allowlisted",
            namespace: "app2",
            host: "allowed.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    // Host names are case-insensitive and one trailing dot is ignored.
    expect_echo(&gw, APP1, "ALLOWED.Test.:9000").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_literals_need_addresses() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let port = echo.port();
    config.entry(
        "app2/by-ip.yaml",
        &entry_yaml(
            "by-ip",
            &format!("  hosts: [\"echo-by-ip.test\"]\n  addresses: [\"127.0.0.1/32\"]\n  ports:\n    - {{number: {port}, name: tcp, protocol: TCP}}\n  resolution: NONE\n"),
        ),
    );
    let gw = Gateway::start(&config);

    // app1 has no entry with addresses: an IP literal is not allowlisted.
    let authority = format!("127.0.0.1:{port}");
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: &authority,
            status: 403,
            reason: "not_allowlisted",
            namespace: "app1",
            host: "127.0.0.1",
            port,
            count: 1.0,
        },
    )
    .await;
    // app2's entry covers 127.0.0.1/32 on the echo port: allowed, dialled as written.
    expect_echo(&gw, APP2, &authority).await;
    let line = gw.wait_access_log(|v| v["namespace"] == "app2" && v["decision"] == "allow");
    assert_eq!(line["service_entry"], "app2/by-ip", "{line}");
    assert_eq!(line["upstream"], echo.to_string(), "{line}");

    // The gateway's own admin port as an IP literal: refused.
    let admin = gw.addr("admin");
    let answer = connect_request(
        APP2,
        gw.addr("connect"),
        &format!("127.0.0.1:{}", admin.port()),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("port_not_allowed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_addresses_dns_to_loopback_and_the_gateway_itself() {
    let config = ConfigDir::new(&gateway_yaml(""));
    // `localhost` resolves (through /etc/hosts) to loopback, which DNS answers may never reach.
    config.entry(
        "app1/localhost.yaml",
        &entry_yaml(
            "localhost",
            "  hosts: [\"localhost\"]\n  ports:\n    - {number: 8080, name: tcp, protocol: TCP}\n  resolution: DNS\n",
        ),
    );
    let gw = Gateway::start(&config);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "localhost:8080",
            status: 403,
            reason: "forbidden_address",
            namespace: "app1",
            host: "localhost",
            port: 8080,
            count: 1.0,
        },
    )
    .await;

    // Entries that point at the gateway's own admin port: a trusted STATIC endpoint, and an IP
    // literal through `addresses`. The gateway never dials itself.
    let admin = gw.addr("admin");
    let self_entries = format!(
        "{}---\n{}",
        static_entry("self", "admin.test", admin.port(), "TCP", admin),
        entry_yaml(
            "self-ip",
            &format!("  hosts: [\"self-ip.test\"]\n  addresses: [\"127.0.0.1/32\"]\n  ports:\n    - {{number: {}, name: tcp, protocol: TCP}}\n  resolution: NONE\n", admin.port()),
        )
    );
    // One atomic file: any reload (SIGHUP or the config watcher) sees both entries or neither.
    config.replace_entry("app1/self.yaml", &self_entries);
    gw.reload_to(2);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: &format!("admin.test:{}", admin.port()),
            status: 403,
            reason: "forbidden_address",
            namespace: "app1",
            host: "admin.test",
            port: admin.port(),
            count: 2.0,
        },
    )
    .await;
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: &format!("127.0.0.1:{}", admin.port()),
            status: 403,
            reason: "forbidden_address",
            namespace: "app1",
            host: "127.0.0.1",
            port: admin.port(),
            count: 3.0,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_failure_is_502() {
    let dns = nxdomain_dns_server().await;
    let config = ConfigDir::new(&gateway_yaml(&format!("dns: {{servers: [\"{dns}\"]}}\n")));
    config.entry(
        "app1/nx.yaml",
        &entry_yaml(
            "nx",
            "  hosts: [\"nx.test\"]\n  ports:\n    - {number: 443, name: tcp, protocol: TCP}\n  resolution: DNS\n",
        ),
    );
    let gw = Gateway::start(&config);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "nx.test:443",
            status: 502,
            reason: "dns_failure",
            namespace: "app1",
            host: "nx.test",
            port: 443,
            count: 1.0,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_unreachable_is_502() {
    let closed = closed_port();
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/closed.yaml",
        &static_entry("closed", "closed.test", 6000, "TCP", closed),
    );
    let gw = Gateway::start(&config);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "closed.test:6000",
            status: 502,
            reason: "upstream_unreachable",
            namespace: "app1",
            host: "closed.test",
            port: 6000,
            count: 1.0,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_timeout_is_504() {
    let hole = black_hole();
    let config = ConfigDir::new(&gateway_yaml("timeouts: {connect: 1s}\n"));
    config.entry(
        "app1/hole.yaml",
        &static_entry("hole", "slow.test", 6001, "TCP", hole.addr),
    );
    let gw = Gateway::start(&config);
    let started = std::time::Instant::now();
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "slow.test:6001",
            status: 504,
            reason: "upstream_timeout",
            namespace: "app1",
            host: "slow.test",
            port: 6001,
            count: 1.0,
        },
    )
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "answered before the 1s connect timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_connection_limit_pins_one_tenant_only() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml("limits: {namespaces: {app1: 2}}\n"));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    config.entry(
        "app2/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tunnel = open_tunnel(&gw, APP1, "allowed.test:9000").await;
        tunnel.write_all(b"ping").await.expect("write");
        let mut pong = [0u8; 4];
        timeout(WAIT, tunnel.read_exact(&mut pong))
            .await
            .expect("in time")
            .expect("echo");
        held.push(tunnel);
    }
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "allowed.test:9000",
            status: 429,
            reason: "tenant_connection_limit",
            namespace: "app1",
            host: "allowed.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    // app2 is not affected while app1 is pinned.
    expect_echo(&gw, APP2, "allowed.test:9000").await;
    assert_eq!(
        gw.metric(
            "egress_active_connections",
            &[("namespace", "app1"), ("listener", "connect")]
        ),
        Some(2.0)
    );

    // Releasing one tunnel frees a slot.
    let mut first = held.remove(0);
    assert_eq!(round_trip(&mut first, b"bye").await, b"bye");
    gw.wait_access_logs(1, |v| v["namespace"] == "app1" && v["decision"] == "allow");
    expect_echo(&gw, APP1, "allowed.test:9000").await;
}

/// Sends raw bytes from `from` and reads the answer head (the gateway closes after it).
async fn raw_request(gw: &Gateway, from: &str, bytes: &[u8]) -> String {
    let mut stream = connect_from(from, gw.addr("connect")).await;
    stream.write_all(bytes).await.expect("write");
    let answer = read_all(&mut stream).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_precise_answers_and_never_crash() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);
    let malformed = |v: &Value| v["reason"] == "malformed_request";
    let mut expected = 0;

    let cases: [(&[u8], u16); 6] = [
        (
            b"CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
            400,
        ),
        (b"CONNECT allowed.test:0 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT allowed.test:70000 HTTP/1.1\r\n\r\n", 400),
        (b"\x16\x03\x01\x00\xff garbage \x00\x01\r\n\r\n", 400),
        (b"CONNECT [::1 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT a..b:443 HTTP/1.1\r\n\r\n", 400),
    ];
    for (bytes, status) in cases {
        let answer = raw_request(&gw, APP1, bytes).await;
        assert_eq!(
            status_of(&answer),
            status,
            "{:?} -> {answer}",
            String::from_utf8_lossy(bytes)
        );
        assert!(
            answer.contains("X-Egress-Deny-Reason: malformed_request\r\n"),
            "{answer}"
        );
        expected += 1;
        let lines = gw.wait_access_logs(expected, malformed);
        let line = &lines[expected - 1];
        assert_eq!(line["decision"], "deny", "{line}");
        assert!(line["host"].is_null(), "no host was read: {line}");
    }

    // A 1 MiB header: 431 once the head passes max_request_head_bytes; the client keeps writing
    // (and may see a reset), so the answer is read concurrently.
    {
        let stream = connect_from(APP1, gw.addr("connect")).await;
        let (mut read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            let mut head = b"CONNECT allowed.test:9000 HTTP/1.1\r\nX-Big: ".to_vec();
            head.resize(1024 * 1024, b'a');
            let _ = write.write_all(&head).await;
            write
        });
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match timeout(WAIT, read.read(&mut buf))
                .await
                .expect("answer in time")
            {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(err) => panic!(
                    "reading the 431: {err} after {:?}",
                    String::from_utf8_lossy(&answer)
                ),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), 431, "{answer}");
        assert!(
            answer.contains("X-Egress-Deny-Reason: malformed_request\r\n"),
            "{answer}"
        );
        drop(writer.await);
        expected += 1;
        gw.wait_access_logs(expected, malformed);
    }

    // A client that disconnects in the middle of its head: no answer, but a log line.
    {
        let mut stream = connect_from(APP1, gw.addr("connect")).await;
        stream
            .write_all(b"CONNECT allowed.te")
            .await
            .expect("write");
        drop(stream);
        expected += 1;
        let lines = gw.wait_access_logs(expected, malformed);
        assert_eq!(lines[expected - 1]["decision"], "deny");
    }

    // Another method: 405 with Allow: CONNECT.
    {
        let answer = raw_request(&gw, APP1, b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n").await;
        assert_eq!(status_of(&answer), 405, "{answer}");
        assert!(answer.contains("\r\nAllow: CONNECT\r\n"), "{answer}");
        expected += 1;
        gw.wait_access_logs(expected, malformed);
    }

    // Every malformed request was counted once, under the namespace the log line names.
    let namespace = gw.wait_access_log(malformed)["namespace"]
        .as_str()
        .expect("namespace")
        .to_owned();
    let all = gw.wait_access_logs(expected, malformed);
    assert!(all.iter().all(|l| l["namespace"] == namespace.as_str()));
    assert_eq!(
        gw.connections(&namespace, "deny", "malformed_request"),
        Some(expected as f64)
    );

    // After all of that the gateway still serves.
    expect_echo(&gw, APP1, "allowed.test:9000").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_counted_under_the_known_tenant() {
    let config = ConfigDir::new(&gateway_yaml(""));
    let gw = Gateway::start(&config);
    let answer = raw_request(&gw, APP1, b"CONNECT nowhere.test HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    let line = gw.wait_access_log(|v| v["reason"] == "malformed_request");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(
        gw.connections("app1", "deny", "malformed_request"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sniff_timeout_is_408() {
    let config = ConfigDir::new(&gateway_yaml("timeouts: {sniff: 1s}\n"));
    let gw = Gateway::start(&config);
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    stream
        .write_all(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allo")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let answer = String::from_utf8_lossy(&read_all(&mut stream).await).into_owned();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(
        answer.contains("X-Egress-Deny-Reason: sniff_timeout\r\n"),
        "{answer}"
    );
    let line = gw.wait_access_log(|v| v["reason"] == "sniff_timeout");
    assert_eq!(line["decision"], "deny", "{line}");
    let namespace = line["namespace"].as_str().expect("namespace");
    assert_eq!(
        gw.connections(namespace, "deny", "sniff_timeout"),
        Some(1.0)
    );
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

// ---------------------------------------------------------------------------------------------
// SNI checks inside CONNECT tunnels to TLS ports.
// ---------------------------------------------------------------------------------------------

/// The first flight of a real rustls client (ring provider, empty root store: the handshake
/// never completes, only the ClientHello is needed). `sni: None` disables the SNI extension.
fn client_hello(sni: Option<&str>) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.enable_sni = sni.is_some();
    let name = rustls::pki_types::ServerName::try_from(sni.unwrap_or("allowed.test").to_owned())
        .expect("server name");
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
    let mut hello = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut hello).expect("write_tls");
    }
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

const ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// A gateway with `allowed.test:443` (TLS) and `plain.test:5000` (TCP) to recording upstreams.
struct SniSetup {
    gw: Gateway,
    tls_upstream: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    tcp_upstream: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    _config: ConfigDir,
}

async fn sni_setup(extra: &str) -> SniSetup {
    let (tls_addr, tls_upstream) = recording_server().await;
    let (tcp_addr, tcp_upstream) = recording_server().await;
    let config = ConfigDir::new(&gateway_yaml(extra));
    config.entry(
        "app1/tls.yaml",
        &static_entry("tls", "allowed.test", 443, "TLS", tls_addr),
    );
    config.entry(
        "app1/plain.yaml",
        &static_entry("plain", "plain.test", 5000, "TCP", tcp_addr),
    );
    let gw = Gateway::start(&config);
    SniSetup {
        gw,
        tls_upstream,
        tcp_upstream,
        _config: config,
    }
}

async fn received(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<u8> {
    timeout(WAIT, rx.recv())
        .await
        .expect("upstream connection in time")
        .expect("recorder alive")
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_matching_the_connect_host_passes_intact() {
    let mut s = sni_setup("").await;
    let hello = client_hello(Some("allowed.test"));
    let mut tunnel = open_tunnel(&s.gw, APP1, "allowed.test:443").await;
    let back = round_trip(&mut tunnel, &hello).await;
    assert!(back.is_empty(), "the recorder answers nothing");
    assert_eq!(received(&mut s.tls_upstream).await, hello);
    let line = s.gw.wait_access_log(|v| v["host"] == "allowed.test");
    assert_eq!(line["decision"], "allow", "{line}");
    assert_eq!(line["sni"], "allowed.test", "{line}");
    assert_eq!(line["bytes_egress"], hello.len() as u64, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_mismatch_and_missing_sni_get_tls_alerts() {
    let mut s = sni_setup("").await;

    let mut tunnel = open_tunnel(&s.gw, APP1, "allowed.test:443").await;
    tunnel
        .write_all(&client_hello(Some("evil.test")))
        .await
        .expect("write");
    assert_eq!(read_all(&mut tunnel).await, ACCESS_DENIED);
    assert_eq!(
        received(&mut s.tls_upstream).await,
        b"",
        "no tenant byte goes upstream"
    );
    let line = s.gw.wait_access_log(|v| v["reason"] == "sni_mismatch");
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["host"], "allowed.test", "{line}");
    assert_eq!(line["sni"], "evil.test", "{line}");
    assert_eq!(line["bytes_egress"], 0, "{line}");
    assert_eq!(s.gw.connections("app1", "deny", "sni_mismatch"), Some(1.0));

    let mut tunnel = open_tunnel(&s.gw, APP1, "allowed.test:443").await;
    tunnel.write_all(&client_hello(None)).await.expect("write");
    assert_eq!(read_all(&mut tunnel).await, UNRECOGNIZED_NAME);
    assert_eq!(received(&mut s.tls_upstream).await, b"");
    let line = s.gw.wait_access_log(|v| v["reason"] == "missing_sni");
    assert_eq!(line["decision"], "deny", "{line}");
    assert!(line["sni"].is_null(), "{line}");
    assert_eq!(s.gw.connections("app1", "deny", "missing_sni"), Some(1.0));

    // TCP ports are not sniffed: bytes that are no ClientHello pass.
    let mut tunnel = open_tunnel(&s.gw, APP1, "plain.test:5000").await;
    round_trip(&mut tunnel, b"not TLS at all").await;
    assert_eq!(received(&mut s.tcp_upstream).await, b"not TLS at all");
    let line = s.gw.wait_access_log(|v| v["host"] == "plain.test");
    assert_eq!(line["decision"], "allow", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_mismatch_passes_when_the_check_is_off() {
    let mut s = sni_setup("enforcement: {require_sni_match: false}\n").await;
    let hello = client_hello(Some("evil.test"));
    let mut tunnel = open_tunnel(&s.gw, APP1, "allowed.test:443").await;
    round_trip(&mut tunnel, &hello).await;
    assert_eq!(received(&mut s.tls_upstream).await, hello);
    let line = s.gw.wait_access_log(|v| v["host"] == "allowed.test");
    assert_eq!(line["decision"], "allow", "{line}");
    assert_eq!(line["reason"], "none", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_mismatch_in_audit_mode_is_let_through_and_counted() {
    let mut s = sni_setup("enforcement: {namespaces: {app1: audit}}\n").await;
    let hello = client_hello(Some("evil.test"));
    let mut tunnel = open_tunnel(&s.gw, APP1, "allowed.test:443").await;
    round_trip(&mut tunnel, &hello).await;
    assert_eq!(received(&mut s.tls_upstream).await, hello);
    let line = s.gw.wait_access_log(|v| v["host"] == "allowed.test");
    assert_eq!(line["decision"], "audit", "{line}");
    assert_eq!(line["reason"], "sni_mismatch", "{line}");
    assert_eq!(line["sni"], "evil.test", "{line}");
    assert_eq!(s.gw.connections("app1", "audit", "sni_mismatch"), Some(1.0));
}
