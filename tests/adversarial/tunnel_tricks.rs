//! Cross-protocol and pipelining tricks: bytes pipelined behind a CONNECT head (a hello or a
//! request naming another host), requests inside a tunnel to an HTTP port that change host,
//! `CONNECT` sent to the transparent `http` listener or after an absolute-form request, the
//! HTTP/2 preface on HTTP/1.1 listeners, and a TLS hello where a CONNECT head belongs.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::attack::{deny_header, raw_exchange, read_to_close, status_of, Outcome, Probe};
use crate::common::{
    connect_from, read_head, recording_server, static_entry, transparent_gateway_yaml, ConfigDir,
    Gateway, APP1,
};
use crate::hello::Hello;
use crate::origin::Origin;

struct Setup {
    gw: Gateway,
    origin: Origin,
    tls_upstream: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    _config: ConfigDir,
}

/// app1 may reach `web.test:80` (HTTP, the recording origin) and `tls.test:443` (TLS, a
/// recording upstream).
async fn setup() -> Setup {
    let origin = Origin::start().await;
    let (tls, tls_upstream) = recording_server().await;
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 80, "HTTP", origin.addr),
    );
    config.entry(
        "app1/tls.yaml",
        &static_entry("tls", "tls.test", 443, "TLS", tls),
    );
    Setup {
        gw: Gateway::start(&config),
        origin,
        tls_upstream,
        _config: config,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_pipelined_behind_a_connect_head_are_still_checked() {
    let mut s = setup().await;

    // A hello naming another host in the same write as the CONNECT head.
    let probe = Probe::before(&s.gw, Outcome::deny("connect", "app1", "sni_mismatch"));
    let mut bytes = b"CONNECT tls.test:443 HTTP/1.1\r\n\r\n".to_vec();
    bytes.extend_from_slice(&Hello::named("evil.test").record());
    let answer = raw_exchange(APP1, s.gw.addr("connect"), &bytes).await;
    let expected = [
        b"HTTP/1.1 200 Connection Established\r\n\r\n".as_slice(),
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49],
    ]
    .concat();
    assert_eq!(answer, expected, "a pipelined hello naming another host");
    let upstream = tokio::time::timeout(crate::common::WAIT, s.tls_upstream.recv())
        .await
        .expect("dialled")
        .expect("open");
    assert!(upstream.is_empty(), "no tenant byte went upstream");
    probe.confirm(&s.gw, "a pipelined hello naming another host");

    // A request naming another host in the same write as a CONNECT to an HTTP port.
    let probe = Probe::before(&s.gw, Outcome::deny("connect", "app1", "host_mismatch"));
    let bytes = b"CONNECT web.test:80 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\n";
    let answer = raw_exchange(APP1, s.gw.addr("connect"), bytes).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 403"),
        "{text}"
    );
    assert!(
        text.contains("x-egress-deny-reason: host_mismatch"),
        "{text}"
    );
    probe.confirm(&s.gw, "a pipelined request naming another host");
    assert!(s.origin.requests().is_empty(), "{:?}", s.origin.requests());
}

/// Sends `requests` in a tunnel to `web.test:80`, one after another; returns the answers.
async fn in_http_tunnel(gw: &Gateway, requests: &[&str]) -> Vec<String> {
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    stream
        .write_all(b"CONNECT web.test:80 HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut answers = Vec::new();
    for request in requests {
        if stream.write_all(request.as_bytes()).await.is_err() {
            break;
        }
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tokio::time::timeout(crate::common::WAIT, stream.read(&mut byte)).await {
                Ok(Ok(1)) => head.push(byte[0]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let length = head
            .to_ascii_lowercase()
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        let _ = stream.read_exact(&mut body).await;
        let done = head.is_empty();
        answers.push(head);
        if done {
            break;
        }
    }
    drop(stream);
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_in_an_http_tunnel_cannot_change_host() {
    let s = setup().await;
    let baseline = crate::baseline::Baseline::take(&s.gw);
    let cases: [(&str, &[&str]); 5] = [
        (
            "a second request to another host on the tunnel",
            &[
                "GET /one HTTP/1.1\r\nHost: web.test\r\n\r\n",
                "GET /two HTTP/1.1\r\nHost: evil.test\r\n\r\n",
            ],
        ),
        (
            "an absolute-form request naming another host",
            &["GET http://evil.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n"],
        ),
        (
            "Host with the tunnel's name but userinfo",
            &["GET / HTTP/1.1\r\nHost: evil.test@web.test\r\n\r\n"],
        ),
        (
            "Connection: Host to strip the checked Host, then another host",
            &[
                "GET /hop HTTP/1.1\r\nHost: web.test\r\nConnection: Host\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n",
            ],
        ),
        (
            "two Host headers in the tunnel",
            &["GET / HTTP/1.1\r\nHost: web.test\r\nHost: evil.test\r\n\r\n"],
        ),
    ];
    for (what, requests) in cases {
        let before = s.origin.requests().len();
        let lines = s.gw.access_log().len();
        let answers = in_http_tunnel(&s.gw, requests).await;
        let last = answers.last().cloned().unwrap_or_default();
        assert!(
            last.starts_with("HTTP/1.1 403") || last.starts_with("HTTP/1.1 400"),
            "{what}: {answers:?}"
        );
        let line = s.gw.wait_access_logs(lines + 1, |_| true)[lines].clone();
        assert_eq!(line["decision"], "deny", "{what}: {line}");
        let reason = line["reason"].as_str().unwrap_or_default();
        assert!(
            ["host_mismatch", "malformed_request"].contains(&reason),
            "{what}: {line}"
        );
        let seen = s.origin.requests();
        assert!(
            seen[before..].iter().all(|r| !r.contains("evil")),
            "{what}: {seen:?}"
        );
        assert_eq!(seen.len() - before, requests.len() - 1, "{what}: {seen:?}");
        for forwarded in &seen[before..] {
            assert!(
                forwarded
                    .to_ascii_lowercase()
                    .contains("host: web.test\r\n"),
                "{what}: forwarded without its Host: {forwarded}"
            );
        }
        baseline.settle(&s.gw, what);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_where_it_does_not_belong_is_refused() {
    let s = setup().await;
    let cases: [(&str, &str, &[u8], u16, &str); 4] = [
        (
            "CONNECT on the transparent http listener",
            "http",
            b"CONNECT web.test:80 HTTP/1.1\r\nHost: web.test:80\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "the HTTP/2 preface on the connect listener",
            "connect",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "the HTTP/2 preface on the http listener (closed without an answer)",
            "http",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            0,
            "malformed_request",
        ),
        (
            "a ClientHello where a CONNECT head belongs",
            "connect",
            &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],
            400,
            "malformed_request",
        ),
    ];
    for (what, listener, bytes, status, reason) in cases {
        let probe = Probe::before(&s.gw, Outcome::deny(listener, "app1", reason));
        let answer = raw_exchange(APP1, s.gw.addr(listener), bytes).await;
        assert_eq!(
            status_of(&answer),
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer)
        );
        probe.confirm(&s.gw, what);
    }

    // CONNECT after an absolute-form request on the same connection.
    let mut stream = connect_from(APP1, s.gw.addr("connect")).await;
    stream
        .write_all(b"GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let first = read_head(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let mut body = [0u8; 2];
    stream.read_exact(&mut body).await.expect("body");
    stream
        .write_all(b"CONNECT tls.test:443 HTTP/1.1\r\nHost: tls.test:443\r\n\r\n")
        .await
        .expect("write");
    let rest = read_to_close(&mut stream).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.starts_with("HTTP/1.1 400"),
        "CONNECT after absolute-form: {text}"
    );
    assert_eq!(
        deny_header(&rest).as_deref(),
        Some("malformed_request"),
        "{text}"
    );
    let line = s.gw.wait_access_log(|v| {
        v["host"].is_null() && v["reason"] == "malformed_request" && v["listener"] == "connect"
    });
    assert_eq!(line["namespace"], "app1", "{line}");
    assert!(
        s.origin
            .requests()
            .iter()
            .all(|r| !r.starts_with("CONNECT")),
        "{:?}",
        s.origin.requests()
    );
}
