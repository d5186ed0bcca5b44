//! Bad input on the plaintext CONNECT listener, against the real binary on loopback: malformed
//! request heads get precise answers (400, 405, 431) with `malformed_request`, a client that goes
//! quiet mid-head gets 408 `sniff_timeout`, each is counted and logged under its tenant, and none
//! of it takes the gateway down.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin, DNS server and
//! black hole is a local socket on 127.0.0.1. Waits are on events (accepts, access-log lines,
//! metric values polled with a deadline), each bounded by `common::WAIT`.

mod common;

use common::tunnel::{expect_echo, read_all};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

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
