//! The transparent `sni` listener end to end, against the real binary on loopback: a real TLS
//! handshake completes through the gateway to a local rustls origin serving a certificate (made at
//! test time with rcgen) for the SNI name, and data moves both ways; a ClientHello written one byte
//! at a time, or split over three records, is decided correctly and replayed upstream byte for
//! byte; curl handshakes pass through; counters match the attempts. Denies (TLS alerts, non-TLS
//! bytes, silent clients) are in `sni_denies.rs`.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin is a local socket
//! on 127.0.0.1. Every wait is bounded by `common::WAIT`; nothing sleeps for timing.

mod common;

use std::process::{Command, Stdio};

use common::tls_origin::{
    client_config, echo_through, expect_alert, gateway_to, log_is, pki, read_until_closed,
    tls_origin, Serve, ACCESS_DENIED, ALLOWED,
};
use common::*;
use rustls::pki_types::ServerName;
use rustls::AlertDescription;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

// ---------------------------------------------------------------------------------------------
// Allow: a real handshake through the gateway.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_completes_through_the_gateway_and_data_moves_both_ways() {
    let pki = pki();
    let (origin, mut handshakes) = tls_origin(&pki, Serve::Echo).await;
    let (gw, _config) = gateway_to(origin, &[], "");

    echo_through(&gw, APP1, &pki, b"ping through the sni listener\n").await;
    let seen = timeout(WAIT, handshakes.recv())
        .await
        .expect("origin handshake in time")
        .expect("origin alive");
    assert_eq!(
        seen.as_deref(),
        Some(ALLOWED),
        "the origin saw the tenant's SNI"
    );

    let line = gw.wait_access_log(|v| log_is(v, "sni", "decision", "allow"));
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["identity"], APP1, "{line}");
    assert_eq!(line["sni"], ALLOWED, "{line}");
    assert_eq!(line["host"], ALLOWED, "{line}");
    assert_eq!(line["port"], 443, "{line}");
    assert_eq!(line["reason"], "none", "{line}");
    assert_eq!(line["service_entry"], "app1/origin", "{line}");
    assert_eq!(line["upstream"], origin.to_string(), "{line}");
    assert!(
        line["bytes_egress"].as_u64().expect("bytes_egress") > 0,
        "{line}"
    );
    assert!(
        line["bytes_ingress"].as_u64().expect("bytes_ingress") > 0,
        "{line}"
    );
    assert!(line.get("ech").is_none(), "no ECH from rustls: {line}");
}

// ---------------------------------------------------------------------------------------------
// Hellos in awkward pieces are replayed exactly.
// ---------------------------------------------------------------------------------------------

/// The first flight of a real tokio-rustls client for `sni`: accepted on a plain listener and
/// read up to the end of its first TLS record.
async fn capture_rustls_hello(sni: &str) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    let connector = TlsConnector::from(client_config(None, true));
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let _ = connector.connect(name, tcp).await;
    });
    let (mut stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("client connects in time")
        .expect("accept");
    let mut hello = vec![0u8; 5];
    timeout(WAIT, stream.read_exact(&mut hello))
        .await
        .expect("record header in time")
        .expect("read header");
    assert_eq!(hello[0], 0x16, "a handshake record");
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    hello.resize(5 + len, 0);
    timeout(WAIT, stream.read_exact(&mut hello[5..]))
        .await
        .expect("record body in time")
        .expect("read body");
    assert_eq!(hello[5], 0x01, "a ClientHello");
    let body_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
    assert_eq!(body_len + 4, len, "the whole hello is in the first record");
    drop(stream);
    timeout(WAIT, client)
        .await
        .expect("client gives up in time")
        .expect("client task");
    hello
}

/// Sends `bytes` (one write per chunk, flushed, Nagle off) from app1 to the sni listener, closes
/// the write half, and returns what the upstream recorder received.
async fn replay_in_chunks(
    gw: &Gateway,
    upstream: &mut UnboundedReceiver<Vec<u8>>,
    bytes: &[u8],
    chunk: usize,
) -> Vec<u8> {
    let mut stream = connect_from(APP1, gw.addr("sni")).await;
    stream.set_nodelay(true).expect("nodelay");
    for piece in bytes.chunks(chunk) {
        stream.write_all(piece).await.expect("write");
        stream.flush().await.expect("flush");
    }
    stream.shutdown().await.expect("shutdown");
    let back = read_until_closed(&mut stream).await;
    assert!(back.is_empty(), "the recorder answers nothing: {back:?}");
    timeout(WAIT, upstream.recv())
        .await
        .expect("upstream connection in time")
        .expect("recorder alive")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hello_written_one_byte_at_a_time_is_decided_and_replayed_exactly() {
    let hello = capture_rustls_hello(ALLOWED).await;
    let (recorder, mut upstream) = recording_server().await;
    let (gw, _config) = gateway_to(recorder, &[], "");

    let received = replay_in_chunks(&gw, &mut upstream, &hello, 1).await;
    assert_eq!(
        received, hello,
        "the upstream got exactly the tenant's hello"
    );
    let line = gw.wait_access_log(|v| log_is(v, "sni", "decision", "allow"));
    assert_eq!(line["sni"], ALLOWED, "{line}");
    assert_eq!(line["bytes_egress"], hello.len() as u64, "{line}");

    // The same trickle for a forbidden name is denied; nothing is dialled.
    let evil = capture_rustls_hello("evil.test").await;
    let mut stream = connect_from(APP1, gw.addr("sni")).await;
    stream.set_nodelay(true).expect("nodelay");
    for byte in &evil {
        stream.write_all(&[*byte]).await.expect("write");
        stream.flush().await.expect("flush");
    }
    assert_eq!(read_until_closed(&mut stream).await, ACCESS_DENIED);
    let line = gw.wait_access_log(|v| log_is(v, "sni", "sni", "evil.test"));
    assert_eq!(line["reason"], "not_allowlisted", "{line}");
    assert!(
        upstream.try_recv().is_err(),
        "no upstream connection for the deny"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hello_split_over_three_records_is_replayed_exactly() {
    let hello = capture_rustls_hello(ALLOWED).await;
    // The same handshake message, cut into three handshake records.
    let message = &hello[5..];
    let cuts = [0, message.len() / 3, 2 * message.len() / 3, message.len()];
    let mut split = Vec::new();
    for pair in cuts.windows(2) {
        let part = &message[pair[0]..pair[1]];
        split.extend_from_slice(&[0x16, hello[1], hello[2]]);
        split.extend_from_slice(&u16::try_from(part.len()).expect("len").to_be_bytes());
        split.extend_from_slice(part);
    }
    let (recorder, mut upstream) = recording_server().await;
    let (gw, _config) = gateway_to(recorder, &[], "");

    let received = replay_in_chunks(&gw, &mut upstream, &split, 7).await;
    assert_eq!(received, split, "all three records replayed untouched");
    let line = gw.wait_access_log(|v| log_is(v, "sni", "decision", "allow"));
    assert_eq!(line["sni"], ALLOWED, "{line}");
}

// ---------------------------------------------------------------------------------------------
// curl through the listener.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn curl_gets_an_https_body_through_the_sni_listener() {
    let pki = pki();
    let (origin, _) = tls_origin(&pki, Serve::Http("hello over TLS\n")).await;
    let (gw, config) = gateway_to(origin, &[], "");
    let ca = config.path().join("origin-ca.pem");
    std::fs::write(&ca, &pki.pem).expect("write CA");
    let port = gw.addr("sni").port();

    let output = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg("--connect-to")
            .arg(format!("{ALLOWED}:443:127.0.0.1:{port}"))
            .args(["--interface", APP1, "https://allowed.test/"])
            .stdin(Stdio::null())
            .output()
            .expect("curl must be installed to run this test (apt-get install curl)")
    })
    .await
    .expect("curl task");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello over TLS\n");
    let line = gw.wait_access_log(|v| log_is(v, "sni", "decision", "allow"));
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["sni"], ALLOWED, "{line}");
}

// ---------------------------------------------------------------------------------------------
// Counters.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn connection_counters_match_the_attempts() {
    let pki = pki();
    let (origin, _) = tls_origin(&pki, Serve::Echo).await;
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/origin.yaml",
        &static_entry("origin", ALLOWED, 443, "TLS", origin),
    );
    // Allowed only on 8443: the sni listener's port is 443.
    config.entry(
        "app1/other.yaml",
        &static_entry("other", "other.test", 8443, "TLS", origin),
    );
    let gw = Gateway::start(&config);

    for _ in 0..3 {
        expect_alert(APP1, &gw, "evil.test", true, AlertDescription::AccessDenied).await;
    }
    for _ in 0..2 {
        expect_alert(APP2, &gw, ALLOWED, true, AlertDescription::AccessDenied).await;
        echo_through(&gw, APP1, &pki, b"counted").await;
    }
    expect_alert(
        APP1,
        &gw,
        "other.test",
        true,
        AlertDescription::AccessDenied,
    )
    .await;
    expect_alert(
        APP1,
        &gw,
        ALLOWED,
        false,
        AlertDescription::UnrecognisedName,
    )
    .await;
    expect_alert(STRANGER, &gw, ALLOWED, true, AlertDescription::AccessDenied).await;

    // Every record is counted before its access-log line is written.
    gw.wait_access_logs(10, |v| v["listener"] == "sni");
    let expected = [
        ("app1", "deny", "not_allowlisted", 3.0),
        ("app2", "deny", "not_allowlisted", 2.0),
        ("app1", "allow", "none", 2.0),
        ("app1", "deny", "port_not_allowed", 1.0),
        ("app1", "deny", "missing_sni", 1.0),
        ("unknown", "deny", "unknown_tenant", 1.0),
    ];
    for (namespace, decision, reason, count) in expected {
        assert_eq!(
            gw.connections_on("sni", namespace, decision, reason),
            Some(count),
            "egress_connections_total{{namespace={namespace},listener=sni,decision={decision},reason={reason}}}"
        );
    }
    assert_eq!(gw.access_log().len(), 10, "one line per connection");
    let other = gw.wait_access_log(|v| v["reason"] == "port_not_allowed");
    assert_eq!(other["host"], "other.test", "{other}");
    assert_eq!(other["port"], 443, "{other}");

    let egress = gw
        .metric(
            "egress_bytes_total",
            &[
                ("namespace", "app1"),
                ("service_entry", "app1/origin"),
                ("direction", "egress"),
            ],
        )
        .expect("egress bytes");
    let ingress = gw
        .metric(
            "egress_bytes_total",
            &[
                ("namespace", "app1"),
                ("service_entry", "app1/origin"),
                ("direction", "ingress"),
            ],
        )
        .expect("ingress bytes");
    let logged: u64 = gw
        .access_log()
        .iter()
        .filter(|v| v["decision"] == "allow")
        .map(|v| v["bytes_egress"].as_u64().expect("bytes"))
        .sum();
    assert_eq!(egress, logged as f64, "metric and access log agree");
    assert!(ingress > 0.0);
    assert_eq!(
        gw.metric(
            "egress_active_connections",
            &[("namespace", "app1"), ("listener", "sni")]
        ),
        Some(0.0),
        "nothing left open"
    );
}
