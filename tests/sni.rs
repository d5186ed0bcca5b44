//! The transparent `sni` listener end to end, against the real binary on loopback: a real TLS
//! handshake completes through the gateway to a local rustls origin serving a certificate (made at
//! test time with rcgen) for the SNI name, and data moves both ways; denies are TLS fatal alerts
//! that rustls and `openssl s_client` report (`access_denied`, `unrecognized_name` without SNI);
//! two tenants on one listener get different decisions; non-TLS bytes and silent clients are
//! refused with `malformed_request` / `sniff_timeout`; a ClientHello written one byte at a time, or
//! split over three records, is decided correctly and replayed upstream byte for byte; curl and
//! openssl handshakes pass through; counters match the attempts.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin is a local socket
//! on 127.0.0.1. Every wait is bounded by `common::WAIT`; nothing sleeps for timing.

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore, ServerConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const ALLOWED: &str = "allowed.test";

// ---------------------------------------------------------------------------------------------
// TLS material, origins and clients.
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate for `allowed.test`, generated per test.
struct Pki {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

fn pki() -> Pki {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec![ALLOWED.into()]).expect("generate certificate");
    Pki {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        pem: cert.pem(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(pki: &Pki, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(pki.key.clone_key()),
        )
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client trusting only `pki`'s certificate (`None`: trusting nothing); `sni: false` leaves
/// the server_name extension out.
fn client_config(pki: Option<&Pki>, sni: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    if let Some(pki) = pki {
        roots.add(pki.cert.clone()).expect("trust anchor");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = sni;
    Arc::new(config)
}

/// What a TLS origin does after its handshake.
#[derive(Clone, Copy)]
enum Serve {
    /// Echo every byte until the client closes, then close.
    Echo,
    /// Read one HTTP/1.1 request head, answer `200` with this body, close.
    Http(&'static str),
}

/// A rustls origin on 127.0.0.1 serving `pki`'s certificate; reports the SNI of every completed
/// handshake.
async fn tls_origin(pki: &Pki, serve: Serve) -> (SocketAddr, UnboundedReceiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server_config(pki, &[b"http/1.1"]));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = tx.send(tls.get_ref().1.server_name().map(str::to_owned));
                match serve {
                    Serve::Echo => {
                        let (mut r, mut w) = tokio::io::split(tls);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        let _ = w.shutdown().await;
                    }
                    Serve::Http(body) => {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Connects from `from` to the gateway's sni listener and runs a rustls handshake for `sni`.
async fn tls_connect(
    from: &str,
    gateway: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = connect_from(from, gateway).await;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("handshake finished or failed in time")
}

/// The TLS alert a failed rustls handshake received, if that is why it failed.
fn alert_received(err: &io::Error) -> Option<AlertDescription> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Runs a rustls handshake that must fail with `alert`.
async fn expect_alert(from: &str, gw: &Gateway, sni: &str, sni_ext: bool, alert: AlertDescription) {
    let config = client_config(Some(&pki()), sni_ext);
    match tls_connect(from, gw.addr("sni"), sni, config).await {
        Ok(_) => panic!("handshake for {sni} from {from} completed; expected {alert:?}"),
        Err(err) => assert_eq!(
            alert_received(&err),
            Some(alert),
            "handshake for {sni} from {from} failed with {err:?}"
        ),
    }
}

/// Opens a TLS session through the gateway, writes `data`, reads the echo, closes cleanly.
async fn echo_through(gw: &Gateway, from: &str, pki: &Pki, data: &[u8]) {
    let mut tls = tls_connect(
        from,
        gw.addr("sni"),
        ALLOWED,
        client_config(Some(pki), true),
    )
    .await
    .expect("handshake through the gateway");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .expect("origin certificate");
    assert_eq!(
        presented,
        std::slice::from_ref(&pki.cert),
        "the origin's own certificate"
    );
    tls.write_all(data).await.expect("write");
    let mut echoed = vec![0u8; data.len()];
    timeout(WAIT, tls.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(echoed, data);
    tls.shutdown().await.expect("close_notify");
    let mut rest = Vec::new();
    let _ = timeout(WAIT, tls.read_to_end(&mut rest))
        .await
        .expect("origin closes in time");
    assert!(rest.is_empty(), "nothing after the echo: {rest:?}");
}

/// A gateway whose app1 allows `allowed.test:443` (TLS) to `upstream`.
fn gateway_to(
    upstream: SocketAddr,
    extra_sources: &[(&str, &str)],
    extra: &str,
) -> (Gateway, ConfigDir) {
    let config = ConfigDir::new(&transparent_gateway_yaml(extra_sources, extra));
    config.entry(
        "app1/origin.yaml",
        &static_entry("origin", ALLOWED, 443, "TLS", upstream),
    );
    (Gateway::start(&config), config)
}

/// Reads until EOF or a reset, within [`WAIT`]; returns what arrived before.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("the gateway closes in time")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

const ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49];

/// Runs `timeout 10 openssl s_client …` with stdin closed; returns (exit ok, stdout + stderr).
async fn openssl_s_client(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("timeout")
            .arg("10")
            .arg("openssl")
            .arg("s_client")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("openssl must be installed to run this test (apt-get install openssl)");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    })
    .await
    .expect("openssl task")
}

fn log_is(line: &Value, listener: &str, field: &str, value: &str) -> bool {
    line["listener"] == listener && line[field] == value
}

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
// Denies are TLS alerts.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_sni_gets_access_denied() {
    let pki = pki();
    let (origin, mut handshakes) = tls_origin(&pki, Serve::Echo).await;
    let (gw, _config) = gateway_to(origin, &[], "");

    expect_alert(APP1, &gw, "evil.test", true, AlertDescription::AccessDenied).await;
    let line = gw.wait_access_log(|v| log_is(v, "sni", "sni", "evil.test"));
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["reason"], "not_allowlisted", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["host"], "evil.test", "{line}");
    assert_eq!(line["port"], 443, "{line}");
    assert!(line["upstream"].is_null(), "{line}");
    assert_eq!(line["bytes_egress"], 0, "{line}");

    // Nothing reached the origin: the next handshake it reports is the allowed one.
    echo_through(&gw, APP1, &pki, b"after the deny").await;
    let seen = timeout(WAIT, handshakes.recv()).await.expect("in time");
    assert_eq!(seen, Some(Some(ALLOWED.to_owned())));
    assert!(
        handshakes.try_recv().is_err(),
        "exactly one origin handshake"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hello_without_sni_gets_unrecognized_name() {
    let (origin, _) = recording_server().await;
    let (gw, _config) = gateway_to(origin, &[], "");

    expect_alert(
        APP1,
        &gw,
        ALLOWED,
        false,
        AlertDescription::UnrecognisedName,
    )
    .await;
    let line = gw.wait_access_log(|v| log_is(v, "sni", "reason", "missing_sni"));
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert!(line["sni"].is_null(), "{line}");
    assert!(line["upstream"].is_null(), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tenant_gets_access_denied() {
    let (origin, _) = recording_server().await;
    let (gw, _config) = gateway_to(origin, &[], "");

    expect_alert(STRANGER, &gw, ALLOWED, true, AlertDescription::AccessDenied).await;
    let line = gw.wait_access_log(|v| log_is(v, "sni", "reason", "unknown_tenant"));
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["namespace"], "unknown", "{line}");
    assert_eq!(line["identity"], STRANGER, "{line}");
    assert_eq!(line["sni"], ALLOWED, "{line}");
    assert_eq!(
        gw.connections_on("sni", "unknown", "deny", "unknown_tenant"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_on_one_listener_get_different_decisions() {
    let pki = pki();
    let (origin, _) = tls_origin(&pki, Serve::Echo).await;
    let (gw, _config) = gateway_to(origin, &[], "");

    expect_alert(APP2, &gw, ALLOWED, true, AlertDescription::AccessDenied).await;
    echo_through(&gw, APP1, &pki, b"app1 may").await;

    let app2 = gw.wait_access_log(|v| log_is(v, "sni", "namespace", "app2"));
    assert_eq!(app2["decision"], "deny", "{app2}");
    assert_eq!(app2["reason"], "not_allowlisted", "{app2}");
    assert_eq!(app2["sni"], ALLOWED, "{app2}");
    let app1 = gw.wait_access_log(|v| log_is(v, "sni", "namespace", "app1"));
    assert_eq!(app1["decision"], "allow", "{app1}");
    assert_eq!(app1["service_entry"], "app1/origin", "{app1}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_s_client_reports_the_alerts() {
    let pki = pki();
    let (origin, _) = tls_origin(&pki, Serve::Echo).await;
    // s_client cannot choose its source address: 127.0.0.1 plays app1 in this test.
    let (gw, config) = gateway_to(origin, &[("127.0.0.1/32", "app1")], "");
    let connect = gw.addr("sni").to_string();

    let (ok, out) = openssl_s_client(vec![
        "-connect".into(),
        connect.clone(),
        "-servername".into(),
        "evil.test".into(),
    ])
    .await;
    assert!(!ok, "s_client succeeded against a deny:\n{out}");
    assert!(
        out.contains("alert access denied") && out.contains("alert number 49"),
        "s_client should report access_denied (49):\n{out}"
    );
    let line = gw.wait_access_log(|v| log_is(v, "sni", "sni", "evil.test"));
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["reason"], "not_allowlisted", "{line}");

    let (ok, out) = openssl_s_client(vec![
        "-connect".into(),
        connect.clone(),
        "-noservername".into(),
    ])
    .await;
    assert!(!ok, "s_client succeeded without SNI:\n{out}");
    assert!(
        out.contains("unrecognized name") && out.contains("alert number 112"),
        "s_client should report unrecognized_name (112):\n{out}"
    );
    gw.wait_access_log(|v| log_is(v, "sni", "reason", "missing_sni"));

    // openssl's own hello is handled on the allow path too: the handshake verifies the origin.
    let ca = config.path().join("origin-ca.pem");
    std::fs::write(&ca, &pki.pem).expect("write CA");
    let (ok, out) = openssl_s_client(vec![
        "-connect".into(),
        connect,
        "-servername".into(),
        ALLOWED.into(),
        "-CAfile".into(),
        ca.display().to_string(),
        "-verify_return_error".into(),
    ])
    .await;
    assert!(ok, "s_client through the gateway failed:\n{out}");
    assert!(
        out.contains("Verify return code: 0 (ok)"),
        "the origin's certificate verified:\n{out}"
    );
    let line = gw.wait_access_log(|v| log_is(v, "sni", "decision", "allow"));
    assert_eq!(line["sni"], ALLOWED, "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
}

// ---------------------------------------------------------------------------------------------
// Bytes that are not a ClientHello.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_the_sni_listener_is_refused_without_harm() {
    let pki = pki();
    let (origin, _) = tls_origin(&pki, Serve::Echo).await;
    let (gw, _config) = gateway_to(origin, &[], "");

    let mut stream = connect_from(APP1, gw.addr("sni")).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.is_empty() || answer == ACCESS_DENIED,
        "closed, or an access_denied alert: {answer:?}"
    );
    let line = gw.wait_access_log(|v| log_is(v, "sni", "reason", "malformed_request"));
    assert_eq!(line["decision"], "deny", "{line}");
    assert!(line["upstream"].is_null(), "{line}");

    // Still serving.
    assert_eq!(gw.admin_get("/healthz").0, 200);
    echo_through(&gw, APP1, &pki, b"still alive").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_is_closed_after_the_sniff_timeout() {
    let (origin, _) = recording_server().await;
    let (gw, _config) = gateway_to(origin, &[], "timeouts: {sniff: 1s}\n");

    let mut stream = connect_from(APP1, gw.addr("sni")).await;
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    let waited = started.elapsed();
    assert!(answer.is_empty(), "nothing but a close: {answer:?}");
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "closed after {waited:?}, before the 1s sniff timeout"
    );
    let line = gw.wait_access_log(|v| log_is(v, "sni", "reason", "sniff_timeout"));
    assert_eq!(line["decision"], "deny", "{line}");
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
