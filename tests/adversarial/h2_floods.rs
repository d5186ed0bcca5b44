//! HTTP/2 floods and silent clients on `connect_tls`: RST_STREAM / SETTINGS / CONTINUATION / PING
//! floods (bounded), flow-control overflow, DATA on idle streams, clients that complete TLS and
//! then say nothing or only the preface (issue #8), and clients that ignore GOAWAY. After each
//! the gateway still serves another client and nothing leaked.

use std::time::{Duration, Instant};

use crate::baseline::Baseline;
use crate::common::WAIT;
use crate::h2_raw::{
    block, frame, RawH2, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING,
    RST_STREAM, SETTINGS,
};
use crate::h2_world::{code, h2_world, open, H2World, CONNECT_ECHO, FLOW_CONTROL_ERROR};

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
