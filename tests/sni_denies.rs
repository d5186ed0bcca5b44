//! Denies on the transparent `sni` listener, against the real binary on loopback: they are TLS
//! fatal alerts that rustls and `openssl s_client` report (`access_denied`, `unrecognized_name`
//! without SNI); two tenants on one listener get different decisions; non-TLS bytes and silent
//! clients are refused with `malformed_request` / `sniff_timeout` and the gateway keeps serving.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin is a local socket
//! on 127.0.0.1. Every wait is bounded by `common::WAIT`; nothing sleeps for timing.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::tls_origin::{
    echo_through, expect_alert, gateway_to, log_is, pki, read_until_closed, tls_origin, Serve,
    ACCESS_DENIED, ALLOWED,
};
use common::*;
use rustls::AlertDescription;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

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
