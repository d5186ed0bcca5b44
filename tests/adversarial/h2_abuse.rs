//! HTTP/2 abuse on `connect_tls` with ALPN `h2`: malformed CONNECT pseudo-headers, other
//! methods, stream and tenant limits, RST_STREAM / SETTINGS / CONTINUATION / PING floods
//! (bounded), flow-control overflow, and clients that complete TLS and then say nothing, only
//! the preface, or ignore GOAWAY. After each attack the gateway still serves another client and
//! its descriptors and active gauge return to baseline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::attack::{Outcome, Probe};
use crate::baseline::Baseline;
use crate::common::mtls::{tcp_entry, tls_connect, World, APP1_ID};
use crate::common::{echo_server, http_origin, recording_server, static_entry, Gateway, WAIT};
use crate::h2_raw::{
    block, frame, Frame, RawH2, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING,
    RST_STREAM, SETTINGS,
};
use crate::pki::{mtls_world, Authority, Leaf};

const PROTOCOL_ERROR: u32 = 1;
const FLOW_CONTROL_ERROR: u32 = 3;
const REFUSED_STREAM: u32 = 7;

/// A gateway with app1 allowed to `echo.test:7000`, short sniff and idle deadlines, and the
/// CA that signs tenant certificates.
struct H2World {
    gw: Gateway,
    ca: Authority,
    app1: crate::common::pki::Issued,
    _world: World,
}

async fn h2_world(extra: &str) -> H2World {
    h2_world_with(extra, &[]).await
}

/// [`h2_world`] with more app1 entries: (name, host, port, protocol, upstream).
async fn h2_world_with(extra: &str, entries: &[(&str, &str, u16, &str, SocketAddr)]) -> H2World {
    let echo = echo_server().await;
    let ca = Authority::new("tenant-ca");
    let world = mtls_world(&ca, extra);
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    for (name, host, port, protocol, upstream) in entries {
        world.config.entry(
            &format!("app1/{name}.yaml"),
            &static_entry(name, host, *port, protocol, *upstream),
        );
    }
    let app1 = ca.client(&Leaf {
        uris: vec![APP1_ID],
        ..Leaf::default()
    });
    H2World {
        gw: Gateway::start(&world.config),
        ca,
        app1,
        _world: world,
    }
}

impl H2World {
    async fn raw(&self) -> RawH2 {
        let tls = tls_connect(&self.gw, &self.ca.pem, Some(&self.app1), &[b"h2"])
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        RawH2::new(tls)
    }

    /// A well-behaved h2 client opens a tunnel and echoes through it: the gateway still serves.
    async fn still_serves(&self, after: &str) {
        let tls = tls_connect(&self.gw, &self.ca.pem, Some(&self.app1), &[b"h2"])
            .await
            .unwrap_or_else(|e| panic!("after {after}: handshake: {e}"));
        let (send, connection) = h2::client::handshake(tls)
            .await
            .unwrap_or_else(|e| panic!("after {after}: h2 handshake: {e}"));
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut send = send.ready().await.expect("ready");
        let request = http::Request::builder()
            .method("CONNECT")
            .uri("echo.test:7000")
            .body(())
            .expect("request");
        let (answer, mut body_out) = send.send_request(request, false).expect("send");
        let answer = tokio::time::timeout(WAIT, answer)
            .await
            .unwrap_or_else(|_| panic!("after {after}: no answer"))
            .expect("answer");
        assert_eq!(answer.status(), 200, "after {after}");
        body_out
            .send_data(Bytes::from_static(b"alive"), true)
            .expect("send");
        let mut body = answer.into_body();
        let mut got = Vec::new();
        while got.len() < 5 {
            let chunk = tokio::time::timeout(WAIT, body.data())
                .await
                .expect("echo in time")
                .expect("data")
                .expect("data ok");
            let _ = body.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"alive", "after {after}");
        drop(send);
        driver.abort();
        let _ = driver.await;
    }
}

fn code(frame: &Frame) -> u32 {
    let at = if frame.kind == GOAWAY { 4 } else { 0 };
    u32::from_be_bytes(frame.payload[at..at + 4].try_into().expect("error code"))
}

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

const CONNECT_ECHO: [(&str, &str); 2] = [(":method", "CONNECT"), (":authority", "echo.test:7000")];

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

/// Opens stream `id` to `authority` and returns the body of its answer.
async fn open(raw: &mut RawH2, id: u32, authority: &str) -> Vec<Frame> {
    let fields = [(":method", "CONNECT"), (":authority", authority)];
    assert!(
        raw.send(&frame(HEADERS, END_HEADERS, id, &block(&fields)), WAIT)
            .await
    );
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let Some(frame) = raw.next(Duration::from_millis(200)).await else {
            if raw.closed {
                break;
            }
            continue;
        };
        if frame.stream == id {
            let done = frame.kind == HEADERS || frame.kind == RST_STREAM;
            got.push(frame);
            if done {
                break;
            }
        }
    }
    got
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

/// Floods one connection with `frames` (bounded), then checks the gateway still serves another
/// client and nothing leaked once the flooding connection is gone.
async fn flood(w: &H2World, what: &str, prelude: &[u8], unit: &[u8], count: usize) -> RawH2 {
    let mut raw = w.raw().await;
    raw.start().await;
    if !prelude.is_empty() {
        assert!(raw.send(prelude, WAIT).await, "{what}: prelude");
    }
    let mut batch = Vec::with_capacity(unit.len() * 100);
    for _ in 0..100 {
        batch.extend_from_slice(unit);
    }
    for _ in 0..count / 100 {
        if !raw.send(&batch, Duration::from_secs(5)).await {
            break; // the gateway stopped reading or closed: it defended itself
        }
    }
    raw
}

#[tokio::test(flavor = "multi_thread")]
async fn floods_are_bounded_and_the_gateway_keeps_serving() {
    let w = h2_world("").await;
    let baseline = Baseline::take(&w.gw);

    // RST_STREAM flood ("rapid reset"): open a stream to a denied host and cancel it at once.
    let mut raw = w.raw().await;
    raw.start().await;
    let mut burst = Vec::new();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        let fields = [(":method", "CONNECT"), (":authority", "evil.test:7000")];
        burst.extend_from_slice(&frame(HEADERS, END_HEADERS, id, &block(&fields)));
        burst.extend_from_slice(&frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let _ = raw.send(&burst, Duration::from_secs(5)).await;
    let _ = raw.until_closed(Duration::from_secs(2)).await;
    drop(raw);
    w.still_serves("an RST_STREAM flood").await;
    baseline.settle(&w.gw, "RST_STREAM flood");

    // SETTINGS flood: 20 000 frames the gateway must acknowledge.
    let settings = frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
    let raw = flood(&w, "SETTINGS flood", &[], &settings, 20_000).await;
    drop(raw);
    w.still_serves("a SETTINGS flood").await;
    baseline.settle(&w.gw, "SETTINGS flood");

    // PING flood: 20 000 pings.
    let ping = frame(PING, 0, 0, &[7; 8]);
    let raw = flood(&w, "PING flood", &[], &ping, 20_000).await;
    drop(raw);
    w.still_serves("a PING flood").await;
    baseline.settle(&w.gw, "PING flood");

    // CONTINUATION flood: one header block that never ends (bounded at 20 000 × 1 KiB); the
    // gateway must cut the connection instead of buffering it.
    let start = frame(HEADERS, 0, 1, &block(&CONNECT_ECHO));
    let mut filler = vec![0u8, 3];
    filler.extend_from_slice(b"x-a");
    filler.push(120);
    filler.extend_from_slice(&[b'a'; 120]);
    let unit = frame(CONTINUATION, 0, 1, &filler.repeat(8));
    let mut raw = flood(&w, "CONTINUATION flood", &start, &unit, 20_000).await;
    let goaway = loop {
        match raw.next(WAIT).await {
            Some(f) if f.kind == GOAWAY => break Some(f),
            Some(_) => continue,
            None => break None,
        }
    };
    assert!(
        goaway.is_some() || raw.closed,
        "the gateway must end a connection whose header block never ends"
    );
    drop(raw);
    w.still_serves("a CONTINUATION flood").await;
    baseline.settle(&w.gw, "CONTINUATION flood");

    // A window update that overflows 2^31-1: FLOW_CONTROL_ERROR, connection closed.
    let mut raw = w.raw().await;
    raw.start().await;
    let overflow = [
        frame(8, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
        frame(8, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
    ]
    .concat();
    assert!(raw.send(&overflow, WAIT).await);
    let goaway = loop {
        match raw.next(WAIT).await {
            Some(f) if f.kind == GOAWAY => break f,
            Some(_) => continue,
            None => panic!("no GOAWAY for a flow-control overflow"),
        }
    };
    assert_eq!(code(&goaway), FLOW_CONTROL_ERROR);
    drop(raw);

    // DATA on a stream that was never opened: a connection error.
    let mut raw = w.raw().await;
    raw.start().await;
    assert!(raw.send(&frame(DATA, END_STREAM, 9, b"x"), WAIT).await);
    let ended = loop {
        match raw.next(WAIT).await {
            Some(f) if f.kind == GOAWAY || (f.kind == RST_STREAM && f.stream == 9) => break true,
            Some(_) => continue,
            None => break raw.closed,
        }
    };
    assert!(ended, "DATA on an idle stream is refused");
    drop(raw);
    w.still_serves("protocol errors").await;
    baseline.settle(&w.gw, "protocol errors");
}

/// Issue #8: a client that completes TLS with ALPN h2 and then says nothing, only the preface,
/// or the preface and SETTINGS while ignoring the GOAWAY and PING that follow, is closed within
/// the sniff deadline (1 s here) and gives its tenant slot back.
#[tokio::test(flavor = "multi_thread")]
async fn silent_h2_clients_are_closed_at_the_sniff_deadline() {
    let w = h2_world("timeouts: {sniff: 1s, idle: 2s}\nlimits: {namespaces: {app1: 2}}\n").await;
    let baseline = Baseline::take(&w.gw);
    for (what, bytes) in [
        ("TLS with ALPN h2, then nothing", Vec::new()),
        ("only the preface", crate::h2_raw::PREFACE.to_vec()),
        (
            "preface and SETTINGS, then ignoring GOAWAY and PING",
            [crate::h2_raw::PREFACE, &frame(SETTINGS, 0, 0, &[])].concat(),
        ),
    ] {
        let mut raw = w.raw().await;
        if !bytes.is_empty() {
            assert!(raw.send(&bytes, WAIT).await, "{what}");
        }
        let started = Instant::now();
        assert!(
            raw.until_closed(Duration::from_secs(6)).await,
            "{what}: still open after 6 s"
        );
        assert!(started.elapsed() < Duration::from_secs(6), "{what}");
        drop(raw);
        baseline.settle(&w.gw, what);
        // Both slots are free again: a connection and one tunnel.
        w.still_serves(what).await;
    }

    // After its last stream ends, a connection is closed at the idle deadline (2 s).
    let mut raw = w.raw().await;
    raw.start().await;
    let got = open(&mut raw, 1, "echo.test:7000").await;
    assert!(got.iter().any(|f| f.kind == HEADERS), "{got:?}");
    assert!(raw.send(&frame(DATA, END_STREAM, 1, b""), WAIT).await);
    assert!(
        raw.until_closed(Duration::from_secs(8)).await,
        "an idle connection ignoring GOAWAY is still open"
    );
    drop(raw);
    baseline.settle(&w.gw, "idle after its last stream");
}

/// Drain: an HTTP/2 client that ignores GOAWAY (never acknowledges the PING, keeps its tunnel
/// open) is dropped at the drain deadline and the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_ignoring_goaway_is_dropped_at_the_drain_deadline() {
    let mut w = h2_world("timeouts: {drain: 2s}\n").await;
    let mut raw = w.raw().await;
    raw.start().await;
    let got = open(&mut raw, 1, "echo.test:7000").await;
    assert!(got.iter().any(|f| f.kind == HEADERS), "{got:?}");
    let signalled = Instant::now();
    w.gw.signal("TERM");
    let mut saw_goaway = false;
    let deadline = Instant::now() + WAIT;
    while !raw.closed && Instant::now() < deadline {
        if let Some(f) = raw.next(Duration::from_millis(200)).await {
            saw_goaway |= f.kind == GOAWAY;
        }
    }
    assert!(raw.closed, "the connection outlived the drain");
    assert!(saw_goaway, "draining starts with GOAWAY");
    let elapsed = signalled.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(6),
        "closed after {elapsed:?}, the drain deadline is 2 s"
    );
    let code = tokio::task::block_in_place(|| w.gw.wait_exit(WAIT));
    assert_eq!(code, Some(0));
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
