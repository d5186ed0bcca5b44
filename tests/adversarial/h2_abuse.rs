//! HTTP/2 abuse on `connect_tls` with ALPN `h2`: malformed CONNECT pseudo-headers, other
//! methods, stream and tenant limits, and the SNI and Host rules inside HTTP/2 tunnels. Floods
//! and silent clients are in `h2_floods`.

use std::time::Duration;

use bytes::Bytes;

use crate::attack::{Outcome, Probe};
use crate::baseline::Baseline;
use crate::common::mtls::tls_connect;
use crate::common::{http_origin, recording_server, WAIT};
use crate::h2_raw::{block, frame, DATA, END_HEADERS, GOAWAY, HEADERS, RST_STREAM};
use crate::h2_world::{
    code, h2_world, h2_world_with, open, CONNECT_ECHO, PROTOCOL_ERROR, REFUSED_STREAM,
};

/// What one malformed stream must get.
enum Expect {
    /// RST_STREAM (or, for a connection error, GOAWAY) with this code; the request never
    /// reaches the planner, so no access-log line.
    Reset(u32),
    /// An answer whose body is exactly this text, with its access-log line and counter.
    Answer(&'static str, &'static str),
}

/// One attack: its name, the header fields of its HEADERS frame, and what it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Expect);

#[tokio::test(flavor = "multi_thread")]
async fn malformed_streams_get_exact_refusals() {
    let w = h2_world("").await;
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut fields = CONNECT_ECHO.to_vec();
        fields.extend_from_slice(extra);
        fields
    };
    let cases: Vec<Case<'_>> = vec![
        (
            "CONNECT without :authority",
            vec![(":method", "CONNECT")],
            Expect::Answer(
                "egress-gateway: 405 Method Not Allowed\n",
                "malformed_request",
            ),
        ),
        (
            "CONNECT with :path",
            with(&[(":path", "/")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "CONNECT with :scheme",
            with(&[(":scheme", "https")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "extended CONNECT (:protocol) not offered by the gateway",
            with(&[
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/"),
            ]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "duplicate :authority",
            with(&[(":authority", "evil.test:7000")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "unknown pseudo-header",
            with(&[(":evil", "1")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "pseudo-header after a regular one",
            vec![
                (":method", "CONNECT"),
                ("x-a", "1"),
                (":authority", "echo.test:7000"),
            ],
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "uppercase header name",
            with(&[("X-Upper", "1")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "connection-specific header",
            with(&[("connection", "keep-alive")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "te: chunked",
            with(&[("te", "chunked")]),
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "GET instead of CONNECT",
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":authority", "echo.test:7000"),
            ],
            Expect::Answer(
                "egress-gateway: 405 Method Not Allowed\n",
                "malformed_request",
            ),
        ),
        (
            "POST instead of CONNECT",
            vec![
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "echo.test:7000"),
            ],
            Expect::Answer(
                "egress-gateway: 405 Method Not Allowed\n",
                "malformed_request",
            ),
        ),
        (
            "CONNECT authority without a port",
            vec![(":method", "CONNECT"), (":authority", "echo.test")],
            Expect::Answer(
                "egress-gateway: denied: malformed_request\n",
                "malformed_request",
            ),
        ),
        (
            "CONNECT authority with userinfo",
            vec![
                (":method", "CONNECT"),
                (":authority", "app2@echo.test:7000"),
            ],
            Expect::Answer(
                "egress-gateway: denied: malformed_request\n",
                "malformed_request",
            ),
        ),
        (
            "CONNECT to a numeric host",
            vec![(":method", "CONNECT"), (":authority", "2130706433:7000")],
            Expect::Answer(
                "egress-gateway: denied: malformed_request\n",
                "malformed_request",
            ),
        ),
        (
            "CONNECT to an unbracketed IPv6 literal",
            vec![(":method", "CONNECT"), (":authority", "::1:7000")],
            Expect::Reset(PROTOCOL_ERROR),
        ),
        (
            "CONNECT to a host app1 may not reach",
            vec![(":method", "CONNECT"), (":authority", "evil.test:7000")],
            Expect::Answer(
                "egress-gateway: denied: not_allowlisted\n",
                "not_allowlisted",
            ),
        ),
    ];
    for (what, fields, expect) in cases {
        let reason = match expect {
            Expect::Answer(_, reason) => reason,
            Expect::Reset(_) => "none",
        };
        let probe = Probe::before(&w.gw, Outcome::deny("connect_tls", "app1", reason));
        let mut raw = w.raw().await;
        raw.start().await;
        let headers = frame(HEADERS, END_HEADERS, 1, &block(&fields));
        assert!(raw.send(&headers, WAIT).await, "{what}: send");
        let got = raw.until_stream_ends(1, WAIT).await;
        match expect {
            Expect::Reset(want) => {
                let reset = got
                    .iter()
                    .find(|f| f.kind == RST_STREAM || f.kind == GOAWAY)
                    .unwrap_or_else(|| panic!("{what}: no reset: {got:?}"));
                assert_eq!(code(reset), want, "{what}: {reset:?}");
                drop(raw);
                probe.confirm_unlogged(&w.gw, what);
            }
            Expect::Answer(body, _) => {
                assert!(got.iter().any(|f| f.kind == HEADERS), "{what}: {got:?}");
                let data: Vec<u8> = got
                    .iter()
                    .filter(|f| f.kind == DATA)
                    .flat_map(|f| f.payload.clone())
                    .collect();
                assert_eq!(String::from_utf8_lossy(&data), body, "{what}");
                drop(raw);
                probe.confirm(&w.gw, what);
            }
        }
    }
    w.still_serves("malformed streams").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn more_streams_than_allowed_are_refused() {
    // The stream limit of one connection.
    let w = h2_world("limits: {max_streams_per_connection: 2}\n").await;
    let baseline = Baseline::take(&w.gw);
    let mut raw = w.raw().await;
    raw.start().await;
    for id in [1, 3] {
        let got = open(&mut raw, id, "echo.test:7000").await;
        assert!(
            got.iter().any(|f| f.kind == HEADERS),
            "stream {id}: {got:?}"
        );
    }
    let third = open(&mut raw, 5, "echo.test:7000").await;
    let reset = third
        .iter()
        .find(|f| f.kind == RST_STREAM)
        .unwrap_or_else(|| panic!("a third concurrent stream is refused: {third:?}"));
    assert!(
        [REFUSED_STREAM, PROTOCOL_ERROR].contains(&code(reset)),
        "{reset:?}"
    );
    drop(raw);
    baseline.settle(&w.gw, "streams beyond max_streams_per_connection");
    w.still_serves("the stream limit").await;

    // The tenant's limit counts streams: connection + 2 tunnels, the third is 429.
    let w = h2_world("limits: {namespaces: {app1: 3}}\n").await;
    let baseline = Baseline::take(&w.gw);
    let mut raw = w.raw().await;
    raw.start().await;
    for id in [1, 3] {
        let got = open(&mut raw, id, "echo.test:7000").await;
        assert!(
            got.iter().any(|f| f.kind == HEADERS),
            "stream {id}: {got:?}"
        );
    }
    let lines = w.gw.access_log().len();
    let got = raw.until_stream_ends(5, Duration::ZERO).await;
    assert!(got.is_empty());
    assert!(
        raw.send(&frame(HEADERS, END_HEADERS, 5, &block(&CONNECT_ECHO)), WAIT)
            .await
    );
    let got = raw.until_stream_ends(5, WAIT).await;
    let data: Vec<u8> = got
        .iter()
        .filter(|f| f.kind == DATA)
        .flat_map(|f| f.payload.clone())
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&data),
        "egress-gateway: denied: tenant_connection_limit\n"
    );
    let line = w.gw.wait_access_logs(lines + 1, |_| true)[lines].clone();
    assert_eq!(line["reason"], "tenant_connection_limit", "{line}");
    drop(raw);
    // The two tunnels close with the connection and log their own lines.
    w.gw.wait_access_logs(lines + 3, |_| true);
    w.gw.wait_connections_on("connect_tls", "app1", "deny", "tenant_connection_limit", 1);
    baseline.settle(&w.gw, "streams beyond the tenant limit");
    w.still_serves("the tenant limit").await;
}

/// One attack inside an h2 tunnel: name, CONNECT authority, bytes sent, deny reason, and how
/// the answer in the stream starts.
type TunnelCase<'a> = (&'a str, &'a str, Vec<u8>, &'a str, &'a [u8]);

/// Tunnels over HTTP/2 keep the rules of HTTP/1.1 tunnels: the ClientHello in a stream to a TLS
/// port must name the CONNECT host (else an alert in the stream, `sni_mismatch`), and a request
/// in a stream to an HTTP port must name the tunnel's host (else `403 host_mismatch`).
#[tokio::test(flavor = "multi_thread")]
async fn h2_tunnels_keep_the_sni_and_host_rules() {
    let (tls, _tls_upstream) = recording_server().await;
    let web = http_origin("ok").await;
    let w = h2_world_with(
        "",
        &[
            ("tls", "tls.test", 443, "TLS", tls),
            ("web", "web.test", 80, "HTTP", web),
        ],
    )
    .await;
    let cases: [TunnelCase<'_>; 2] = [
        (
            "a hello naming another host in an h2 tunnel",
            "tls.test:443",
            crate::hello::Hello::named("evil.test").record(),
            "sni_mismatch",
            &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49],
        ),
        (
            "a request naming another host in an h2 tunnel",
            "web.test:80",
            b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n".to_vec(),
            "host_mismatch",
            b"HTTP/1.1 403",
        ),
    ];
    for (what, authority, bytes, reason, answer) in cases {
        let probe = Probe::before(&w.gw, Outcome::deny("connect_tls", "app1", reason));
        let tls = tls_connect(&w.gw, &w.ca.pem, Some(&w.app1), &[b"h2"])
            .await
            .expect("handshake");
        let (send, connection) = h2::client::handshake(tls).await.expect("h2");
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut send = send.ready().await.expect("ready");
        let request = http::Request::builder()
            .method("CONNECT")
            .uri(authority)
            .body(())
            .expect("request");
        let (response, mut out) = send.send_request(request, false).expect("send");
        let response = tokio::time::timeout(WAIT, response)
            .await
            .expect("answer in time")
            .expect("answer");
        assert_eq!(response.status(), 200, "{what}");
        out.send_data(Bytes::from(bytes), false).expect("send");
        let mut body = response.into_body();
        let mut got = Vec::new();
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(WAIT, body.data()).await {
            let _ = body.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert!(
            got.starts_with(answer),
            "{what}: {:?}",
            String::from_utf8_lossy(&got)
        );
        drop(out);
        drop(send);
        driver.abort();
        let _ = driver.await;
        probe.confirm(&w.gw, what);
    }
}
