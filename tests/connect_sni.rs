//! The ClientHello SNI check inside plaintext CONNECT tunnels to TLS ports, against the real
//! binary on loopback: a matching SNI passes intact, a mismatch or a missing SNI gets a TLS alert
//! and nothing goes upstream, audit mode and the switched-off check let it through, and TCP ports
//! are not sniffed.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin, DNS server and
//! black hole is a local socket on 127.0.0.1. Waits are on events (accepts, access-log lines,
//! metric values polled with a deadline), each bounded by `common::WAIT`.

mod common;

use std::sync::Arc;

use common::tunnel::{open_tunnel, read_all, round_trip};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

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
